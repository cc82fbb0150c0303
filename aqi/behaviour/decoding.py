"""How generation picks tokens: :class:`Decoding`, one value for the decoding settings."""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import ArgumentError
from .._settings import check_bool, check_positive_int

__all__ = ["Decoding"]


@dataclass(frozen=True, kw_only=True)
class Decoding:
    """How :func:`aqi.generate_responses` picks tokens: greedy by default, or sampled.

    Checked when it is made: a sampling setting given without ``do_sample`` is refused
    (greedy decoding reads none of them), as is ``n > 1`` without it.

    Parameters
    ----------
    max_new_tokens : int, default 64
        Generated tokens per response at most.
    do_sample : bool, default False
        Sample instead of greedy decoding.
    temperature, top_p, top_k : sampling settings
        Used only with ``do_sample`` (given without it they are refused);
        ``top_k=None`` disables top-k.
    n : int, default 1
        Samples per prompt (``n > 1`` needs ``do_sample=True``).
    seed : int, default 0
        Sampling seed. Batch ``b`` (of the length-sorted order) is seeded from
        ``(seed, b)``, so a resumed run draws what an uninterrupted one would; the global
        RNG is left as it was.

    Raises
    ------
    aqi._errors.ArgumentError
        A setting that is not what it may be, or that has no effect, named with its value
        and what to do (on the command line, with its flag).

    Examples
    --------
    >>> import aqi
    >>> aqi.Decoding(max_new_tokens=32, do_sample=True, temperature=0.7, n=4).n
    4
    >>> aqi.Decoding(temperature=0.7)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    aqi._errors.ArgumentError: temperature=0.7 has no effect on greedy decoding; add ...
    """

    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None
    n: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive_int("max_new_tokens", self.max_new_tokens)
        check_positive_int("n", self.n)
        check_bool("do_sample", self.do_sample)
        if self.n > 1 and not self.do_sample:
            raise ArgumentError("{n} samples per prompt needs {do_sample} (greedy gives one)",
                                n=self.n, do_sample=True)  # fmt: skip
        if self.do_sample:
            self._check_sampling()
        else:  # greedy decoding reads none of the sampling settings
            for k, default in (("temperature", 1.0), ("top_p", 1.0), ("top_k", None)):
                v = getattr(self, k)
                if v != default:
                    raise ArgumentError(f"{{{k}}} has no effect on greedy decoding; add "
                                        "{do_sample} to sample, or leave it out",
                                        **{k: v, "do_sample": True})  # fmt: skip
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ArgumentError("{seed}; expected an int", seed=self.seed)

    def _check_sampling(self) -> None:
        t, p = self.temperature, self.top_p
        if not isinstance(t, (int, float)) or not t > 0:
            raise ArgumentError("{temperature}; expected a number > 0", temperature=t)
        if not isinstance(p, (int, float)) or not 0 < p <= 1:
            raise ArgumentError("{top_p}; expected a number in (0, 1]", top_p=p)
        if self.top_k is not None:
            check_positive_int("top_k", self.top_k)
