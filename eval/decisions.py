"""Agent verdicts against ground truth per agent and op type, 95 % CIs from a cluster bootstrap by neuron.

    evaluate([run_dir, baseline_run_dir]) -> (EvalReport, scored rows)
    write_eval(report, rows, out_dir)      -> eval.json + eval_rows.parquet

Metrics per (agent, op ∈ merge | split | all): accuracy, precision, recall, F1, specificity (from one
confusion matrix, no-answer convention in `decisions_rows`), answered accuracy, invalid / error rates per
task, transport error and timeout rates per LLM request (llm_errors.jsonl joined), LLM calls and HTTP
attempts per edit (failed requests included) (edit = one ground-truth operation), decisions per edit, latency
quantiles (client wall time per decision: a latency, not a cost). Accuracy is also reported against the
neuron's edit count: by quartile of the sampled neurons' counts and heavy tail (above the sample's p95) vs
the rest, with the difference's CI. Agents run on the same tasks are compared with a paired interval.

Every interval comes from one weight matrix (one multinomial draw of the neurons per replicate, seeded), so
all of them, the paired differences included, can be recomputed from eval_rows.parquet (decisions_stats).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from proofpilot.core.errors import ConfigError
from proofpilot.core.vocab import ROLE_LABEL, ROLES_OF_OP
from proofpilot.edits.records import Estimate
from proofpilot.eval.eval_json import (  # noqa: F401 - eval.json's records, re-exported
    EVAL_NAME,
    LATENCY_QUANTILES,
    OPS,
    RATIOS,
    ROW_COLUMNS,
    SCHEMA,
    UNITS,
    BinMetrics,
    BootstrapRecipe,
    Contrast,
    EvalReport,
    GroupMetrics,
    _json_default,
    read_eval,
    write_eval,
)
from proofpilot.eval.rows import NO_ANSWER_CONVENTION, load_runs
from proofpilot.eval.stats import (
    BOTH_AT_BOUNDS,
    CLUSTER_PERCENTILE,
    cluster_sums,
    difference_estimate,
    quantile_estimates,
    ratio_estimate,
    resample_weights,
)


def _columns(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-row numeric columns summed per neuron (see RATIOS)."""
    pos, correct = rows["positive"].to_numpy(bool), rows["correct"].to_numpy(bool)
    tp, tn = pos & correct, ~pos & correct
    fp, fn = ~pos & ~correct, pos & ~correct
    first_of_op = ~rows.duplicated(["neuron_root_id", "operation_id"]).to_numpy()
    return pd.DataFrame({
        "n": 1.0, "correct": correct, "tp": tp, "tn": tn, "fp": fp, "fn": fn, "pos": pos, "neg": ~pos,
        "pred_pos": tp | fp, "tp2": 2.0 * tp, "f1_den": 2.0 * tp + fp + fn,
        "answered": rows["answered"].to_numpy(bool), "no_answer": ~rows["answered"].to_numpy(bool),
        "invalid": (rows["outcome"] == "invalid").to_numpy(),
        "error": (rows["outcome"] == "error").to_numpy(),
        "llm_requests": rows["llm_requests"].to_numpy(float),
        "transport_errors": rows["transport_errors"].to_numpy(float),
        "timeouts": rows["timeouts"].to_numpy(float),
        "answers": (rows["answers"] + rows["failed_answers"]).to_numpy(float),
        "attempts": (rows["attempts"] + rows["failed_attempts"]).to_numpy(float), "ops": first_of_op,
        "latency_s": rows["latency_s"].to_numpy(float),
    }).astype(float)  # fmt: skip


