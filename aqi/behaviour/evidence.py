"""Evidence that must belong together: responses, the prompts they answer, the model behind them.

A responses file records, per record, the prompt it answers (id and, since
this version, text) and, in its header, the weights fingerprint of the model
that wrote it (``identity.weights_fingerprint``, computed as for an activation
store). These functions refuse, in one line naming both sides and what
differs, responses that answer other prompts, or that another model wrote
(unless the caller says that is meant). The audit, the gate and
``aqi capture --responses`` call them wherever two pieces of evidence meet.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .responses import Responses

__all__ = ["check_same_prompts", "check_written_by", "describe", "same_responses"]


def describe(responses: Responses) -> str:
    """``"responses 'r.jsonl'"`` (or ``"responses (in memory)"``): how messages name them."""
    return f"responses {responses.source!r}" if responses.source else "responses (in memory)"


def _around(a: str, b: str, width: int = 30) -> tuple[str, str]:
    """``a`` and ``b`` shown around where they first differ."""
    k = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    lo = max(0, k - width // 3)

    def cut(t: str) -> str:
        part = t[lo : lo + width]
        return repr(("…" if lo else "") + part + ("…" if lo + width < len(t) else ""))

    return cut(a), cut(b)


def check_same_prompts(
    responses: Responses,
    prompts: Mapping[str, str | None],
    *,
    against: str,
    allow_extra: bool = False,
) -> None:
    """Refuse ``responses`` that answer other prompts than ``prompts`` (``{id: text}``).

    Every prompt of ``prompts`` needs a response, and a response recording its
    prompt's text must record the same text (a text of ``None`` on either side
    is not compared). Responses to prompts ``prompts`` does not hold are refused,
    except empty ones (a capture with ``on_empty="drop"`` leaves those prompts
    out) or with ``allow_extra`` (e.g. an unfinished capture).

    Parameters
    ----------
    responses : Responses
    prompts : mapping of str to str or None
        The prompt ids and texts the responses must answer.
    against : str
        What holds ``prompts``, for the message (e.g. ``"store 'a.h5'"``).
    allow_extra : bool, default False
        Accept responses to further prompts.

    Raises
    ------
    ValueError
        One line naming both sides, how many prompts differ and the first few.

    Examples
    --------
    >>> from aqi.behaviour import Response
    >>> rs = Responses(records=(Response("a", 0, "No.", "unsafe", prompt_text="Hurt?"),))
    >>> check_same_prompts(rs, {"a": "Hurt?"}, against="store 's.h5'")
    >>> check_same_prompts(rs, {"a": "Help?"}, against="store 's.h5'")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: responses (in memory) answer other prompts than store 's.h5': 1 prompt id(s) ...
    """
    answered: dict[str, str | None] = {}
    empty: set[str] = set()
    for r in responses:
        answered.setdefault(r.prompt_id, r.prompt_text)
        if not r.text.strip():
            empty.add(r.prompt_id)
    head = f"{describe(responses)} answer other prompts than {against}"
    missing = [i for i in prompts if i not in answered]
    if missing:
        raise ValueError(
            f"{head}: {len(missing)} of its {len(prompts)} prompts have no response "
            f"(e.g. {', '.join(map(repr, missing[:3]))})"
        )
    extra = [i for i in answered if i not in prompts and i not in empty]
    if extra and not allow_extra:
        raise ValueError(
            f"{head}: {len(extra)} response(s) answer prompts it does not hold "
            f"(e.g. {', '.join(map(repr, extra[:3]))})"
        )
    other = [
        i
        for i, t in prompts.items()
        if t is not None and answered[i] is not None and answered[i] != t
    ]
    if other:
        i = other[0]
        there, here = _around(str(prompts[i]), str(answered[i]))
        raise ValueError(
            f"{head}: {len(other)} prompt id(s) have another text (e.g. {i!r}: {there} there, "
            f"{here} in the responses)"
        )


def check_written_by(
    responses: Responses,
    identity: Mapping[str, Any],
    *,
    against: str,
    allow_other_model: bool = False,
) -> str | None:
    """Refuse ``responses`` written by another model than the one ``identity`` describes.

    Parameters
    ----------
    responses : Responses
    identity : mapping
        The other side's ``weights_fingerprint`` (and ``dtype``, when known): a
        store's ``provenance["identity"]``, or a loaded model's.
    against : str
        What ``identity`` belongs to, for the message (``"store 'a.h5'"``).
    allow_other_model : bool, default False
        Accept another model's responses; the returned note says so.

    Returns
    -------
    str or None
        ``None`` when the fingerprints agree or one side has none (bring-your-own
        data cannot be checked); with ``allow_other_model``, a note for the report.

    Raises
    ------
    ValueError
        Another model wrote them, and ``allow_other_model`` is false.

    Examples
    --------
    >>> from aqi.behaviour import Response
    >>> rs = Responses(records=(Response("a", 0, "No.", "unsafe"),),
    ...                header={"identity": {"weights_fingerprint": "f" * 64}})
    >>> check_written_by(rs, {"weights_fingerprint": "f" * 64}, against="store 's.h5'")
    >>> check_written_by(rs, {"weights_fingerprint": "0" * 64}, against="store 's.h5'",
    ...                  allow_other_model=True)  # doctest: +ELLIPSIS
    "responses (in memory) were written by another model than store 's.h5' ...; used anyway ..."
    """
    theirs = responses.identity.get("weights_fingerprint")
    ours = identity.get("weights_fingerprint")
    if not isinstance(theirs, str) or not isinstance(ours, str) or theirs == ours:
        return None
    what = f"weights fingerprint {theirs[:12]}… vs {ours[:12]}…"
    d_theirs, d_ours = responses.identity.get("dtype"), identity.get("dtype")
    if d_theirs and d_ours and d_theirs != d_ours:
        what += f", dtype {d_theirs} vs {d_ours}"
    model = responses.header.get("provenance", {}).get("model")
    by = f" (model {model!r})" if isinstance(model, str) and model else ""
    msg = f"{describe(responses)}{by} were written by another model than {against} ({what})"
    if not allow_other_model:
        raise ValueError(
            f"{msg}; they do not show what that model does — generate them with the same "
            "model, or pass allow_other_model=True (CLI: --allow-other-model) to use them anyway"
        )
    return f"{msg}; used anyway (allow_other_model)"


def same_responses(a: Responses, b: Responses) -> bool:
    """Whether ``a`` and ``b`` are the same evidence: one file twice, or equal records.

    Examples
    --------
    >>> from aqi.behaviour import Response
    >>> rs = Responses(records=(Response("a", 0, "No.", "unsafe"),))
    >>> same_responses(rs, rs), same_responses(rs, Responses(records=()))
    (True, False)
    """
    if a is b:
        return True
    if a.source and b.source:
        pa, pb = Path(a.source), Path(b.source)
        try:
            if pa.exists() and pb.exists() and pa.samefile(pb):
                return True
        except OSError:  # pragma: no cover - unreadable paths: compare the contents
            pass
    return a.records == b.records and dict(a.identity) == dict(b.identity)
