"""`proofpilot capacity`: sweep concurrency on one LLM endpoint and recommend an operating point.

    proofpilot capacity --llm-url http://127.0.0.1:8000/v1 --model M --tasks tasks.jsonl
    proofpilot capacity --llm-url URL --model M --prompts prompts.jsonl --max-concurrency 128 --max-p95-s 20

Prompts: the pilot's own (agent/prompt.py) on a task file (`agent decide`'s format), or a prompts file
(telemetry/capacity.py `read_prompts`). Library: telemetry/capacity.py; result: capacity.json.
"""

from __future__ import annotations

from pathlib import Path

import click

from proofpilot.core.errors import ConfigError

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _table(report) -> str:
    head = f"{'conc':>5} {'n':>5} {'dec/s':>8} {'gain':>6} {'node-s/dec':>10} "
    head += f"{'p50 s':>7} {'p95 s':>7} {'p99 s':>7}"
    rows = [head]
    for lv in report.levels:
        gain = f"{lv.gain:+.0%}" if lv.gain is not None else "-"
        mark = " <- knee" if lv.concurrency == report.knee_concurrency else ""
        mark += " (recommended)" if lv.concurrency == report.recommended_concurrency else ""
        rows.append(f"{lv.concurrency:5d} {lv.decisions:5d} {lv.decisions_per_s:8.2f} {gain:>6} "
                    f"{lv.node_s_per_decision:10.4f} {lv.latency_p50_s:7.3f} {lv.latency_p95_s:7.3f} "
                    f"{lv.latency_p99_s:7.3f}{mark}")  # fmt: skip
    return "\n".join(rows)


@click.command("capacity")
@click.option("--llm-url", required=True, envvar="PROOFPILOT_LLM_URL", help="OpenAI base URL (…/v1).")
@click.option("--model", required=True, envvar="PROOFPILOT_LLM_MODEL", help="Served model name.")
@click.option("--api-key", default="EMPTY", envvar="PROOFPILOT_LLM_API_KEY", show_default=False,
              help="API key if the server wants one (env PROOFPILOT_LLM_API_KEY).")  # fmt: skip
@click.option("--tasks", "tasks_path", type=_FILE, help="Task file: prompts by the pilot's prompt builder.")
@click.option("--prompts", "prompts_path", type=_FILE, help="Prompts file (JSON lines: op_kind, messages).")
@click.option("--max-concurrency", default=64, show_default=True, help="Sweep bound (levels 1, 2, 4, …).")
@click.option("--max-p95-s", type=float, default=None, help="Latency cap for the recommended point.")
@click.option("--rounds", default=4, show_default=True, help="Requests per level = rounds × concurrency.")
@click.option("--min-requests", default=16, show_default=True, help="At least this many requests a level.")
@click.option("--gpus-per-endpoint", default=1, show_default=True, help="GPUs of the endpoint (GPU-s).")
@click.option("--timeout", "timeout_s", default=60.0, show_default=True, help="Per-request timeout (s).")
@click.option("--deadline", "deadline_s", default=1800.0, show_default=True, help="Whole-sweep limit (s).")
@click.option("--out", "out_path", default=Path("capacity.json"), show_default=True,
              type=click.Path(path_type=Path), help="Where to write capacity.json.")  # fmt: skip
def capacity(llm_url, model, api_key, tasks_path, prompts_path, out_path, **options) -> None:
    """Find the concurrency at which the endpoint's throughput stops growing (the knee)."""
    from proofpilot.cli.agent import read_tasks
    from proofpilot.telemetry.capacity import SweepSpec, read_prompts, sweep, write_capacity_json

    spec = SweepSpec(llm_url=llm_url, model=model, api_key=api_key, **options)
    spec.check()  # bad bounds fail before any file is read or request sent
    if (tasks_path is None) == (prompts_path is None):
        raise ConfigError("give exactly one of --tasks and --prompts")
    prompts = read_tasks(tasks_path) if tasks_path else read_prompts(prompts_path)
    report = sweep(spec, prompts)
    path = write_capacity_json(report, out_path)
    click.echo(_table(report))
    rec = report.level(report.recommended_concurrency)
    if rec is not None:
        click.echo(f"recommended concurrency {rec.concurrency}: {rec.decisions_per_s:.2f} decisions/s, "
                   f"{rec.node_s_per_decision:.4g} node-s per decision, "
                   f"p95 {rec.latency_p95_s:.3g} s")  # fmt: skip
    for note in report.notes:
        click.echo(f"note: {note}")
    click.echo(f"stopped: {report.stopped}; wrote {path}")
