"""`proofpilot demo`: the whole pilot on the embedded datastack (a thin shell over proofpilot.demo)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-out"),
              show_default=True, help="Folder for the edits outputs, the pilot runs and the report.")
@click.option("--neurons", type=click.IntRange(min=1), default=100, show_default=True,
              help="Pilot neurons sampled from the mouse-like table.")
@click.option("--max-ops-per-neuron", type=click.IntRange(min=1), default=4, show_default=True,
              help="Operations per neuron turned into decisions (2 decisions each).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every sample.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
def demo(out_dir: Path, neurons: int, max_ops_per_neuron: int, seed: int, progress: bool) -> None:
    """Run the whole pilot on the embedded datastack and print the report's path.

    Starts the embedded CAVE servers and the vLLM CPU server (tiny model), runs `edits` on the mouse-like and
    fly-like datastacks (samples of 100 and 500), a pilot on NEURONS mouse-like neurons with the LLM and with
    the baseline agent, writes report.html, and stops every server it started. Needs `make setup` first.
    """
    # lazy: the library loads pandas/caveclient/ray; keep `proofpilot --help` fast
    from proofpilot.demo import DemoConfig, run_demo

    report = run_demo(DemoConfig(out_dir=out_dir, neurons=neurons, max_ops_per_neuron=max_ops_per_neuron,
                                 seed=seed, progress=progress))
    click.echo(f"report: {report}")
