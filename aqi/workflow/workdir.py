"""The work folder: its settings record, the report paths checked before any model loads,
the content hashes of the artefacts each step made, and what is finished (reusable)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._outputs import check_output, file_sha256, write_atomic
from .._version import __version__

_MANIFEST = "aqi-workdir.json"
_RUN_LOG = "runs.jsonl"
_ARTEFACTS = "artefacts.json"  # per model folder: each artefact's sha256, by the step that made it


def _check_outputs(html: Path, work: Path, inputs: list[Any], overwrite: bool) -> None:
    """Refuse, before any model loads, a work folder or report path that cannot be written."""
    if work.exists() and not work.is_dir():
        raise NotADirectoryError(f"workdir {str(work)!r} is a file; give a folder (new, or "
                                 "an aqi audit work folder)")  # fmt: skip
    check_output(work / _MANIFEST, flag="workdir", ours=lambda p: True)  # writable folder
    if html.suffix.lower() == ".json":
        raise ValueError(f"report path {str(html)!r} ends in .json, where the JSON document "
                         "is written beside the HTML report; give an .html path")  # fmt: skip
    inside = [html, html.with_suffix(".json")]
    models = (work / "models").resolve()
    for path in inside:
        if models in path.resolve().parents:
            raise ValueError(f"report path {str(path)!r} is inside the work folder's models/ "
                             "(its responses and stores); choose another path")  # fmt: skip
        check_output(path, flag="report path" if path == html else "report JSON",
                     inputs=inputs, overwrite=overwrite)  # fmt: skip


def _check_workdir(workdir: Path, settings: dict[str, Any]) -> None:
    """Create the work folder's settings record, or refuse one made otherwise."""
    record = {"schema": "aqi-workdir", "aqi_version": __version__, "settings": settings}
    path = workdir / _MANIFEST
    if not path.is_file():
        if workdir.is_dir() and any(workdir.iterdir()):
            raise ValueError(f"workdir {str(workdir)!r} is not empty and is not an aqi audit "
                             "work folder; choose a new or empty folder")  # fmt: skip
        workdir.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(record, indent=2, default=str) + "\n")
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise ValueError(f"{str(path)!r} is not valid JSON; delete the work folder") from None
    theirs = {"aqi_version": old.get("aqi_version"), **old.get("settings", {})}
    ours = {"aqi_version": __version__, **json.loads(json.dumps(settings, default=str))}
    differ = [f"{k}: {theirs.get(k)!r} there, {ours.get(k)!r} here"
              for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]  # fmt: skip
    if differ:
        raise ValueError(f"workdir {str(workdir)!r} holds work made with other settings "
                         f"({'; '.join(differ)}); use another workdir or delete it")  # fmt: skip


def _responses_done(path: Path, prompts: Any, stop: Any) -> Any:
    """The finished responses at ``path`` for ``prompts``, stopped early by ``stop`` (an
    early-stop identity, ``None`` for none), else ``None``."""
    from ..behaviour import load_responses

    if not path.is_file():
        return None
    try:
        rs = load_responses(path)
    except (ValueError, OSError):
        return None
    same = (rs.identity.get("prompts_sha256") == prompts.fingerprint()
            and rs.identity.get("stop_when_settled") == stop)  # fmt: skip
    return rs if same and set(rs.prompt_ids) == {p.id for p in prompts} else None


def _other_stop(path: Path, stop: Any) -> bool:
    """Whether the responses file at ``path`` (finished or not) was stopped otherwise than
    ``stop`` says: made without early stop, with it, or by another judge."""
    try:
        with path.open("rb") as f:
            identity = json.loads(f.readline())["identity"]
        return bool(identity.get("stop_when_settled") != stop)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False  # no file or no header: generation says what is wrong, if anything


def _store_done(path: Path) -> bool:
    from ..activations import open_store

    if not path.is_file():
        return False
    try:
        with open_store(path) as s:
            return s.complete
    except (ValueError, OSError):
        return False



def _recorded(folder: Path) -> dict[str, Any]:
    """The content hashes recorded in ``folder/artefacts.json`` by the steps that made them."""
    path = folder / _ARTEFACTS
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, or not whole: nothing is recorded
        return {}
    return rec if isinstance(rec, dict) else {}


def _record(folder: Path, name: str, **entry: Any) -> None:
    """Record the content hash of ``folder/name`` (atomically: the record is whole or old)."""
    rec = {**_recorded(folder), name: {"sha256": file_sha256(folder / name), **entry}}
    write_atomic(folder / _ARTEFACTS, json.dumps(rec, indent=2, sort_keys=True) + "\n")


def _reusable(folder: Path, name: str, rebuild: bool, **expect: Any) -> bool:
    """Whether the finished artefact ``folder/name`` may be reused: its content hash is the
    one recorded by the step that made it (and ``expect``'s entries match the record).

    ``False`` (make it again): nothing recorded (made by an older aqi, or stopped between
    finishing and recording), an input it was made from has changed (``expect``), or a
    changed file with ``rebuild``. A changed file without ``rebuild`` is refused.
    """
    path = folder / name
    entry = _recorded(folder).get(name)
    if not isinstance(entry, dict) or any(entry.get(k) != v for k, v in expect.items()):
        return False
    actual = file_sha256(path)
    if actual == entry.get("sha256") or rebuild:
        return actual == entry.get("sha256")
    raise ValueError(
        f"{str(path)!r} changed since aqi made it (sha256 {actual[:12]}…, recorded "
        f"{str(entry.get('sha256'))[:12]}…): it was edited or damaged, and reusing it would "
        "give results that do not match the rest of the work folder; restore it, or run "
        "again with rebuild=True (aqi audit --rebuild) to make it again"
    )
