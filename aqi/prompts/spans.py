"""Where in the token sequence activations are read: the one span grammar.

A *span* names a set of token positions of a rendered prompt. Capture, generation, the
command line, the store format and the checks take spans as values from this module;
nothing else special-cases positions.

====================  ==========================================================
``"instruction"``     the tokens overlapping the user's text (alias ``"user"``);
                      pooled ``last`` it is *t_inst* (Zhao et al. 2025)
``"post_instruction"``  the tokens after the user's text up to where the response
                      starts: end of turn, assistant header, generation prompt —
                      whatever the chat template renders there; pooled ``last`` it
                      is *t_post-inst*, the position Arditi et al. (2024) read the
                      refusal direction at. Without a chat template there are no
                      such tokens: the final prompt token is used (said once)
``"response_onset"``  the first *k* tokens of the response (``onset_tokens``,
                      default 5; Qi et al. 2024); a shorter response gives all of
                      its tokens and is counted in the store's ``span_tokens``
``"response"``        every token of the response
``"all"``             every real token of the rendered input
====================  ==========================================================

Spans are located from character offsets of the rendered text (the chat template's own
output), so they hold for any template and any fast tokenizer, under left or right padding
(positions come from masks, :mod:`.pooling`).

References
----------
Zhao et al. 2025, "LLMs Encode Harmfulness and Refusal Separately", arXiv 2507.11878.
Arditi et al. 2024, "Refusal in Language Models Is Mediated by a Single Direction",
arXiv 2406.11717. Qi et al. 2024, "Safety Alignment Should Be Made More Than Just a Few
Tokens Deep", arXiv 2406.05946.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_ONSET_TOKENS",
    "DEFAULT_SPANS",
    "RESPONSE_SPANS",
    "SPANS",
    "SPAN_ALIASES",
    "CharRegions",
    "canonical_span",
    "check_spans",
    "token_ranges",
]

SPANS: tuple[str, ...] = ("instruction", "post_instruction", "response_onset", "response", "all")
#: Older spellings accepted everywhere a span is named (stores record the canonical name).
SPAN_ALIASES: dict[str, str] = {"user": "instruction"}
#: Spans that read the response, so the rows need one.
RESPONSE_SPANS: frozenset[str] = frozenset({"response_onset", "response"})
#: What :func:`aqi.capture` reads when not told: the two axes, one forward pass.
DEFAULT_SPANS: tuple[str, ...] = ("instruction", "post_instruction")
DEFAULT_ONSET_TOKENS = 5


def canonical_span(span: object, *, name: str = "span") -> str:
    """The canonical name of one span (``"user"`` → ``"instruction"``).

    Raises
    ------
    ValueError
        Naming ``name``, the value and the accepted spans.

    Examples
    --------
    >>> canonical_span("user"), canonical_span("post_instruction")
    ('instruction', 'post_instruction')
    """
    if isinstance(span, str):
        span = SPAN_ALIASES.get(span, span)
        if span in SPANS:
            return span
    accepted = ", ".join(map(repr, SPANS))
    raise ValueError(f"{name}={span!r}; expected one of {accepted} (or 'user' for 'instruction')")


def check_spans(spans: object, *, name: str = "spans") -> tuple[str, ...]:
    """Validate one span or a sequence of spans; canonical names, duplicates dropped, in order.

    Examples
    --------
    >>> check_spans("user")
    ('instruction',)
    >>> check_spans(["instruction", "post_instruction", "user"])
    ('instruction', 'post_instruction')
    """
    items = [spans] if isinstance(spans, str) else spans
    if not isinstance(items, Sequence) or isinstance(items, bytes):
        raise ValueError(f"{name}={spans!r}; expected a span name or a sequence of them")
    if not items:
        raise ValueError(f"{name} is empty; pass one or more of {', '.join(SPANS)}")
    return tuple(dict.fromkeys(canonical_span(s, name=name) for s in items))


@dataclass(frozen=True, slots=True)
class CharRegions:
    """Character ranges of one rendered input: the user's text and the response.

    ``response`` is ``(len(text), len(text))`` when the input ends with the generation
    prompt (no response rendered): the post-instruction region then runs to the end.
    """

    text_length: int
    instruction: tuple[int, int]
    response: tuple[int, int]


def _post_instruction(real: list[tuple[int, int, int]], instr: list[int], first_resp: int,
                      r0: int, chat: bool) -> tuple[int, int] | str:
    """The post-instruction token range, or why there is none."""
    if not instr:
        return "no token overlaps the user's text"
    if not chat:
        return (instr[-1], instr[-1] + 1)  # the final prompt token
    post = [j for j, a, b in real if instr[-1] < j < first_resp and a < r0]
    if post:
        return (post[0], post[-1] + 1)
    return "the chat template renders no token between the user's text and the response"


def token_ranges(
    offsets: Sequence[tuple[int, int]],
    regions: CharRegions,
    spans: Sequence[str],
    *,
    chat: bool,
    onset_tokens: int = DEFAULT_ONSET_TOKENS,
) -> tuple[dict[str, tuple[int, int]], dict[str, str]]:
    """Token ranges ``[start, stop)`` of each span, from the tokenizer's character offsets.

    A token belongs to the instruction when it overlaps the user's text, to the response
    when it overlaps the response; post-instruction tokens are the ones strictly between
    (every token after the last instruction token that starts before the response and
    does not overlap it). Zero-width tokens are ignored.

    Parameters
    ----------
    offsets : sequence of (int, int)
        Character offsets of each token of the rendered input.
    regions : CharRegions
        Where the user's text and the response are in the rendered input.
    spans : sequence of str
        Canonical span names (:func:`check_spans`).
    chat : bool
        Whether the input was rendered with a chat template. Without one there is no
        post-instruction region: ``post_instruction`` is the final prompt token.
    onset_tokens : int
        Tokens of ``response_onset``.

    Returns
    -------
    ranges, problems
        ``{span: (start, stop)}`` for the spans found; ``{span: reason}`` for spans that
        select no token (the caller raises with the prompt's id).

    Examples
    --------
    >>> text = "<u>Hi there</u><a>"
    >>> offsets = [(0, 3), (3, 5), (5, 11), (11, 15), (15, 18)]
    >>> regions = CharRegions(len(text), (3, 11), (len(text), len(text)))
    >>> token_ranges(offsets, regions, ["instruction", "post_instruction"], chat=True)[0]
    {'instruction': (1, 3), 'post_instruction': (3, 5)}
    """
    u0, u1 = regions.instruction
    r0, r1 = regions.response
    real = [(j, a, b) for j, (a, b) in enumerate(offsets) if b > a]
    instr = [j for j, a, b in real if b > u0 and a < u1]
    resp = [j for j, a, b in real if b > r0 and a < r1] if r1 > r0 else []
    ranges: dict[str, tuple[int, int]] = {}
    problems: dict[str, str] = {}
    for span in spans:
        if span == "all":
            ranges[span] = (0, len(offsets))
        elif span == "instruction":
            if instr:
                ranges[span] = (instr[0], instr[-1] + 1)
            else:
                problems[span] = "no token overlaps the user's text"
        elif span == "post_instruction":
            got = _post_instruction(real, instr, resp[0] if resp else len(offsets), r0, chat)
            if isinstance(got, str):
                problems[span] = got
            else:
                ranges[span] = got
        else:  # response, response_onset
            if not resp:
                problems[span] = "no token overlaps the response"
            elif span == "response":
                ranges[span] = (resp[0], resp[-1] + 1)
            else:
                ranges[span] = (resp[0], min(resp[-1] + 1, resp[0] + onset_tokens))
    return ranges, problems
