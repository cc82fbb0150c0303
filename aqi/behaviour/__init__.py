"""Behaviour: what a model does with the prompts — responses, refusal judges, refusal rates.

This layer sits above :mod:`aqi.probes`: it may use activations, indices and
probes; nothing below imports it.
"""

from .agreement import JudgeAgreement, judge_agreement
from .decoding import Decoding
from .early_stop import SettledStop, can_stop_early, early_stop_identity
from .encoder_judge import JUDGE_LABELS, EncoderJudge, EncoderVerdict, load_encoder_judge
from .flips import RefusalFlip, refusal_flips
from .generate import GenerationInterrupted, check_finite_weights, generate_responses
from .judge import (
    DEFLECTIONS,
    JUDGE_NEW_TOKENS,
    JUDGEMENTS,
    REFUSAL_OPENINGS,
    RULES_VERSION,
    STRONG_REFUSALS,
    ClassifierJudge,
    JudgeVerdict,
    RefusalJudge,
    judge_labels,
    judge_responses,
)
from .judges import JUDGE_KINDS, JUDGE_PROMPTS, GenerativeJudge, judge_identity, resolve_judge
from .labelled_change import LabelledRefusalChange, labelled_refusal_change
from .labelling import Labels, LabelSample, draw_label_sample, read_labels, write_label_sheet
from .ppi import PPIEstimate, ppi_mean_interval, ppi_paired_difference
from .refusal import (
    PairedRefusal,
    RefusalComparison,
    RefusalRate,
    RefusalReport,
    UnsureResponse,
    compare_refusal,
    judge_name,
    mcnemar_exact,
    newcombe_paired_interval,
    refusal_rate,
)
from .responses import (
    RESPONSES_SCHEMA,
    RESPONSES_VERSION,
    Response,
    Responses,
    TokenUse,
    is_responses_file,
    load_responses,
    with_responses,
)

__all__ = [
    "DEFLECTIONS",
    "JUDGEMENTS",
    "JUDGE_KINDS",
    "JUDGE_LABELS",
    "JUDGE_NEW_TOKENS",
    "JUDGE_PROMPTS",
    "REFUSAL_OPENINGS",
    "RESPONSES_SCHEMA",
    "RESPONSES_VERSION",
    "RULES_VERSION",
    "STRONG_REFUSALS",
    "ClassifierJudge",
    "Decoding",
    "EncoderJudge",
    "EncoderVerdict",
    "GenerationInterrupted",
    "GenerativeJudge",
    "JudgeAgreement",
    "JudgeVerdict",
    "LabelSample",
    "LabelledRefusalChange",
    "Labels",
    "PPIEstimate",
    "PairedRefusal",
    "RefusalComparison",
    "RefusalFlip",
    "RefusalJudge",
    "RefusalRate",
    "RefusalReport",
    "Response",
    "Responses",
    "SettledStop",
    "TokenUse",
    "UnsureResponse",
    "can_stop_early",
    "check_finite_weights",
    "compare_refusal",
    "draw_label_sample",
    "early_stop_identity",
    "generate_responses",
    "is_responses_file",
    "judge_agreement",
    "judge_identity",
    "judge_labels",
    "judge_name",
    "judge_responses",
    "labelled_refusal_change",
    "load_encoder_judge",
    "load_responses",
    "mcnemar_exact",
    "newcombe_paired_interval",
    "ppi_mean_interval",
    "ppi_paired_difference",
    "read_labels",
    "refusal_flips",
    "refusal_rate",
    "resolve_judge",
    "with_responses",
    "write_label_sheet",
]
