"""Imports point down (activations → indices → probes → checks/audit → report, viz, cli),
and no room imports another room's private module.

Every module of ``aqi/`` is parsed with :mod:`ast`; every import counts, including
the ones inside functions and under ``if TYPE_CHECKING:`` (a lazy import is still
a dependency). A module may import its own layer or a lower one, never a higher
one. Import cycles are looked for among the imports that run when a module is
imported (module and class bodies, not function bodies, not ``TYPE_CHECKING``). A room
(``ROOMS``) may import another room's public modules only; the core's underscore-named
leaves are shared by design (:func:`private_imports_across_rooms` states the rule).
Failures name the offending import as ``path:line``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Layers, bottom to top. A module belongs to the longest prefix listed here;
#: a new top-level module must be placed in a layer before this test passes.
LAYERS: dict[str, int] = {
    "aqi._stats": 0,  # the statistics core, below everything that computes
    "aqi._version": 0,
    "aqi._errors": 0,  # ArgumentError: a leaf (imports nothing from aqi), used by every layer
    "aqi._progress": 0,  # progress bars: a leaf (imports nothing from aqi), used by every layer
    "aqi._outputs": 0,  # the output guard and atomic write: a leaf, used by stores and reports
    "aqi._vocab": 0,  # names checked at the door without torch (the poolings): a leaf
    "aqi._settings": 0,  # settings values' field checks and their moved keywords: a leaf
    "aqi.jobs": 0,  # the room of long-running writers: guard, lock, parts, resume, provenance
    "aqi.loading": 1,  # model loading, beside capture
    "aqi.model_info": 1,  # a loaded model's family, input device and context length
    "aqi.data": 0,  # bundled data files
    "aqi.prompts": 1,  # the prompts room: prompt sets, readers, public sets, rendering, spans
    "aqi.activations": 1,
    "aqi.indices": 2,
    "aqi.probes": 3,
    "aqi.checks": 4,
    "aqi.verdicts": 4,  # thresholds, Check, verdicts: the rule book's vocabulary
    "aqi.audit": 4,
    "aqi.audit_values": 4,  # the settings values of an audit (Scoring, Judging, Evidence)
    "aqi.coverage": 4,  # what the audit's evidence was validated to detect (bench results)
    "aqi._audit_inputs": 4,  # what aqi.audit checks of its inputs before it scores
    "aqi": 5,  # the package itself re-exports every layer
    "aqi.report": 5,
    "aqi.viz": 5,
    "aqi.cli": 5,
    "aqi._cli_parser": 5,
    "aqi._cli_launch": 5,  # the --nproc launcher of the command line
    "aqi._cli_stores": 5,  # the commands that only read stores (info, score, compare, ...)
    "aqi.tables": 5,  # plain-text tables of results (the command line, the demo)
    "aqi._cli_types": 5,  # the argument types of the command line (numbers, layers, spans)
    "aqi._cli_errors": 5,  # how the command line says interruptions and users' errors
    "aqi.pytest_plugin": 5,
    "aqi.behaviour": 3,  # beside the probes: it needs activations and the statistics core
    "aqi.demo": 5,
    "aqi.integrations": 5,  # training callbacks and `aqi track`: capture + judge + checks
    "aqi.workflow": 5,  # the orchestrator of long jobs (aqi audit): over every layer below
    "aqi._latent": 5,  # the latent audit's steps (aqi audit --latent-only), under the workflow
}
LAYER_NAMES = {
    0: "core / shared rooms",
    1: "activations",
    2: "indices",
    3: "probes",
    4: "checks/audit",
    5: "report/viz/cli/pytest plugin/demo",
}


@dataclass(frozen=True)
class Import:
    """One import of an ``aqi`` module, resolved to the module it loads."""

    source: str  # importing module
    target: str  # imported module (the longest known prefix)
    path: Path
    line: int
    at_import_time: bool  # runs when ``source`` is imported

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}:{self.line}"


def module_names(package_dir: Path) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file of a package."""
    base = package_dir.parent
    out: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, at_import_time: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every node under ``node`` with whether it runs when the module is imported."""
    for child in ast.iter_child_nodes(node):
        runs = at_import_time
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            runs = False
        if isinstance(node, ast.If) and _is_type_checking(node.test) and child in node.body:
            runs = False
        yield child, runs
        yield from _walk(child, runs)


def _known(name: str, modules: dict[str, Path]) -> str:
    """The longest prefix of ``name`` that is a module of the package."""
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts)


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """Every import of a package module in ``path``, resolved to module names."""
    top = min(modules, key=len).split(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[Import] = []
    for node, runs in _walk(tree, True):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.split(".")[0] == top]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                base_parts = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != top:
                continue
            # ``from pkg import sub`` loads the submodule when ``sub`` is one.
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        for t in dict.fromkeys(targets):
            target = _known(t, modules)
            if target and target != module:
                found.append(Import(module, target, path, node.lineno, runs))
    return found


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    while parts:
        if ".".join(parts) in LAYERS:
            return LAYERS[".".join(parts)]
        parts.pop()
    return None


def upward_imports(imports: list[Import], root: Path) -> list[str]:
    """``path:line: message`` for every import of a higher layer."""
    bad = []
    for imp in imports:
        src, dst = layer_of(imp.source), layer_of(imp.target)
        if src is None or dst is None:
            continue  # reported by test_every_module_has_a_layer
        if dst > src:
            bad.append(
                f"{imp.where(root)}: {imp.source} ({LAYER_NAMES[src]}) imports {imp.target} "
                f"({LAYER_NAMES[dst]})" + ("" if imp.at_import_time else " [lazy]")
            )
    return bad


def import_cycles(imports: list[Import], root: Path) -> list[str]:
    """One description per cycle of import-time imports (each strongly connected component)."""
    graph: dict[str, dict[str, Import]] = {}
    for imp in imports:
        if imp.at_import_time:
            graph.setdefault(imp.source, {}).setdefault(imp.target, imp)
    # Tarjan's strongly connected components.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    out = []
    for comp in components:
        edges = [
            f"    {imp.where(root)}: {a} imports {b}"
            for a in comp
            for b, imp in sorted(graph.get(a, {}).items())
            if b in comp
        ]
        out.append(f"cycle among {', '.join(comp)}:\n" + "\n".join(edges))
    return out


#: Rooms, bottom to top: ``room → module prefixes`` (the longest prefix wins; ``"aqi"``
#: names the package's ``__init__`` only). A room is a top-level subpackage or top-level
#: module of ``aqi``; the groups listed here hold several top-level modules that own one
#: concern together. Every module must be placed (``docs/architecture.py`` draws these
#: rooms); one that is not counts as a room of its own, its top-level name.
ROOMS: dict[str, tuple[str, ...]] = {
    "core": ("aqi._stats", "aqi._errors", "aqi._progress", "aqi._outputs", "aqi._vocab",
             "aqi._settings", "aqi._version", "aqi.data"),
    "jobs": ("aqi.jobs",),
    "prompts": ("aqi.prompts",),
    "activations": ("aqi.activations",),
    "loading": ("aqi.loading", "aqi.model_info"),
    "indices": ("aqi.indices",),
    "probes": ("aqi.probes",),
    "behaviour": ("aqi.behaviour",),
    "rule book": ("aqi.checks", "aqi.verdicts", "aqi.audit", "aqi.audit_values",
                  "aqi._audit_inputs",
                  "aqi.coverage"),
    "report": ("aqi.report", "aqi.viz", "aqi.tables"),
    "workflow": ("aqi.workflow", "aqi._latent"),
    "integrations": ("aqi.integrations", "aqi.pytest_plugin"),
    "demo": ("aqi.demo",),
    "command line": ("aqi.cli", "aqi._cli_parser", "aqi._cli_launch", "aqi._cli_stores",
                     "aqi._cli_types", "aqi._cli_errors", "aqi.__main__"),
    "package": ("aqi",),
}
#: The core's leaves are underscore-named by convention and shared by design: any room
#: may import them.
SHARED_ROOMS = {"core"}


def room_of(module: str) -> str:
    """The room of a module: the ``ROOMS`` entry with the longest matching prefix, else
    the module's top-level name (``aqi.x.y`` → ``aqi.x``)."""
    best, size = ".".join(module.split(".")[:2]), 0
    for room, prefixes in ROOMS.items():
        for p in prefixes:
            inside = module.startswith(p + ".") and "." in p  # "aqi": the package only
            if (module == p or inside) and len(p) > size:
                best, size = room, len(p)
    return best


