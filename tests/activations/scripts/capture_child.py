"""Run a capture of a tiny Llama over the bundled prompts (used by the crash and torchrun tests).

usage: capture_child.py TOKENIZER_DIR OUT.h5 [DELAY_S]
A forward pre-hook sleeps DELAY_S per batch so the parent can kill it part-way.
"""

import sys
import time

import torch
from transformers import AutoTokenizer

import aqi
from tests.conftest import build_tiny


def main() -> None:
    tok_dir, out = sys.argv[1], sys.argv[2]
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    if "RANK" in __import__("os").environ:  # started by torchrun
        import torch.distributed as dist

        dist.init_process_group("gloo")
    tok = AutoTokenizer.from_pretrained(tok_dir)
    model = build_tiny("llama", len(tok))
    if delay:
        model.model.layers[0].register_forward_pre_hook(lambda *a: time.sleep(delay))
    prompts = aqi.bundled_prompts()[:120]
    store = aqi.capture(
        model,
        tok,
        prompts,
        out,
        pooling=("mean", "last"),
        writing=aqi.Writing(batch_size=4, commit_rows=8, progress=False),
    )
    print("rows", store.n_rows, flush=True)
    store.close()
    if "RANK" in __import__("os").environ:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