class _Scorer:
    """Holds the neuron universe and the one weight matrix every interval is computed from."""

    def __init__(self, rows: pd.DataFrame, n_boot: int, seed: int, level: float):
        self.neurons = np.sort(rows["neuron_root_id"].unique())
        self.index = {int(r): i for i, r in enumerate(self.neurons)}
        self.weights = resample_weights(len(self.neurons), n_boot, np.random.default_rng(seed))
        self.level = level

    def cluster(self, rows: pd.DataFrame) -> np.ndarray:
        return np.searchsorted(self.neurons, rows["neuron_root_id"].to_numpy())

    def sums(self, rows: pd.DataFrame) -> pd.DataFrame:
        cols = _columns(rows)
        return pd.DataFrame(
            cluster_sums(self.cluster(rows), cols.to_numpy(), len(self.neurons)), columns=cols.columns
        )

    def ratio(self, sums: pd.DataFrame, name: str) -> Estimate:
        num, den, prop = RATIOS[name]
        return ratio_estimate(sums[num].to_numpy(), sums[den].to_numpy(), self.weights, self.level, prop)

    def group(self, agent: str, op: str, rows: pd.DataFrame) -> GroupMetrics:
        sums = self.sums(rows)
        metrics = {name: self.ratio(sums, name) for name in RATIOS}
        latency = rows["latency_s"].to_numpy(float)
        quantiles = quantile_estimates(
            latency, self.cluster(rows), self.weights, tuple(LATENCY_QUANTILES.values()), self.level
        )
        metrics.update(zip(LATENCY_QUANTILES, quantiles, strict=True))
        total = sums.sum()
        no_answer = ~rows["answered"].to_numpy(bool)
        pos = rows["positive"].to_numpy(bool)
        confusion = {k: int(total[k]) for k in ("tp", "fp", "tn", "fn")}
        confusion.update(
            no_answer_pos=int((no_answer & pos).sum()), no_answer_neg=int((no_answer & ~pos).sum())
        )
        outcomes = {
            k: int((rows["outcome"] == k).sum()) for k in ("correct", "incorrect", "invalid", "error")
        }
        return GroupMetrics(
            agent=agent, op=op, n_tasks=len(rows), n_neurons=int(rows["neuron_root_id"].nunique()),
            n_operations=int(total["ops"]), confusion=confusion, outcomes=outcomes, metrics=metrics,
        )  # fmt: skip

    def accuracy_pair(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        sums = self.sums(rows)
        return sums["correct"].to_numpy(), sums["n"].to_numpy()


def _op_rows(rows: pd.DataFrame, op: str) -> pd.DataFrame:
    return rows if op == "all" else rows[rows["op_kind"] == op]


def _edit_bins(rows: pd.DataFrame, neuron_counts: pd.Series) -> tuple[pd.Series, pd.Series, float]:
    """Quartile label and heavy-tail flag per row; the heavy-tail threshold (p95 of the sample's counts)."""
    counts = neuron_counts.to_numpy(float)
    threshold = float(np.percentile(counts, 95))
    edges = np.unique(np.quantile(counts, [0.0, 0.25, 0.5, 0.75, 1.0]))
    n_edits = rows["neuron_n_edits"].to_numpy(float)
    which = np.clip(np.searchsorted(edges[1:-1], n_edits, side="left"), 0, max(0, len(edges) - 2))
    lows = [int(edges[0])] + [int(np.floor(e)) + 1 for e in edges[1:-1]]
    highs = [int(np.floor(e)) for e in edges[1:]] or [int(edges[0])]
    labels = [f"Q{i + 1}: {lo}–{hi} edits" for i, (lo, hi) in enumerate(zip(lows, highs, strict=True))]
    quartile = pd.Series([labels[i] if labels else "all" for i in which], index=rows.index)
    return quartile, pd.Series(n_edits > threshold, index=rows.index), threshold


def _bins(scorer: _Scorer, rows: pd.DataFrame, agents: tuple[str, ...]) -> list[BinMetrics]:
    out = []
    for agent, op in itertools.product(agents, OPS):
        sub = _op_rows(rows[rows["agent_label"] == agent], op)
        for scheme, key in (("quartile", "edit_quartile"), ("heavy_tail", "heavy_tail_bin")):
            for label, part in sorted(sub.groupby(key), key=lambda kv: kv[1]["neuron_n_edits"].min()):
                sums = scorer.sums(part)
                out.append(BinMetrics(
                    agent=agent, op=op, scheme=scheme, bin=str(label),
                    edits_min=int(part["neuron_n_edits"].min()), edits_max=int(part["neuron_n_edits"].max()),
                    n_neurons=int(part["neuron_root_id"].nunique()), n_tasks=len(part),
                    accuracy=scorer.ratio(sums, "accuracy"),
                ))  # fmt: skip
    return out


def _bound_note(diff: Estimate) -> list[str]:
    """The caveat of a difference whose side(s) sit at 0 % or 100 % (see decisions_stats)."""
    if diff.method in (BOTH_AT_BOUNDS,) or "one side" in diff.method:
        return [diff.method.split("; ")[-1]]
    return []


def _contrasts(scorer: _Scorer, rows: pd.DataFrame, agents: tuple[str, ...]) -> list[Contrast]:
    out = []
    for op in OPS:
        for a, b in itertools.combinations(agents, 2):
            ra, rb = (_op_rows(rows[rows["agent_label"] == x], op) for x in (a, b))
            if ra.empty or rb.empty:
                continue
            paired = set(ra["task_id"]) == set(rb["task_id"])
            diff = difference_estimate(
                scorer.accuracy_pair(ra), scorer.accuracy_pair(rb), scorer.weights, scorer.level
            )
            notes = [] if paired else ["the two runs scored different tasks: agent and task set are mixed"]
            out.append(Contrast("agents", op, a, b, diff, paired, "; ".join(notes + _bound_note(diff))))
        for agent in agents:
            sub = _op_rows(rows[rows["agent_label"] == agent], op)
            tail, rest = sub[sub["heavy_tail"]], sub[~sub["heavy_tail"]]
            if tail.empty or rest.empty:
                continue
            diff = difference_estimate(
                scorer.accuracy_pair(tail), scorer.accuracy_pair(rest), scorer.weights, scorer.level
            )
            n_tail = tail["neuron_root_id"].nunique()
            notes = [f"{n_tail} heavy-tail neuron(s)"] + (
                ["too few for a useful interval"] if n_tail < 5 else []
            )
            note = "; ".join(notes + _bound_note(diff))
            out.append(
                Contrast("heavy_tail", op, f"{agent} heavy tail", f"{agent} other neurons", diff, False, note)
            )
    return out


def evaluate(
    run_dirs: list[Path] | tuple[Path, ...], n_bootstrap: int = 1000, seed: int = 0, ci_level: float = 0.95
) -> tuple[EvalReport, pd.DataFrame]:
    """Score the runs' verdicts (see module doc). The first run is the main one; more runs (e.g. the
    baseline agent on the same tasks) are scored beside it and compared pairwise."""
    if n_bootstrap < 100:
        raise ConfigError(f"--bootstrap must be at least 100 resamples, got {n_bootstrap}")
    if not 0.5 < ci_level < 1:
        raise ConfigError(f"--ci-level must be in (0.5, 1), got {ci_level}")
    rows, runs, neuron_counts = load_runs([Path(d) for d in run_dirs])
    quartile, heavy, threshold = _edit_bins(rows, neuron_counts)
    rows = rows.assign(
        edit_quartile=quartile, heavy_tail=heavy,
        heavy_tail_bin=np.where(heavy, f"heavy tail (> p95 = {threshold:g} edits)", "other neurons"),
    )  # fmt: skip
    agents = tuple(r.label for r in runs)
    scorer = _Scorer(rows, n_bootstrap, seed, ci_level)
    groups = [
        scorer.group(agent, op, sub)
        for agent, op in itertools.product(agents, OPS)
        if not (sub := _op_rows(rows[rows["agent_label"] == agent], op)).empty
    ]
    notes = [
        f"{r.label}: {r.n_verdicts} of {r.n_tasks} tasks have verdicts (incomplete run; the missing tasks "
        "are not scored)"
        for r in runs
        if r.n_tasks is not None and r.n_verdicts < r.n_tasks
    ] + [
        f"{r.label}: {r.n_llm_errors_undecided} of {r.n_llm_errors} LLM transport failures are of tasks "
        "without a verdict and are not in the rates"
        for r in runs
        if r.n_llm_errors_undecided
    ]
    notes += one_sided_notes(rows)
    bootstrap = BootstrapRecipe(
        method=CLUSTER_PERCENTILE,
        clusters="neuron_root_id (the union over all runs, ascending)",
        n_clusters=len(scorer.neurons),
        n_bootstrap=n_bootstrap,
        seed=seed,
        ci_level=ci_level,
        draw="numpy.random.default_rng(seed).multinomial(n_clusters, [1/n_clusters]*n_clusters, "
        "size=n_bootstrap): one weight matrix shared by every interval",
    )
    report = EvalReport(
        runs=runs, agents=agents, groups=tuple(groups), bins=tuple(_bins(scorer, rows, agents)),
        contrasts=tuple(_contrasts(scorer, rows, agents)), heavy_tail_threshold_edits=threshold,
        convention=NO_ANSWER_CONVENTION, bootstrap=bootstrap, notes=tuple(notes),
    )  # fmt: skip
    return report, rows.drop(columns=["heavy_tail_bin"])


def one_sided_notes(rows: pd.DataFrame) -> list[str]:
    """A warning per agent and op type whose tasks all have one ground truth (e.g. a live datastack without a
    distractor source gives merge partners only): accuracy then cannot tell a discriminating agent from one
    that always gives that answer."""
    notes = []
    for (agent, op), sub in rows.groupby(["agent_label", "op_kind"], sort=True):
        present = [role for role in ROLES_OF_OP.get(str(op), ()) if (sub["role"] == role).any()]
        if len(present) == 1:
            (missing,) = set(ROLES_OF_OP[str(op)]) - set(present)
            always = ROLE_LABEL[present[0]]
            notes.append(
                f"{agent}: every {op} task is a '{present[0]}' task (no '{missing}' tasks): {op} accuracy "
                f"is 1.0 for an agent that always answers '{always}', so it measures only one side"
            )
    return notes
