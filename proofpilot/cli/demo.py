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
@click.option("--text-only", is_flag=True,
              help="Serve the tiny text model (Qwen2) and send features only, instead of the tiny Qwen2.5-VL "
                   "with 3 rendered views of 512 px per task.")  # fmt: skip
@click.option("--capacity-max-concurrency", type=click.IntRange(min=1), default=32, show_default=True,
              help="Bound of the capacity sweep after the LLM pilot (the report prices the knee).")
@click.option("--no-capacity", is_flag=True, help="Skip the capacity sweep.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
def demo(out_dir: Path, neurons: int, max_ops_per_neuron: int, seed: int, text_only: bool,
         capacity_max_concurrency: int, no_capacity: bool, progress: bool) -> None:  # fmt: skip
    """Run the whole pilot on the embedded datastack and print the report's path.

    Starts the embedded CAVE servers and the vLLM CPU server (tiny Qwen2.5-VL: the vision agent's prompts),
    runs `edits` on the mouse-like and fly-like datastacks (samples of 100 and 500, Figure 1 from 10
    resamples), a pilot on NEURONS mouse-like neurons with the LLM (then its capacity sweep) and with the
    baseline agent, writes report.html, and stops every server it started. Needs `make setup` first.
    """
    # lazy: the library loads pandas/caveclient/ray; keep `proofpilot --help` fast
    from proofpilot.demo import DemoConfig, run_demo

    report = run_demo(DemoConfig(out_dir=out_dir, neurons=neurons, max_ops_per_neuron=max_ops_per_neuron,
                                 seed=seed, progress=progress, text_only=text_only,
                                 capacity_max_concurrency=None if no_capacity else capacity_max_concurrency))
    click.echo(f"report: {report}")
