"""Follow the ``prompts`` value of ``aqi audit`` through aqi's rooms (issue 29, item 3).

    python docs/prompt_walk.py      # tiny models, 16 prompts, ~30 s

Every call inside aqi that receives the value (the path given, or a PromptSet; a
PromptSet's own methods aside) is a stay in its function's room (the rooms and layers of
tests/test_architecture.py). Prints the stays, returns to a room already left, climbs to
a higher layer, and the resolution calls (``resolve_prompts`` / ``load_prompts``): the
first turns the path into a PromptSet, the others receive that PromptSet and return it.
"""

# ruff: noqa: E402 - a script: aqi and the tests are imported from this checkout, after sys.path
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import aqi
from aqi.prompts import PromptSet
from tests.test_architecture import LAYERS, ROOMS  # the rooms and layers the test uses


def room(mod):
    best = None
    for r, prefixes in ROOMS.items():
        for p in prefixes:
            if (mod == p or mod.startswith(p + ".")) and (best is None or len(p) > len(best[1])):
                best = (r, p)
    return best[0] if best else mod.split(".")[1] if mod.count(".") else mod


def layer(mod):
    best = max((p for p in LAYERS if mod == p or mod.startswith(p + ".")), key=len, default="aqi")
    return LAYERS[best]


seq = []


def prof(frame, event, arg):
    if event != "call":
        return
    mod = frame.f_globals.get("__name__", "")
    if not mod.startswith("aqi"):
        return
    code = frame.f_code
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    vals = [frame.f_locals.get(n) for n in names if n != "self"]
    if any(
        isinstance(v, PromptSet) or (isinstance(v, (str, Path)) and str(v) == PROMPTS) for v in vals
    ):
        seq.append((room(mod), layer(mod), f"{mod}.{code.co_name}"))


from transformers import AutoTokenizer

from aqi.demo import demo_checkpoint
from tests.conftest import build_tiny

d = Path(tempfile.mkdtemp())
tok = AutoTokenizer.from_pretrained(demo_checkpoint())
for name, seed in (("base", 0), ("ft", 1)):
    build_tiny("llama", len(tok), seed=seed).save_pretrained(d / name)
    tok.save_pretrained(d / name)
ps = aqi.bundled_prompts()[:16]
ps.to_jsonl(d / "p.jsonl")
PROMPTS = str(d / "p.jsonl")
from aqi.cli import main

sys.setprofile(prof)
main(
    [
        "audit",
        "--model",
        str(d / "ft"),
        "--baseline-model",
        str(d / "base"),
        "--prompts",
        PROMPTS,
        "--workdir",
        str(d / "w"),
        "--max-new-tokens",
        "4",
        "--n-boot",
        "50",
        "--n-perm",
        "20",
        "--quiet",
    ]
)
sys.setprofile(None)
stays = [seq[0]] if seq else []
for s in seq[1:]:
    if s[0] != stays[-1][0]:
        stays.append(s)
seen, returns, climbs = set(), 0, 0
for i, s in enumerate(stays):
    if s[0] in seen:
        returns += 1
    if i and s[1] > stays[i - 1][1]:
        climbs += 1
    seen.add(s[0])
# a room is "left" once we move on from it
resolutions = [
    fn
    for r, _, fn in seq
    if fn.rsplit(".", 1)[1]
    in ("resolve_prompts", "load_prompts", "load_prompt_set", "read_prompts")
]
print(
    json.dumps(
        {
            "stays": len(stays),
            "returns": returns,
            "climbs": climbs,
            "resolution_calls": resolutions,
            "walk": [f"{r} ({fn})" for r, _, fn in stays],
        },
        indent=1,
    )
)
