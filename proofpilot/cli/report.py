"""`proofpilot report RUN_DIR [--edits DIR ...]`: the run's self-contained report.html; prints its path.

proofpilot report runs/p1 --edits out/minnie --edits out/fafb --compare runs/b1
"""

from __future__ import annotations

from pathlib import Path

import click

DIR = click.Path(path_type=Path)


@click.command("report")
@click.argument("run_dir", type=DIR)
@click.option(
    "--edits",
    "edits_dirs",
    multiple=True,
    type=DIR,
    metavar="DIR",
    help="A `proofpilot edits` output folder (summary.json, figures/); repeat for mouse-like and fly-like.",
)
@click.option(
    "--compare",
    "compare_dirs",
    multiple=True,
    type=DIR,
    metavar="RUN_DIR",
    help="Another run of the same tasks to score beside it, e.g. the baseline agent's (repeatable).",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the HTML (default: RUN_DIR/report.html).",
)
@click.option("--bootstrap", "n_bootstrap", type=int, default=1000, show_default=True, help="Resamples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap draws.")
def report(
    run_dir: Path,
    edits_dirs: tuple[Path, ...],
    compare_dirs: tuple[Path, ...],
    out_path: Path | None,
    n_bootstrap: int,
    seed: int,
) -> None:
    """Write one self-contained report.html for a pilot run and print its path.

    Accuracy of each agent with 95 % CIs (cluster bootstrap over neurons), the measured cost against the
    seed's projection (node-hours, GPU-hours, $ with its basis), what a full-dataset run would cost for each
    --edits dataset, latency distributions per op type, the edit statistics and figures, and provenance.
    Plots are inline PNGs; the page loads nothing from outside. Also writes RUN_DIR/eval/ (eval.json, rows).
    """
    # lazy: the library loads pandas/caveclient/ray; keep `proofpilot --help` fast
    from proofpilot.report.build import build_report

    result = build_report(run_dir, edits_dirs, compare_dirs, out_path, n_bootstrap=n_bootstrap, seed=seed)
    click.echo(str(result.path))
