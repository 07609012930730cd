"""`proofpilot export-prompts`: a run's LLM requests as a `vllm bench serve --dataset-name custom` file.

    proofpilot export-prompts runs/p1 --out prompts.jsonl

Library and format: telemetry/replay.py. The same file is a `proofpilot capacity --prompts` file.
"""

from __future__ import annotations

from pathlib import Path

import click

_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command("export-prompts")
@click.argument("run_dir", type=_DIR)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The JSON-lines file to write (one line per LLM call).")  # fmt: skip
@click.option("--concurrency", default=None, type=int, help="--max-concurrency of the printed command.")
def export_prompts(run_dir: Path, out_path: Path, concurrency: int | None) -> None:
    """Write RUN_DIR's LLM requests for `vllm bench serve --dataset-name custom` and print the command."""
    from proofpilot.telemetry.replay import bench_command, replay_prompts, write_replay_jsonl

    prompts = replay_prompts(run_dir)
    path = write_replay_jsonl(prompts, out_path)
    click.echo(f"wrote {len(prompts)} requests to {path}; replay them with")
    click.echo(bench_command(path, len(prompts), concurrency or "C"))
