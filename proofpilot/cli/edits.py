"""`proofpilot edits`: the seed's edit-distribution analysis with CIs, projection, cost and figures."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import click

from proofpilot.cli.options import cave_fetch_options, data_source_options, open_source
from proofpilot.datastack.source import DataSource
from proofpilot.edits.records import CostBasis, EditsConfig, EditSummary

log = logging.getLogger(__name__)


class ManyValuesOption(click.Option):
    """An option that takes every following value up to the next option: `--sample-sizes 100 500`.

    Commas work too (`--sample-sizes 100,500`).
    """

    def add_to_parser(self, parser, ctx):  # type: ignore[override]
        result = super().add_to_parser(parser, ctx)
        for name in self.opts:
            parser_option = parser._long_opt.get(name) or parser._short_opt.get(name)
            if parser_option is None:
                continue
            previous = parser_option.process

            def process(value, state, previous=previous):
                values = [value]
                while state.rargs and not state.rargs[0].startswith("-"):
                    values.append(state.rargs.pop(0))
                previous(" ".join(values), state)

            parser_option.process = process
        return result


def _sizes(_ctx, _param, values: tuple[str, ...]) -> tuple[int, ...]:
    sizes = []
    for chunk in values:
        for token in chunk.replace(",", " ").split():
            try:
                sizes.append(int(token))
            except ValueError:
                raise click.BadParameter(f"{token!r} is not a whole number") from None
    return tuple(sizes)


def _echo_summary(summary: EditSummary) -> None:
    for s in summary.samples:
        lo, hi = s.projected_total.ci
        click.echo(
            f"{summary.datastack} {s.label}: {s.n_ok} ok, {s.n_errors} errors; mean {s.mean_edits.value:.2f} "
            f"[{s.mean_edits.ci[0]:.2f}, {s.mean_edits.ci[1]:.2f}] edits/neuron; merges "
            f"{100 * s.merge_share.value:.1f} %; "
            f"projected total {s.projected_total.value:,.0f} [{lo:,.0f}, {hi:,.0f}]"
        )
    c = summary.cost.primary
    click.echo(
        f"cost ({c.label}, {c.counts_basis}): {c.node_hours.value:,.1f} node-h = "
        f"{c.gpu_hours.value:,.1f} GPU-h = "
        f"${c.usd.value:,.0f} [{c.usd.ci[0]:,.0f}, {c.usd.ci[1]:,.0f}]"
    )
    click.echo(f"wrote {summary.out_dir}/summary.md, summary.json, per_neuron/operations.parquet, figures/")


@click.command("edits")
@data_source_options(timeout_flag=None)
@click.option(
    "--sample-sizes",
    cls=ManyValuesOption,
    multiple=True,
    callback=_sizes,
    metavar="N [N ...]",
    help="Sample sizes, each an independent simple random sample without replacement.",
)
@click.option("--full", is_flag=True, help="Also analyse every neuron of the table (a census).")
@click.option(
    "--nested", is_flag=True, help="Nested samples (prefixes of one permutation) instead of independent."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Sampler seed.")
@click.option(
    "--bootstrap",
    "n_bootstrap",
    type=int,
    default=1000,
    show_default=True,
    help="Bootstrap resamples (>= 1000).",
)
@click.option(
    "--ci-level", type=float, default=0.95, show_default=True, help="Confidence level of every interval."
)
@click.option(
    "--t-merge", type=float, default=2.0, show_default=True, help="Node-seconds per merge decision."
)
@click.option(
    "--t-split", type=float, default=2.5, show_default=True, help="Node-seconds per split decision."
)
@click.option(
    "--gpus-per-node", type=int, default=2, show_default=True, help="GPUs per node (GPU-h = node-h x this)."
)
@click.option(
    "--usd-per-gpu-hour", type=float, default=2.0, show_default=True, help="Price basis, US$ per GPU-hour."
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder: per_neuron/operations/membership.parquet, summary.json, summary.md, figures/.",
)
@click.option(
    "--compare",
    "compare_dirs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="An earlier `edits` output folder to draw next to this one in the figures (repeatable).",
)
@cave_fetch_options
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
@click.option("--figures/--no-figures", default=True, show_default=True, help="Draw figures/*.png.")
@click.option(
    "--model/--no-model", default=False, show_default=True,
    help="Also fit the hierarchical count model (NumPyro NUTS) and report its posterior predictive totals.",
)  # fmt: skip
@click.option(
    "--resamples", type=click.IntRange(min=0), default=10, show_default=True,
    help="R independent extra samples per size (the seed's Figure 1 used 10): spread and n-to-n differences "
    "in Figure 1 and summary.md (0: none; their change logs are fetched too).",
)  # fmt: skip
def edits(
    source: DataSource,
    sample_sizes: tuple[int, ...],
    full: bool,
    nested: bool,
    seed: int,
    n_bootstrap: int,
    ci_level: float,
    t_merge: float,
    t_split: float,
    gpus_per_node: int,
    usd_per_gpu_hour: float,
    out_dir: Path,
    compare_dirs: tuple[Path, ...],
    workers: int,
    batch_size: int,
    progress: bool,
    figures: bool,
    model: bool,
    resamples: int,
) -> None:
    """Edit statistics of proofread neurons, their projection to the whole table, and its cost.

    Draws simple random samples of the proofread-neuron table (independent per size), fetches the change
    logs of the sampled neurons only (all of them with --full; cached, so a rerun resumes), and reports per
    sample: mean,
    median, percentiles, merge share, heavy tail (p95, tail share, Gini, top-k) with bootstrap CIs and the
    finite-population correction; totals projected to the table on per-neuron sums (shared operations counted
    once per neuron, as the seed did) and deduplicated; the cost in node-hours, GPU-hours and dollars. Neurons
    whose log cannot be fetched are reported as errors, never as 0 edits. An embedded profile
    (minnie65_synthetic, fafb_synthetic) is served in-process unless --server-address is given. The CAVE
    token comes from PROOFPILOT_CAVE_TOKEN / CAVE_TOKEN or caveclient's secret file.
    """
    # lazy: the library loads pandas/caveclient/ray; keep `proofpilot --help` fast
    from proofpilot.edits.analysis import run_edits

    cost = CostBasis(
        t_merge_s=t_merge, t_split_s=t_split, gpus_per_node=gpus_per_node, usd_per_gpu_hour=usd_per_gpu_hour
    )
    config = EditsConfig(
        source=source, out_dir=out_dir, sample_sizes=sample_sizes, full=full, nested=nested, seed=seed,
        n_bootstrap=n_bootstrap, ci_level=ci_level, workers=workers, batch_size=batch_size,
        progress=progress, cost=cost, compare_dirs=compare_dirs, figures=figures, model=model,
        resamples=resamples,
    )  # fmt: skip
    with open_source(source) as resolved:
        summary = run_edits(replace(config, source=resolved))
    _echo_summary(summary)
