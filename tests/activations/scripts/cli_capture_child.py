"""Run ``aqi capture`` (the CLI's main) on a tiny Llama, slowed down, for the Ctrl-C test.

usage: cli_capture_child.py TOKENIZER_DIR OUT.h5 DELAY_S [CLI ARGS...]
Windows of 8 rows are committed; a forward pre-hook sleeps DELAY_S per batch.
"""

import signal
import sys
import time

from transformers import AutoTokenizer

from aqi import cli
from tests.conftest import build_tiny


def main() -> int:
    # A shell that starts a job in the background (`make test &`) ignores SIGINT for it, and
    # Python then installs no KeyboardInterrupt handler: restore it, as a terminal would have.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    tok_dir, out, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    tok = AutoTokenizer.from_pretrained(tok_dir)
    model = build_tiny("llama", len(tok))
    if delay:
        model.model.layers[0].register_forward_pre_hook(lambda *a: time.sleep(delay))
    cli._load_model = lambda name: (model, tok)
    sys.modules["aqi.activations.capture"].DEFAULT_COMMIT_ROWS = 8  # the module, not the function
    argv = ["capture", "--model", "tiny", "--out", out, "--batch-size", "4", "--quiet"]
    return cli.main([*argv, *sys.argv[4:]])


if __name__ == "__main__":
    sys.exit(main())