def is_private(module: str) -> bool:
    """Whether a module is private: a part of its name below ``aqi`` starts with ``_``
    (``aqi.activations._parts``, ``aqi._tables``, ``aqi.viz._style.x``; not ``__main__``)."""
    return any(p.startswith("_") and not p.startswith("__") for p in module.split(".")[1:])


def private_imports_across_rooms(imports: list[Import], root: Path) -> list[str]:
    """``path:line: message`` for every import of another room's private module.

    The rule: an import (at import time or lazy) of module ``t`` by module ``s`` is refused
    when ``room_of(s) != room_of(t)``, ``t`` is private (:func:`is_private`) and ``t``'s
    room is not shared (``SHARED_ROOMS``: the core's leaves). Within a room, private
    modules are the room's own business.
    """
    bad = []
    for imp in imports:
        a, b = room_of(imp.source), room_of(imp.target)
        if a != b and b not in SHARED_ROOMS and is_private(imp.target):
            bad.append(f"{imp.where(root)}: {imp.source} ({a}) imports {imp.target}, a private "
                       f"module of {b}" + ("" if imp.at_import_time else " [lazy]"))
    return bad


@pytest.fixture(scope="module")
def package() -> tuple[dict[str, Path], list[Import]]:
    modules = module_names(ROOT / "aqi")
    imports = [imp for m, p in modules.items() for imp in imports_of(m, p, modules)]
    return modules, imports


