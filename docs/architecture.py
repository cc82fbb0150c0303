"""The rooms of ``aqi/`` and the arrows between them, read from the code (not drawn by hand).

    python docs/architecture.py          # docs/img/architecture.png + docs/data/architecture.json

Every module is parsed with :mod:`ast` (the parser of ``tests/test_architecture.py``);
every import counts, lazy ones included. A *room* is a group of modules that own one
concern (``ROOMS``); an *arrow* is a room importing another (with how many imports); an
import is *private* when it names a module whose own name starts with ``_`` in another
room (the core room's shared leaves excepted). Also counted per room: lines, files over
500 lines, functions over 80 lines (``def`` to its last line, docstring included).
"""

from __future__ import annotations

import ast
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_architecture import LAYERS, imports_of, layer_of, module_names  # noqa: E402

#: room → module prefixes (the longest prefix wins), bottom to top.
ROOMS: dict[str, tuple[str, ...]] = {
    "core": ("aqi._stats", "aqi._errors", "aqi._progress", "aqi._outputs", "aqi._vocab",
             "aqi._version", "aqi.data"),
    "prompts": ("aqi.prompts",),
    "activations": ("aqi.activations",),
    "loading": ("aqi.loading",),
    "indices": ("aqi.indices",),
    "probes": ("aqi.probes",),
    "behaviour": ("aqi.behaviour",),
    "rule book": ("aqi.checks", "aqi.verdicts", "aqi.audit", "aqi._audit_inputs"),
    "report": ("aqi.report", "aqi.viz", "aqi._tables"),
    "workflow": ("aqi.workflow", "aqi._latent"),
    "integrations": ("aqi.integrations", "aqi.pytest_plugin"),
    "demo": ("aqi.demo",),
    "command line": ("aqi.cli", "aqi._cli_parser", "aqi._cli_launch", "aqi._cli_stores",
                     "aqi._cli_types", "aqi._cli_errors", "aqi.__main__"),
    "package": ("aqi",),
}
SHARED = {"core"}  # underscore-named by convention, shared by design
MAX_FILE, MAX_FUNCTION = 500, 80


def room_of(module: str) -> str:
    best, size = "package", 0
    for room, prefixes in ROOMS.items():
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > size:
                best, size = room, len(p)
    return best


def _long_functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = (node.end_lineno or node.lineno) - node.lineno + 1
            if n > MAX_FUNCTION:
                out.append((node.name, n))
    return out


def survey() -> dict[str, Any]:
    """Rooms (lines, files, long files and functions), arrows, private imports, circles."""
    modules = module_names(ROOT / "aqi")
    rooms: dict[str, dict[str, Any]] = {r: {"lines": 0, "files": 0, "long_files": [],
                                            "long_functions": []} for r in ROOMS}
    arrows: Counter[tuple[str, str]] = Counter()
    private: list[str] = []
    for mod, path in modules.items():
        r = rooms[room_of(mod)]
        n = len(path.read_text(encoding="utf-8").splitlines())
        r["lines"] += n
        r["files"] += 1
        rel = str(path.relative_to(ROOT))
        if n > MAX_FILE:
            r["long_files"].append(f"{rel} ({n})")
        r["long_functions"] += [f"{rel}:{name} ({k})" for name, k in _long_functions(path)]
        for imp in imports_of(mod, path, modules):
            a, b = room_of(imp.source), room_of(imp.target)
            if a == b:
                continue
            arrows[(a, b)] += 1
            last = imp.target.split(".")[-1]
            if last.startswith("_") and b not in SHARED:
                private.append(f"{imp.where(ROOT)}: {imp.source} → {imp.target}")
    graph = defaultdict(set)
    for a, b in arrows:
        graph[a].add(b)
    circles = sorted({tuple(sorted((a, b))) for a, b in arrows if a in graph[b]})
    return {"rooms": rooms, "arrows": [{"from": a, "to": b, "imports": n}
                                       for (a, b), n in sorted(arrows.items())],
            "private_imports": private, "room_circles": [list(c) for c in circles],
            "functions_over_80": sum(len(r["long_functions"]) for r in rooms.values()),
            "files_over_500": sum(len(r["long_files"]) for r in rooms.values())}


def _level(room: str) -> int:
    levels = [lv for p in ROOMS[room] if (lv := layer_of(p)) is not None]
    return min(levels) if levels else max(LAYERS.values()) + 1


def draw(s: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_level: dict[int, list[str]] = defaultdict(list)
    for room in ROOMS:
        by_level[_level(room)].append(room)
    pos = {}
    for lv, names in by_level.items():
        for i, name in enumerate(names):
            pos[name] = ((i + 1) / (len(names) + 1), lv)
    fig, ax = plt.subplots(figsize=(11, 7.5))
    for arrow in s["arrows"]:
        (x0, y0), (x1, y1) = pos[arrow["from"]], pos[arrow["to"]]
        up = y1 > y0
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops={
            "arrowstyle": "-|>", "lw": 0.4 + 0.25 * min(arrow["imports"], 12),
            "color": "#c0392b" if up else "#7f8c8d", "alpha": 0.55, "shrinkA": 18,
            "shrinkB": 18, "connectionstyle": "arc3,rad=0.08"})
    for room, (x, y) in pos.items():
        r = s["rooms"][room]
        ax.text(x, y, f"{room}\n{r['lines']:,} lines", ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round,pad=0.4", "fc": "#eef5fb", "ec": "#2c3e50"})
    ax.set_ylim(-0.6, max(by_level) + 0.6)
    ax.set_xlim(0, 1)
    ax.axis("off")
    ax.set_title("aqi: rooms (modules grouped by concern) and imports between them; "
                 "grey: downward, red: upward", fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")


def main() -> None:
    s = survey()
    (ROOT / "docs" / "data" / "architecture.json").write_text(json.dumps(s, indent=1) + "\n")
    draw(s, ROOT / "docs" / "img" / "architecture.png")
    for room, r in s["rooms"].items():
        print(f"{room:<13} {r['lines']:>6} lines {r['files']:>3} files; files > 500: "
              f"{len(r['long_files'])}; functions > 80 lines: {len(r['long_functions'])}")
    print(f"arrows {len(s['arrows'])}, private imports across rooms "
          f"{len(s['private_imports'])}, room circles {s['room_circles']}, functions > 80 "
          f"lines {s['functions_over_80']}, files > 500 lines {s['files_over_500']}")
    for p in s["private_imports"]:
        print("  private:", p)


if __name__ == "__main__":
    main()
