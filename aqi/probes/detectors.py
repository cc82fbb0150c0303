"""Out-of-distribution detectors on activations: one contract, higher score = more OOD.

Every detector is fitted on reference (in-distribution) activations with
``fit(X, y=None)`` or streamed with ``partial_fit`` chunk by chunk, then scores
new rows with ``score(X)``: **higher = more out-of-distribution** (the one sign
convention of :mod:`aqi.probes`). Scoring an unfitted detector raises
:class:`NotFittedError`.

The Gaussian detectors keep only sufficient statistics — counts, sums, the
``d x d`` scatter and the two moments Ledoit–Wolf shrinkage needs
(``Σ‖x‖²x`` and ``Σ‖x‖⁴``) — so a fit over a million rows costs ``O(d²)``
memory, and a streamed fit equals a one-shot fit to rounding. The Ledoit–Wolf
intensity is computed from these moments with scikit-learn's formula
(``sklearn.covariance.ledoit_wolf_shrinkage``, which needs every row at once).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._validation import check_features

__all__ = [
    "ClassConditionalMahalanobis",
    "CosineKNN",
    "Mahalanobis",
    "NotFittedError",
    "OODDetector",
    "RelativeMahalanobis",
    "make_detector",
]


class NotFittedError(RuntimeError):
    """A detector was used before ``fit`` / ``partial_fit``."""


class OODDetector:
    """Base class: ``fit``/``partial_fit`` on reference rows, ``score`` new rows."""

    requires_labels = False
    dim_: int | None = None

    def fit(self, X: Any, y: Any = None) -> OODDetector:
        """Fit from scratch on ``X`` (and labels ``y`` where the detector uses them)."""
        self.reset()
        return self.partial_fit(X, y)

    def reset(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def partial_fit(self, X: Any, y: Any = None) -> OODDetector:  # pragma: no cover
        raise NotImplementedError

    def score(self, X: Any) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if self.dim_ is None:
            raise NotFittedError(
                f"{type(self).__name__} is not fitted; call fit(X) or partial_fit(X) first"
            )

    def _labels(self, y: Any, n: int) -> np.ndarray:
        if y is None:
            if self.requires_labels:
                raise ValueError(f"{type(self).__name__} needs labels: fit(X, y)")
            return np.zeros(n, dtype=object)
        lab = np.asarray(y)
        if lab.shape != (n,):
            raise ValueError(f"y must have one label per row of X ({n}), got shape {lab.shape}")
        return lab


class _Gaussian:
    """Streaming per-class moments around a fixed shift (the first chunk's mean)."""

    def __init__(self) -> None:
        self.shift: np.ndarray | None = None
        self.classes: dict[Any, dict[str, Any]] = {}

    def update(self, X: np.ndarray, y: np.ndarray) -> None:
        if self.shift is None:
            self.shift = X.mean(0)
        Z = X - self.shift
        q = np.einsum("ij,ij->i", Z, Z)
        for c in np.unique(y):
            r = y == c
            Zc, qc = Z[r], q[r]
            st = self.classes.setdefault(
                c,
                {"n": 0, "s": 0.0, "O": 0.0, "v3": 0.0, "q2": 0.0, "q4": 0.0},
            )
            st["n"] += len(Zc)
            st["s"] = st["s"] + Zc.sum(0)
            st["O"] = st["O"] + Zc.T @ Zc
            st["v3"] = st["v3"] + qc @ Zc
            st["q2"] += float(qc.sum())
            st["q4"] += float(qc @ qc)

    def pooled(self, shrinkage: str | float) -> tuple[dict[Any, np.ndarray], np.ndarray, float]:
        """Class means (shifted coordinates), pooled within-class covariance, shrinkage."""
        N = sum(st["n"] for st in self.classes.values())
        d = len(self.shift)  # type: ignore[arg-type]
        S = np.zeros((d, d))
        fourth = 0.0
        means = {}
        for c, st in self.classes.items():
            n = st["n"]
            m = st["s"] / n
            means[c] = m
            S += st["O"] - n * np.outer(m, m)
            mm = float(m @ m)
            fourth += (
                st["q4"] - 4 * float(st["v3"] @ m) + 4 * float(m @ st["O"] @ m)
                + 2 * st["q2"] * mm - 4 * float(st["s"] @ m) * mm + n * mm * mm
            )  # fmt: skip  # Σ‖z − m‖⁴ expanded into the streamed moments
        emp = S / N
        mu = np.trace(emp) / d
        if isinstance(shrinkage, str):
            # sklearn.covariance.ledoit_wolf_shrinkage, from moments instead of rows.
            delta_ = float(np.sum(emp * emp))
            beta = (fourth / N - delta_) / (d * N)
            delta = (delta_ - 2 * mu * np.trace(emp) + d * mu**2) / d
            beta = min(beta, delta)
            alpha = 0.0 if beta == 0 else beta / delta
        else:
            alpha = float(shrinkage)
        cov = (1 - alpha) * emp
        cov.flat[:: d + 1] += alpha * mu
        return means, cov, alpha


def _whitener(cov: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh(cov)
    tol = w.max() * len(w) * np.finfo(np.float64).eps
    if w.min() <= tol:
        raise ValueError(
            "the covariance is singular (fewer informative rows than features, or "
            "constant features); use shrinkage='ledoit-wolf' or a shrinkage in (0, 1]"
        )
    return V / np.sqrt(w)


def _check_shrinkage(shrinkage: Any) -> str | float:
    if isinstance(shrinkage, str):
        if shrinkage != "ledoit-wolf":
            raise ValueError(
                f"shrinkage must be 'ledoit-wolf' or a float in [0, 1], got {shrinkage!r}"
            )
        return shrinkage
    if (
        isinstance(shrinkage, bool)
        or not isinstance(shrinkage, (int, float))
        or not (0 <= shrinkage <= 1)
    ):
        raise ValueError(f"shrinkage must be 'ledoit-wolf' or a float in [0, 1], got {shrinkage!r}")
    return float(shrinkage)


class ClassConditionalMahalanobis(OODDetector):
    """Distance to the nearest class mean under a shared, shrunk covariance (Lee et al., 2018).

    Score: ``min_c (x − μ_c)ᵀ Σ⁻¹ (x − μ_c)``; ``Σ`` is the pooled within-class
    covariance shrunk toward ``tr(Σ)/d · I`` (Ledoit–Wolf by default).

    Parameters
    ----------
    shrinkage : "ledoit-wolf" or float in [0, 1]
    """

    requires_labels = True

    def __init__(self, shrinkage: str | float = "ledoit-wolf") -> None:
        self.shrinkage = _check_shrinkage(shrinkage)
        self.reset()

    def reset(self) -> None:
        self._g = _Gaussian()
        self.dim_ = None
        self._W: np.ndarray | None = None

    def partial_fit(self, X: Any, y: Any = None) -> ClassConditionalMahalanobis:
        A = check_features(X, self.dim_)
        self._update(A, self._labels(y, len(A)))
        return self

    def _update(self, A: np.ndarray, labels: np.ndarray) -> None:
        """Accumulate validated rows (the subclasses and RelativeMahalanobis share it)."""
        self._g.update(A, labels)
        self.dim_ = A.shape[1]
        self._W = None

    def _finish(self) -> None:
        """Derive covariance, whitener and class means from the moments (once per fit)."""
        self._check_fitted()
        if self._W is None:
            means, cov, alpha = self._g.pooled(self.shrinkage)
            self._shrinkage, self._cov = alpha, cov
            self._classes = list(means)
            self._W = _whitener(cov)
            self._mu = np.stack([means[c] for c in self._classes]) @ self._W
            self._location = {c: means[c] + self._g.shift for c in self._classes}

    @property
    def covariance_(self) -> np.ndarray:
        """The shared (pooled within-class), shrunk covariance."""
        self._finish()
        return self._cov

    @property
    def shrinkage_(self) -> float:
        """The shrinkage intensity used (Ledoit–Wolf's estimate or the fixed value)."""
        self._finish()
        return self._shrinkage

    @property
    def location_(self) -> dict[Any, np.ndarray]:
        """Class means in the input coordinates."""
        self._finish()
        return self._location

    def _nearest(self, A: np.ndarray) -> np.ndarray:
        """Squared distance of validated rows to the nearest class mean."""
        self._finish()
        Z = (A - self._g.shift) @ self._W
        d2 = (
            np.einsum("ij,ij->i", Z, Z)[:, None] - 2 * Z @ self._mu.T
            + np.einsum("ij,ij->i", self._mu, self._mu)[None, :]
        )  # fmt: skip
        return np.maximum(d2, 0.0).min(axis=1)

    def score(self, X: Any) -> np.ndarray:
        """Squared Mahalanobis distance to the nearest class mean (higher = more OOD)."""
        self._check_fitted()
        return self._nearest(check_features(X, self.dim_))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shrinkage={self.shrinkage!r})"


class Mahalanobis(ClassConditionalMahalanobis):
    """Squared Mahalanobis distance to the reference mean, with a shrunk covariance.

    Labels, if given, are ignored: one Gaussian for all reference rows.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> det = Mahalanobis().fit(rng.normal(size=(500, 8)))
    >>> near, far = det.score(np.zeros((1, 8))), det.score(np.full((1, 8), 4.0))
    >>> bool(far[0] > near[0])
    True
    """

    requires_labels = False

    def partial_fit(self, X: Any, y: Any = None) -> Mahalanobis:
        A = check_features(X, self.dim_)
        self._update(A, np.zeros(len(A), dtype=np.int64))
        return self


class RelativeMahalanobis(OODDetector):
    """Relative Mahalanobis distance (Ren et al., 2021): foreground minus background.

    ``score = min_c MD_c(x) − MD_0(x)``, where ``MD_c`` uses the class-conditional
    fit (one class when unlabelled) and ``MD_0`` a single Gaussian with its own
    covariance fitted on a broad *background* set — by default the same reference
    rows, or ``background`` given to ``fit``. Subtracting ``MD_0`` removes the part of
    the distance that every input shares (e.g. directions of large generic
    variance), which makes near-OOD shifts easier to see.
    """

    def __init__(self, shrinkage: str | float = "ledoit-wolf") -> None:
        self.shrinkage = _check_shrinkage(shrinkage)
        self.reset()

    def reset(self) -> None:
        self.foreground = ClassConditionalMahalanobis(self.shrinkage)
        self.background = Mahalanobis(self.shrinkage)
        self._own_background = True
        self.dim_ = None

    def fit(self, X: Any, y: Any = None, background: Any = None) -> RelativeMahalanobis:
        self.reset()
        if background is not None:
            self.background.fit(background)
            self._own_background = False
        self.partial_fit(X, y)
        if self.background.dim_ != self.dim_:
            raise ValueError(
                f"background has {self.background.dim_} features but X has {self.dim_}"
            )
        return self

    def partial_fit(self, X: Any, y: Any = None) -> RelativeMahalanobis:
        A = check_features(X, self.dim_)
        labels = np.zeros(len(A), dtype=np.int64) if y is None else self._labels(y, len(A))
        self.foreground._update(A, labels)
        if self._own_background:
            self.background._update(A, np.zeros(len(A), dtype=np.int64))
        self.dim_ = A.shape[1]
        return self

    def score(self, X: Any) -> np.ndarray:
        """``min_c MD_c(x) − MD_0(x)`` (higher = more OOD)."""
        self._check_fitted()
        A = check_features(X, self.dim_)
        return self.foreground._nearest(A) - self.background._nearest(A)

    def __repr__(self) -> str:
        return f"RelativeMahalanobis(shrinkage={self.shrinkage!r})"


class CosineKNN(OODDetector):
    """Cosine distance to the ``k``-th nearest reference row (Sun et al., 2022).

    Rows are L2-normalised; ``score = 1 − cos(x, k-th neighbour)``. The reference
    rows are kept (float32, ``n x d x 4`` bytes); scoring runs in blocks of
    matrix products with ``torch.topk`` and never builds the full ``n x m`` matrix.

    Parameters
    ----------
    k : int
        Which neighbour (1 = nearest).
    block_rows : int
        Query rows per block (memory ``block_rows x n_reference x 4`` bytes).
    """

    def __init__(self, k: int = 10, *, block_rows: int = 1024) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.k = int(k)
        self.block_rows = int(block_rows)
        self.reset()

    def reset(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._ref: torch.Tensor | None = None
        self.dim_ = None

    @staticmethod
    def _normalise(A: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(A, axis=1, keepdims=True)
        if (norms == 0).any():
            raise ValueError(
                f"row {int(np.argmax(norms[:, 0] == 0))} is all zeros; its cosine is undefined"
            )
        return (A / norms).astype(np.float32)

    def partial_fit(self, X: Any, y: Any = None) -> CosineKNN:
        A = check_features(X, self.dim_)
        self._chunks.append(self._normalise(A))
        self._ref = None
        self.dim_ = A.shape[1]
        return self

    @property
    def n_reference(self) -> int:
        return sum(len(c) for c in self._chunks)

    def score(self, X: Any) -> np.ndarray:
        """``1 − cos`` to the ``k``-th nearest reference row (higher = more OOD)."""
        self._check_fitted()
        if self.k > self.n_reference:
            raise ValueError(f"k={self.k} exceeds the {self.n_reference} reference rows")
        if self._ref is None:
            self._ref = torch.from_numpy(np.concatenate(self._chunks))
        Q = torch.from_numpy(self._normalise(check_features(X, self.dim_)))
        out = np.empty(len(Q))
        with torch.inference_mode():
            for a in range(0, len(Q), self.block_rows):
                sims = Q[a : a + self.block_rows] @ self._ref.T
                kth = torch.topk(sims, self.k, dim=1, sorted=True).values[:, -1]
                out[a : a + len(kth)] = 1.0 - kth.double().numpy()
        return out

    def __repr__(self) -> str:
        return f"CosineKNN(k={self.k})"


DETECTORS = {
    "mahalanobis": Mahalanobis,
    "class-mahalanobis": ClassConditionalMahalanobis,
    "relative-mahalanobis": RelativeMahalanobis,
    "knn": CosineKNN,
}


def make_detector(name: str | OODDetector, **kwargs: Any) -> OODDetector:
    """A detector by name (``"mahalanobis"``, ``"class-mahalanobis"``,
    ``"relative-mahalanobis"``, ``"knn"``), or an unfitted instance passed through.

    Examples
    --------
    >>> make_detector("knn", k=5)
    CosineKNN(k=5)
    """
    if isinstance(name, OODDetector):
        return name
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; choose one of {sorted(DETECTORS)}")
    return DETECTORS[name](**kwargs)
