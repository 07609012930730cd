"""The baseline agent: one threshold rule per op kind on the task features, no LLM, no GPU.

Same interface as the LLM client (`decide_all(tasks, on_verdict)` → Verdicts in task order), so it is the
yardstick the LLM is compared with. The rule for an op kind is a decision stump: the edit is needed
(`merge` / `split`) when `feature <= threshold` (direction "le") or `>= threshold` ("ge"); a missing (NaN)
feature gives the no-edit answer. Confidence grows from 0.5 at the threshold towards 1 with the distance
to it, in units of the feature's spread in the data the rule was fitted on.

`fit_rule` picks, per op kind, the feature, direction and threshold with the best accuracy on labelled tasks
(candidate features: `CANDIDATES`). `DEFAULT_RULE` is such a fit, rounded: bench/baseline.py fits on the
embedded minnie65_synthetic's neurons 0–39 (K = 10, seed 1) and evaluates on 70 other neurons (seed 2), with
merge distractors from segmentation cutouts (`tasks.distractors`, the product's path). Its figures there
(1,399 held-out tasks; accuracy with a 95 % cluster-bootstrap CI over neurons, 2,000 resamples):

    merge  accuracy 0.763  95% CI [0.735, 0.791]  n=675 tasks, 70 neurons; partner 0.831 (n=338),
           distractor-own (the generator's merge neighbour) 0.740 (n=281), distractor-other 0.464 (n=56)
    split  accuracy 0.950  95% CI [0.937, 0.963]  n=724 tasks, 70 neurons; before_split 0.953 (n=362),
           clean 0.948 (n=362)

How the rule changed: the previous merge stump, `dist_b_nm` <= 3.97 ("the candidate reaches within 4 nm of the
interface point"), won only because the generator's own distractors started further from the point than true
partners. On segmentation distractors — segments that really touch the partner at the edit's time — it scores
the same 0.763 [0.734, 0.789] overall but only 0.488 on the distractors (it says "merge" to half of them), so
distance no longer separates partners from distractors; the fit now picks the continuation angle, `angle_deg`
<= 49.5: same overall accuracy, spread more evenly (partners 0.831 against 0.988 before). Neither stump
is a good proofreader; the baseline is the yardstick, and the vision agent is what the pilot measures.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from proofpilot.agent.records import Verdict
from proofpilot.agent.schema import DECISIONS
from proofpilot.core.errors import ConfigError, DataError
from proofpilot.tasks.records import DecisionTask

BASELINE_VERSION = "baseline-rule-2"
BASELINE_MODEL = "baseline-rule"
BASELINE_ENDPOINT = "local"
CANDIDATES: dict[str, tuple[str, ...]] = {
    "merge": ("gap_nm", "dist_b_nm", "angle_deg", "radius_ratio", "end_b", "cable_b_um"),
    "split": (
        "side_cable_um",
        "side_branches",
        "side_angle_deg",
        "radius_jump",
        "kink_deg",
        "branches_at_point",
    ),
}
_LOG_SCALE_UNITS = ("_nm", "_um")  # spread of lengths is measured on a log scale


@dataclass(frozen=True)
class Stump:
    """`feature` {<=, >=} `threshold` means the edit is needed; `spread` scales the confidence."""

    feature: str
    direction: str  # "le" | "ge"
    threshold: float
    spread: float = 1.0

    def __post_init__(self) -> None:
        if self.direction not in ("le", "ge"):
            raise ConfigError(f"stump direction must be 'le' or 'ge', got {self.direction!r}")
        if not (math.isfinite(self.threshold) and self.spread > 0):
            raise ConfigError(f"stump on {self.feature} needs a finite threshold and a positive spread")

    def _scaled(self, value: float) -> float:
        if self.feature.endswith(_LOG_SCALE_UNITS):
            return math.log10(max(value, 1e-3))
        return value

    def decide(self, value: float) -> tuple[bool, float]:
        """(edit needed, confidence in [0.5, 1))."""
        if not math.isfinite(value):
            return False, 0.5
        needed = value <= self.threshold if self.direction == "le" else value >= self.threshold
        margin = abs(self._scaled(value) - self._scaled(self.threshold)) / self.spread
        return needed, 0.5 + 0.5 * math.tanh(margin)


@dataclass(frozen=True)
class BaselineRule:
    merge: Stump
    split: Stump

    def stump(self, op_kind: str) -> Stump:
        if op_kind not in DECISIONS:
            raise DataError(f"unknown op kind {op_kind!r}; expected one of {sorted(DECISIONS)}")
        return self.merge if op_kind == "merge" else self.split


# bench/baseline.py's "rule fitted on the training tasks" (minnie65_synthetic neurons 0–39, K = 10, seed 1).
DEFAULT_RULE = BaselineRule(
    merge=Stump("angle_deg", "le", 49.5, 30.9),
    split=Stump("side_cable_um", "ge", 2.72, 1.93),
)


def _positive(task: DecisionTask) -> bool:
    return task.label == DECISIONS[task.op_kind][0]


def fit_stump(tasks: Sequence[DecisionTask], op_kind: str, candidates: Sequence[str] | None = None) -> Stump:
    """The stump with the best accuracy on the labelled `tasks` of `op_kind` (ties: candidate order, then the
    lower threshold). Thresholds are midpoints between neighbouring observed values."""
    chosen = [t for t in tasks if t.op_kind == op_kind]
    labels = np.array([_positive(t) for t in chosen])
    if len(chosen) < 2 or labels.all() or not labels.any():
        raise DataError(f"fitting the {op_kind} rule needs labelled tasks of both classes, got {len(chosen)}")
    best: tuple[float, Stump] | None = None
    for name in candidates or CANDIDATES[op_kind]:
        values = np.array([t.features.get(name, math.nan) for t in chosen], dtype=np.float64)
        finite = np.isfinite(values)
        levels = np.unique(values[finite])
        if len(levels) < 2:
            continue
        cuts = (levels[1:] + levels[:-1]) / 2
        filled = np.where(finite, values, np.nan)
        for direction in ("le", "ge"):
            with np.errstate(invalid="ignore"):
                predicted = (
                    filled[None, :] <= cuts[:, None]
                    if direction == "le"
                    else filled[None, :] >= cuts[:, None]
                )
            accuracy = (predicted == labels[None, :]).mean(axis=1)
            k = int(np.argmax(accuracy))
            if best is None or accuracy[k] > best[0]:
                scaled = (
                    np.log10(np.maximum(values[finite], 1e-3))
                    if name.endswith(_LOG_SCALE_UNITS)
                    else values[finite]
                )
                spread = float(np.std(scaled)) or 1.0
                best = (float(accuracy[k]), Stump(name, direction, float(cuts[k]), spread))
    if best is None:
        raise DataError(f"no candidate feature of the {op_kind} tasks varies; cannot fit a rule")
    return best[1]


def fit_rule(tasks: Sequence[DecisionTask]) -> BaselineRule:
    """A rule fitted on labelled tasks with features (both op kinds present)."""
    return BaselineRule(merge=fit_stump(tasks, "merge"), split=fit_stump(tasks, "split"))


class BaselineAgent:
    """Decides tasks with a `BaselineRule`; the Verdicts look like the LLM client's, with zero tokens."""

    def __init__(self, rule: BaselineRule = DEFAULT_RULE) -> None:
        self.rule = rule

    def decide(self, task: DecisionTask) -> Verdict:
        start = time.perf_counter()
        if not task.features:
            raise DataError(f"task {task.task_id} has no features; compute them before asking the baseline")
        stump = self.rule.stump(task.op_kind)
        needed, confidence = stump.decide(float(task.features.get(stump.feature, math.nan)))
        yes, no = DECISIONS[task.op_kind]
        return Verdict(
            task_id=task.task_id,
            op_kind=task.op_kind,
            decision=yes if needed else no,
            confidence=confidence,
            valid=True,
            latency_s=time.perf_counter() - start,
            prompt_tokens=0,
            completion_tokens=0,
            attempts=0,  # no HTTP request
            answers=0,
            error_reason=None,
            finish_reason=None,
            endpoint=BASELINE_ENDPOINT,
            model=BASELINE_MODEL,
            prompt_version=BASELINE_VERSION,
        )

    def decide_tasks(
        self, tasks: Sequence[DecisionTask], on_verdict: Callable[[Verdict], None] | None = None
    ) -> list[Verdict]:
        """Verdicts in task order; DataError for an empty list, duplicate ids or a task without features."""
        if not tasks:
            raise DataError("empty task list: there is nothing to decide")
        duplicates = [tid for tid, n in Counter(t.task_id for t in tasks).items() if n > 1]
        if duplicates:
            raise DataError(f"duplicate task ids in one batch, e.g. {duplicates[0]!r}")
        verdicts = []
        for task in tasks:
            verdict = self.decide(task)
            if on_verdict is not None:
                on_verdict(verdict)
            verdicts.append(verdict)
        return verdicts

    async def decide_all(
        self, tasks: Sequence[DecisionTask], on_verdict: Callable[[Verdict], None] | None = None
    ) -> list[Verdict]:
        """The LLM client's interface (awaitable); the work is CPU-only and immediate."""
        return self.decide_tasks(tasks, on_verdict)


def cluster_bootstrap_accuracy(
    correct: Sequence[bool], clusters: Sequence[int], n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(accuracy, low, high): percentile CI from resampling clusters (neurons) with replacement, not rows."""
    if len(correct) == 0 or len(correct) != len(clusters):
        raise DataError("accuracy needs one cluster id per verdict and at least one verdict")
    _, index = np.unique(np.asarray(clusters), return_inverse=True)
    hits = np.bincount(index, weights=np.asarray(correct, dtype=np.float64))
    sizes = np.bincount(index).astype(np.float64)
    k = len(sizes)
    draws = np.random.default_rng(seed).multinomial(k, np.full(k, 1.0 / k), size=n_boot)
    accuracy = (draws @ hits) / (draws @ sizes)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(accuracy, [tail, 100 - tail])
    return float(hits.sum() / sizes.sum()), float(low), float(high)
