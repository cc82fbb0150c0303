"""Probes that flag hidden misalignment.

* OOD detectors on activations (:class:`Mahalanobis`, :class:`RelativeMahalanobis`,
  :class:`ClassConditionalMahalanobis`, :class:`CosineKNN`) and on logits
  (:func:`energy_score`, :func:`max_softmax_score`, :func:`max_logit_score`) —
  higher score = more out-of-distribution, everywhere;
* detection metrics with bootstrap CIs (:func:`detection_metrics`,
  :func:`risk_coverage`) and the per-layer store probe :func:`ood_probe`;
* reward-model probes: :func:`score_pairs`, :func:`load_reward_scores`,
  :func:`preference_calibration`, :class:`TemperatureScaling`,
  :class:`PlattScaling`, :func:`reward_shift`;
* hidden-misalignment flags: :func:`jailbreak_drift`, :func:`linear_probe`,
  :func:`ablate_direction`;
* token attributions (integrated gradients): :func:`token_attributions`.
"""

from .._stats import Estimate
from .ablation import ablate_direction, mean_difference_direction
from .attributions import TokenAttribution, token_attributions
from .calibration import (
    CalibrationResult,
    PlattScaling,
    ReliabilityBins,
    TemperatureScaling,
    preference_calibration,
)
from .detectors import (
    ClassConditionalMahalanobis,
    CosineKNN,
    Mahalanobis,
    NotFittedError,
    OODDetector,
    RelativeMahalanobis,
    make_detector,
)
from .jailbreak import (
    JAILBREAK_TEMPLATES,
    JailbreakDrift,
    JailbreakDriftProfile,
    jailbreak_drift,
    load_jailbreak_templates,
    wrap_prompts,
)
from .linear import LinearProbeProfile, LinearProbeResult, linear_probe
from .logit_scores import energy_score, max_logit_score, max_softmax_score
from .metrics import DetectionResult, RiskCoverage, detection_metrics, risk_coverage
from .ood import OODLayerResult, OODReport, conformal_threshold, ood_probe
from .predicted_refusal import PredictedRefusal, predicted_refusal
from .refusal_direction import RefusalShift, refusal_shift, split_by_pair
from .reward import (
    PairScores,
    RewardShiftReport,
    ShiftResult,
    load_reward_scores,
    reward_ood_scores,
    reward_shift,
    score_pairs,
)
from .verify import VerifiedRefusal, verification_sample, verified_refusal

__all__ = [
    "JAILBREAK_TEMPLATES",
    "CalibrationResult",
    "ClassConditionalMahalanobis",
    "CosineKNN",
    "DetectionResult",
    "Estimate",
    "JailbreakDrift",
    "JailbreakDriftProfile",
    "LinearProbeProfile",
    "LinearProbeResult",
    "Mahalanobis",
    "NotFittedError",
    "OODDetector",
    "OODLayerResult",
    "OODReport",
    "PairScores",
    "PlattScaling",
    "PredictedRefusal",
    "RefusalShift",
    "RelativeMahalanobis",
    "ReliabilityBins",
    "RewardShiftReport",
    "RiskCoverage",
    "ShiftResult",
    "TemperatureScaling",
    "TokenAttribution",
    "VerifiedRefusal",
    "ablate_direction",
    "conformal_threshold",
    "detection_metrics",
    "energy_score",
    "jailbreak_drift",
    "linear_probe",
    "load_jailbreak_templates",
    "load_reward_scores",
    "make_detector",
    "max_logit_score",
    "max_softmax_score",
    "mean_difference_direction",
    "ood_probe",
    "predicted_refusal",
    "preference_calibration",
    "refusal_shift",
    "reward_ood_scores",
    "reward_shift",
    "risk_coverage",
    "score_pairs",
    "split_by_pair",
    "token_attributions",
    "verification_sample",
    "verified_refusal",
    "wrap_prompts",
]
