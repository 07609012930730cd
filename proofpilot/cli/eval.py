"""`proofpilot eval RUN_DIR`: a pilot run's verdicts against ground truth (eval.json + eval_rows.parquet).

proofpilot eval runs/p1                                  # writes runs/p1/eval/
proofpilot eval runs/p1 --compare runs/b1                # with the baseline's run of the same tasks
"""

from __future__ import annotations

from pathlib import Path

import click

from proofpilot.edits.records import Estimate

RUN_DIR = click.Path(path_type=Path)


def fmt_estimate(est: Estimate, digits: int = 3) -> str:
    if est.value is None:
        return "n/a"
    if est.ci is None:
        return f"{est.value:.{digits}f} [no CI]"
    return f"{est.value:.{digits}f} [{est.ci[0]:.{digits}f}, {est.ci[1]:.{digits}f}]"


@click.command("eval")
@click.argument("run_dir", type=RUN_DIR)
@click.option(
    "--compare",
    "compare_dirs",
    multiple=True,
    type=RUN_DIR,
    metavar="RUN_DIR",
    help="Another run to score beside it, e.g. `pilot --agent baseline` on the same tasks (repeatable).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default: RUN_DIR/eval).",
)
@click.option("--bootstrap", "n_bootstrap", type=int, default=1000, show_default=True, help="Resamples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap draws.")
@click.option("--ci-level", type=float, default=0.95, show_default=True, help="Confidence level.")
def eval_cmd(
    run_dir: Path,
    compare_dirs: tuple[Path, ...],
    out_dir: Path | None,
    n_bootstrap: int,
    seed: int,
    ci_level: float,
) -> None:
    """Score a pilot run's verdicts against the ground-truth operations.

    Per agent and op type: accuracy, precision, recall, F1, specificity, confusion matrix, invalid / error /
    timeout rates, LLM calls per edit and latency quantiles, each with a confidence interval from a cluster
    bootstrap over neurons (all of a neuron's decisions are resampled together). A task without a usable
    answer counts as wrong. Also accuracy by the neuron's edit count (quartiles; heavy tail above the
    sample's p95 vs the rest). Writes eval.json and eval_rows.parquet (one scored row per verdict).
    """
    # lazy: the library loads pandas/caveclient/ray; keep `proofpilot --help` fast
    from proofpilot.eval.decisions import evaluate, write_eval

    report, rows = evaluate([run_dir, *compare_dirs], n_bootstrap=n_bootstrap, seed=seed, ci_level=ci_level)
    json_path, rows_path = write_eval(report, rows, out_dir or run_dir / "eval")
    for g in report.groups:
        m = g.metrics
        click.echo(
            f"{g.agent:>10} {g.op:<5} n={g.n_tasks:<5} neurons={g.n_neurons:<4} accuracy "
            f"{fmt_estimate(m['accuracy'])}  F1 {fmt_estimate(m['f1'])}  "
            f"no answer {fmt_estimate(m['no_answer_rate'])}  "
            f"calls/edit {fmt_estimate(m['calls_per_edit'], 2)}"
        )
    for c in report.contrasts:
        if c.kind == "agents":
            click.echo(
                f"accuracy {c.a} − {c.b} ({c.op}): {fmt_estimate(c.difference)}"
                + (f"; {c.note}" if c.note else "")
            )
    for note in report.notes:
        click.echo(f"note: {note}")
    click.echo(f"wrote {json_path} and {rows_path}")
