"""The registry of public prompt sets: where each one lives and how its columns map.

One :class:`PublicSet` per set name (``PUBLIC_SETS``); :mod:`aqi.prompts.public_sets`
loads them. Sources for the hub ids, configs, splits, files and columns (checked 2026): the
dataset cards and file trees on huggingface.co for ``walledai/HarmBench``,
``walledai/AdvBench``, ``JailbreakBench/JBB-Behaviors`` (README ``configs``:
behaviors → harmful/benign CSVs), ``walledai/StrongREJECT``,
``sorry-bench/sorry-bench-202406`` (``question.jsonl`` = the base prompts),
``walledai/XSTest`` (README ``dataset_info``: prompt, focus, type, note, label; split
``test``) and ``bench-llm/or-bench`` (README ``configs``: or-bench-hard-1k,
or-bench-toxic; columns prompt, category).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .prompt_set import LABELS

__all__ = ["PUBLIC_SETS", "PublicSet"]


@dataclass(frozen=True, slots=True)
class PublicSet:
    """One public prompt set: where it lives on the hub and how its columns map.

    ``files`` is the glob of its data file(s) inside the dataset repository (what a
    local ``data_dir`` must hold); ``label`` fixes the class of every row, otherwise
    ``label_col`` gives it; ``only_label`` keeps the rows of one class (``xstest-safe``).
    Ids are ``"{id_prefix}-{id_col value}"`` (the row position when there is no id
    column), so the rows of ``xstest-safe`` keep their ``xstest`` ids.
    """

    name: str
    title: str
    dataset: str
    config: str | None
    split: str
    files: str
    format: str  # the `datasets` builder for local files: parquet, csv or json
    text_col: str
    id_prefix: str
    license: str
    citation: str
    url: str
    id_col: str | None = None
    category_col: str | None = None
    label: str | None = None
    label_col: str | None = None
    pair_col: str | None = None
    pair_prefix: str = ""  # pair ids are "{pair_prefix}-{pair_col value}"
    only_label: str | None = None
    hub_data_files: str | None = None  # passed to load_dataset when the repo holds more
    revision: str = "main"

    @property
    def classes(self) -> tuple[str, ...]:
        """The labels its rows can have."""
        fixed = self.label or self.only_label
        return (fixed,) if fixed else LABELS

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "classes": list(self.classes)}


_HARMBENCH = "Mazeika et al., HarmBench: A Standardized Evaluation Framework for Automated Red Teaming and Robust Refusal, ICML 2024, arXiv:2402.04249"  # noqa: E501
_ADVBENCH = "Zou et al., Universal and Transferable Adversarial Attacks on Aligned Language Models, 2023, arXiv:2307.15043"  # noqa: E501
_JBB = "Chao et al., JailbreakBench: An Open Robustness Benchmark for Jailbreaking Large Language Models, NeurIPS 2024 Datasets and Benchmarks, arXiv:2404.01318"  # noqa: E501
_STRONGREJECT = "Souly et al., A StrongREJECT for Empty Jailbreaks, NeurIPS 2024 Datasets and Benchmarks, arXiv:2402.10260"  # noqa: E501
_SORRY = "Xie et al., SORRY-Bench: Systematically Evaluating Large Language Model Safety Refusal, ICLR 2025, arXiv:2406.14598"  # noqa: E501
_XSTEST = "Röttger et al., XSTest: A Test Suite for Identifying Exaggerated Safety Behaviours in Large Language Models, NAACL 2024, arXiv:2308.01263"  # noqa: E501
_ORBENCH = "Cui et al., OR-Bench: An Over-Refusal Benchmark for Large Language Models, ICML 2025, arXiv:2405.20947"  # noqa: E501

_XSTEST_KW: dict[str, Any] = dict(
    title="XSTest v2 (250 safe prompts that resemble unsafe ones, 200 unsafe contrasts)",
    dataset="walledai/XSTest", config=None, split="test", files="data/train-*.parquet",
    format="parquet", text_col="prompt", id_prefix="xstest", license="CC-BY-4.0",
    citation=_XSTEST, url="https://huggingface.co/datasets/walledai/XSTest",
    category_col="type", label_col="label",
)  # fmt: skip
_JBB_KW: dict[str, Any] = dict(
    dataset="JailbreakBench/JBB-Behaviors", config="behaviors", format="csv",
    text_col="Goal", id_col="Index", category_col="Category", pair_col="Behavior",
    pair_prefix="jbb",
    license="MIT", citation=_JBB, url="https://huggingface.co/datasets/JailbreakBench/JBB-Behaviors",
)  # fmt: skip
_ORBENCH_KW: dict[str, Any] = dict(
    dataset="bench-llm/or-bench", split="train", format="csv", text_col="prompt",
    category_col="category", license="CC-BY-4.0", citation=_ORBENCH,
    url="https://huggingface.co/datasets/bench-llm/or-bench",
)  # fmt: skip

# fmt: off
_ENTRIES: tuple[PublicSet, ...] = (
    PublicSet(
        name="harmbench", title="HarmBench standard behaviours (400 unsafe requests)",
        dataset="walledai/HarmBench", config="standard", split="train",
        files="standard/train-*.parquet", format="parquet", text_col="prompt",
        category_col="category", label="unsafe", id_prefix="harmbench", license="MIT",
        citation=_HARMBENCH, url="https://huggingface.co/datasets/walledai/HarmBench",
    ),
    PublicSet(
        name="advbench", title="AdvBench harmful behaviours (520 unsafe instructions)",
        dataset="walledai/AdvBench", config=None, split="train", files="data/train-*.parquet",
        format="parquet", text_col="prompt", label="unsafe", id_prefix="advbench", license="MIT",
        citation=_ADVBENCH, url="https://huggingface.co/datasets/walledai/AdvBench",
    ),
    PublicSet(
        name="jbb-harmful", title="JailbreakBench JBB-Behaviors, harmful (100 unsafe)",
        split="harmful", files="data/harmful-behaviors.csv", label="unsafe",
        id_prefix="jbb-harmful", **_JBB_KW,
    ),
    PublicSet(
        name="jbb-benign", title="JailbreakBench JBB-Behaviors, benign (100 safe, matched)",
        split="benign", files="data/benign-behaviors.csv", label="safe", id_prefix="jbb-benign",
        **_JBB_KW,
    ),
    PublicSet(
        name="strongreject", title="StrongREJECT forbidden prompts (313 unsafe)",
        dataset="walledai/StrongREJECT", config=None, split="train",
        files="data/train-*.parquet", format="parquet", text_col="prompt",
        category_col="category", label="unsafe", id_prefix="strongreject", license="MIT",
        citation=_STRONGREJECT, url="https://huggingface.co/datasets/walledai/StrongREJECT",
    ),
    PublicSet(
        name="sorry-bench", title="SORRY-Bench 2024/06 base prompts (450 unsafe, 45 categories)",
        dataset="sorry-bench/sorry-bench-202406", config=None, split="train",
        files="question.jsonl", format="json", text_col="turns", id_col="question_id",
        category_col="category", label="unsafe", id_prefix="sorry-bench",
        license="sorry-bench (custom terms, gated: accept them on the dataset page)",
        citation=_SORRY, url="https://huggingface.co/datasets/sorry-bench/sorry-bench-202406",
        hub_data_files="question.jsonl",
    ),
    PublicSet(name="xstest", **_XSTEST_KW),
    PublicSet(name="xstest-safe", only_label="safe", **_XSTEST_KW),
    PublicSet(name="xstest-unsafe", only_label="unsafe", **_XSTEST_KW),
    PublicSet(
        name="or-bench-hard", title="OR-Bench-Hard-1K (1,319 safe prompts that look toxic)",
        config="or-bench-hard-1k", files="or-bench-hard-1k.csv", label="safe",
        id_prefix="or-bench-hard", **_ORBENCH_KW,
    ),
    PublicSet(
        name="or-bench-toxic", title="OR-Bench-Toxic (655 unsafe prompts)",
        config="or-bench-toxic", files="or-bench-toxic.csv", label="unsafe",
        id_prefix="or-bench-toxic", **_ORBENCH_KW,
    ),
)
# fmt: on

#: Every public set by name.
PUBLIC_SETS: Mapping[str, PublicSet] = {e.name: e for e in _ENTRIES}
#: Names that stand for several sets.
_GROUPS: dict[str, tuple[str, ...]] = {"jbb": ("jbb-harmful", "jbb-benign")}
