"""Running any judge over responses: the labels a judge may give, one batched call or one
call per response, and an error naming the prompt when a judge fails or answers otherwise."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .responses import Response, Responses

__all__ = ["LABEL_NAMES", "judge_labels", "judge_responses"]


#: The three outcomes of a judge, in the order labels are reported.
LABEL_NAMES = ("refusal", "compliance", "unsure")


def _as_label(v: Any) -> str | None:
    """A judge's answer as a label, or ``None`` when it is not one."""
    if isinstance(v, str):
        return v if v in LABEL_NAMES else None
    if type(v).__module__ == "numpy" and type(v).__name__ in ("bool", "bool_"):
        v = bool(v)  # a numpy bool
    if isinstance(v, bool):
        return "refusal" if v else "compliance"
    label = getattr(v, "label", None)  # a verdict object (EncoderVerdict, ...)
    return label if isinstance(label, str) and label in LABEL_NAMES else None


def _batch_call(batch: Callable[..., Any], rows: list[Response]) -> list[Any]:
    import inspect

    texts = [r.text for r in rows]
    try:
        wants_prompts = "prompts" in inspect.signature(batch).parameters
    except (TypeError, ValueError):
        wants_prompts = False
    return list(batch(texts, prompts=[r.prompt_text for r in rows]) if wants_prompts
                else batch(texts))  # fmt: skip


def judge_labels(
    responses: Responses | Sequence[Response], judge: Callable[[str], Any] | str | None = None
) -> tuple[str, ...]:
    """Run ``judge`` over every response; one label per response.

    Parameters
    ----------
    responses : Responses or sequence of Response
    judge : judge, judge name or None
        Anything :func:`aqi.behaviour.resolve_judge` takes (``None``: the default
        :class:`RefusalJudge`). A judge answers ``"refusal"``,
        ``"compliance"`` or ``"unsure"`` (``True``/``False`` are read as refusal and
        compliance); a judge with ``batch(texts)`` is called once per list.

    Returns
    -------
    tuple of str
        ``"refusal"``, ``"compliance"`` or ``"unsure"`` per response, in order.

    Raises
    ------
    TypeError
        The judge is not callable, or returned something other than a label,
        naming the judge and the prompt id.
    RuntimeError
        The judge raised; the message names the prompt id (the original error is chained).

    Examples
    --------
    >>> rs = [Response("p1", 0, "I cannot do that.", "unsafe"), Response("p2", 0, "Sure.", "safe")]
    >>> judge_labels(rs, "rules")
    ('refusal', 'compliance')
    >>> judge_labels(rs, lambda t: "yes")
    Traceback (most recent call last):
    ...
    TypeError: judge <lambda> returned 'yes' (str) for prompt 'p1' (sample 0); a judge must \
return 'refusal', 'compliance', 'unsure' or a bool
    """
    from .judges import judge_identity, resolve_judge

    if judge is not None and not isinstance(judge, str) and not callable(judge):
        raise TypeError(f"judge must be callable (str -> label), got {type(judge).__name__}")
    judge = resolve_judge(judge)
    rows = list(responses)
    batch = getattr(judge, "batch", None)
    if callable(batch):
        try:
            verdicts = _batch_call(batch, rows)
        except Exception as e:
            first = rows[0].prompt_id if rows else None
            raise RuntimeError(
                f"judge {type(judge).__name__}.batch raised on {len(rows)} responses "
                f"(prompts {first!r}...): {e}"
            ) from e
    else:
        verdicts = []
        for r in rows:
            try:
                verdicts.append(judge(r.text))
            except Exception as e:
                raise RuntimeError(
                    f"judge raised on the response to prompt {r.prompt_id!r} (sample "
                    f"{r.sample}): {type(e).__name__}: {e}"
                ) from e
    if len(verdicts) != len(rows):
        raise TypeError(f"judge returned {len(verdicts)} verdicts for {len(rows)} responses")
    out = []
    for r, v in zip(rows, verdicts, strict=True):
        label = _as_label(v)
        if label is None:
            raise TypeError(
                f"judge {judge_identity(judge)['name']} returned {v!r} ({type(v).__name__}) "
                f"for prompt {r.prompt_id!r} (sample {r.sample}); a judge must return "
                "'refusal', 'compliance', 'unsure' or a bool"
            )
        out.append(label)
    return tuple(out)


def judge_responses(
    responses: Responses | Sequence[Response], judge: Callable[[str], Any] | str | None = None
) -> tuple[bool | None, ...]:
    """:func:`judge_labels` as ``True`` (refusal), ``False`` (compliance) or ``None`` (unsure).

    Examples
    --------
    >>> rs = [Response("p1", 0, "I cannot do that.", "unsafe"), Response("p2", 0, "", "safe")]
    >>> judge_responses(rs, "rules")
    (True, False)
    >>> judge_responses(rs, lambda t: "unsure" if not t else "refusal")
    (True, None)
    """
    return tuple(None if v == "unsure" else v == "refusal" for v in judge_labels(responses, judge))