def test_every_module_has_a_layer(package: tuple[dict[str, Path], list[Import]]) -> None:
    modules, _ = package
    # The walk must have seen the package, or the tests below pass on nothing.
    assert {"aqi.activations.store", "aqi.indices.profile", "aqi.probes.ood"} <= set(modules)
    unplaced = sorted(m for m in modules if layer_of(m) is None)
    assert not unplaced, f"modules in no layer (add them to LAYERS in {__file__}): {unplaced}"


def test_imports_point_down(package: tuple[dict[str, Path], list[Import]]) -> None:
    _, imports = package
    bad = upward_imports(imports, ROOT)
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_import_cycles(package: tuple[dict[str, Path], list[Import]]) -> None:
    _, imports = package
    cycles = import_cycles(imports, ROOT)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_private_imports_across_rooms(package: tuple[dict[str, Path], list[Import]]) -> None:
    modules, imports = package
    unroomed = sorted({room_of(m) for m in modules} - set(ROOMS))
    assert not unroomed, f"modules in no room (add them to ROOMS in {__file__}): {unroomed}"
    bad = private_imports_across_rooms(imports, ROOT)
    assert not bad, "private modules imported across rooms:\n" + "\n".join(bad)


# -- the checker checks ---------------------------------------------------------------


def _fake(tmp_path: Path, files: dict[str, str]) -> tuple[dict[str, Path], list[Import]]:
    for rel, text in files.items():
        p = tmp_path / "aqi" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    modules = module_names(tmp_path / "aqi")
    return modules, [imp for m, p in modules.items() for imp in imports_of(m, p, modules)]


def test_checker_finds_lazy_and_type_checking_upward_imports(tmp_path: Path) -> None:
    _, imports = _fake(
        tmp_path,
        {
            "__init__.py": "",
            "viz/__init__.py": "",
            "viz/figures.py": "def plot(): ...\n",
            "audit.py": "",
            "indices/__init__.py": "",
            "indices/pool.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from ..audit import x\n"
                "def plot():\n"
                "    from ..viz.figures import plot\n"
                "    import aqi.viz\n"
            ),
        },
    )
    bad = upward_imports(imports, tmp_path)
    assert [b.split(":")[:2] for b in bad] == [
        ["aqi/indices/pool.py", "3"],
        ["aqi/indices/pool.py", "5"],
        ["aqi/indices/pool.py", "6"],
    ]
    assert "aqi.viz.figures (report/viz/cli/pytest plugin/demo) [lazy]" in bad[1]


def test_checker_resolves_relative_imports_and_finds_cycles(tmp_path: Path) -> None:
    _, imports = _fake(
        tmp_path,
        {
            "__init__.py": "from . import report\n",
            "report.py": "from .viz import figures\n",
            "viz/__init__.py": "from .figures import plot\n",
            "viz/figures.py": "from .. import report\ndef plot(): ...\n",
        },
    )
    edges = {(i.source, i.target) for i in imports}
    assert edges == {
        ("aqi", "aqi.report"),
        ("aqi.report", "aqi.viz.figures"),
        ("aqi.viz", "aqi.viz.figures"),
        ("aqi.viz.figures", "aqi.report"),
    }
    (cycle,) = import_cycles(imports, tmp_path)
    assert cycle.startswith("cycle among aqi.report, aqi.viz.figures")
    assert "aqi/viz/figures.py:1: aqi.viz.figures imports aqi.report" in cycle
    # A lazy import closes no cycle.
    lazy = [Import(i.source, i.target, i.path, i.line, False) for i in imports]
    assert import_cycles(lazy, tmp_path) == []


