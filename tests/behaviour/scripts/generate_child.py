"""Generate a tiny Llama's responses to 40 bundled prompts (used by the crash tests).

usage: generate_child.py TOKENIZER_DIR OUT.jsonl [DELAY_S]
A forward pre-hook sleeps DELAY_S per decoding step so the parent can kill it part-way.
"""

import sys
import time

from transformers import AutoTokenizer

import aqi
from aqi.behaviour import generate_responses
from tests.conftest import build_tiny

N_PROMPTS, BATCH, NEW_TOKENS = 40, 4, 4


def main() -> None:
    tok_dir, out = sys.argv[1], sys.argv[2]
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    tok = AutoTokenizer.from_pretrained(tok_dir)
    model = build_tiny("llama", len(tok))
    if delay:
        model.model.layers[0].register_forward_pre_hook(lambda *a: time.sleep(delay))
    prompts = aqi.bundled_prompts()[:N_PROMPTS]
    rs = generate_responses(model, tok, prompts, out,
                            decoding=aqi.Decoding(max_new_tokens=NEW_TOKENS),
                            writing=aqi.Writing(batch_size=BATCH, progress=False))  # fmt: skip
    print("responses", len(rs), flush=True)


if __name__ == "__main__":
    main()