def test_checker_finds_private_imports_across_rooms(tmp_path: Path) -> None:
    modules, imports = _fake(
        tmp_path,
        {
            "__init__.py": "",
            "__main__.py": "from .cli import main\n",
            "_stats.py": "",
            "_tables.py": "",
            "cli.py": "from . import _cli_parser\n",  # one room (command line): fine
            "_cli_parser.py": "",
            "activations/__init__.py": "from . import _parts\n",  # its own private: fine
            "activations/_parts.py": "",
            "behaviour/__init__.py": "",
            "behaviour/gen.py": (
                "from .._stats import bootstrap\n"  # the core's leaf: fine
                "from ..activations._parts import WriterLock\n"
                "def run():\n"
                "    import aqi._tables\n"
                "    from aqi.activations import _parts\n"
            ),
        },
    )
    assert {room_of(m) for m in modules} <= set(ROOMS) | {"aqi._tables"}
    bad = private_imports_across_rooms(imports, tmp_path)
    assert [b.split(":")[:2] for b in bad] == [
        ["aqi/behaviour/gen.py", "2"],
        ["aqi/behaviour/gen.py", "4"],
        ["aqi/behaviour/gen.py", "5"],
    ]
    assert bad[0].endswith("imports aqi.activations._parts, a private module of activations")
    assert bad[2].endswith("[lazy]")


@pytest.mark.parametrize(("old", "new"), [("prompts", "prompts.prompt_set"),
                                          ("readers", "prompts.readers"),
                                          ("public_sets", "prompts.public_sets"),
                                          ("encoding", "prompts.encoding"),
                                          ("spans", "prompts.spans"),
                                          ("provenance", "jobs.provenance")])
def test_modules_moved_to_shared_rooms_still_import_with_a_warning(old: str, new: str) -> None:
    import importlib
    import sys

    sys.modules.pop(f"aqi.activations.{old}", None)
    with pytest.warns(DeprecationWarning, match=rf"aqi\.activations\.{old} moved to "
                                                rf"aqi\.{new}"):
        shim = importlib.import_module(f"aqi.activations.{old}")
    room = importlib.import_module(f"aqi.{new}")
    assert shim.__all__ and all(getattr(shim, n) is getattr(room, n) for n in shim.__all__)


# -- short files, short functions (issue 29, item 4) ----------------------------------

MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80  # ``def`` to its last line, docstring included (docs/architecture.py)

#: The command line's parser tables: one ``add_argument`` per flag, read as a table.
PARSER_TABLES = {"aqi/_cli_parser.py:build_parser"}

#: Files and functions still over the limits, each with its length today (none since
#: issue 29). A listed one may shrink (then lower or drop its entry), never grow; anything
#: not listed must stay within the limits.
KNOWN_LONG: dict[str, int] = {}


def _lengths(root: Path) -> dict[str, int]:
    """``{"path": lines}`` for every file of ``root/aqi`` and ``{"path:function": lines}``
    for every function (methods and nested functions included)."""
    out: dict[str, int] = {}
    for path in sorted((root / "aqi").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        out[rel] = len(text.splitlines())
        for node in ast.walk(ast.parse(text, filename=rel)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                key = f"{rel}:{node.name}"
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                out[key] = max(out.get(key, 0), n)
    return out


def too_long(lengths: dict[str, int], known: dict[str, int]) -> list[str]:
    """One line per file over :data:`MAX_FILE_LINES` or function over
    :data:`MAX_FUNCTION_LINES` that is not in ``known``, or is and grew."""
    bad = []
    for key, n in sorted(lengths.items()):
        limit = MAX_FUNCTION_LINES if ":" in key else MAX_FILE_LINES
        if n <= limit or key in PARSER_TABLES:
            continue
        what = "function" if ":" in key else "file"
        if key not in known:
            bad.append(f"{key}: {what} of {n} lines (at most {limit})")
        elif n > known[key]:
            bad.append(f"{key}: {what} grew from {known[key]} to {n} lines (at most {limit})")
    return bad


def test_files_and_functions_are_short() -> None:
    bad = too_long(_lengths(ROOT), KNOWN_LONG)
    assert not bad, "too long:\n" + "\n".join(bad)


def test_length_checker_finds_new_and_grown(tmp_path: Path) -> None:
    long_body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    _fake(tmp_path, {
        "__init__.py": "",
        "big.py": "x = 1\n" * (MAX_FILE_LINES + 1),
        "steps.py": f"def step():\n{long_body}",
        "old.py": f"def known():\n{long_body}",
    })  # fmt: skip
    lengths = _lengths(tmp_path)
    bad = too_long(lengths, {"aqi/old.py:known": MAX_FUNCTION_LINES + 1})
    assert bad == [
        f"aqi/big.py: file of {MAX_FILE_LINES + 1} lines (at most {MAX_FILE_LINES})",
        f"aqi/steps.py:step: function of {MAX_FUNCTION_LINES + 1} lines (at most "
        f"{MAX_FUNCTION_LINES})",
    ]
    grown = too_long(lengths, {"aqi/old.py:known": MAX_FUNCTION_LINES})
    assert any("aqi/old.py:known: function grew from 80 to 81" in b for b in grown)
