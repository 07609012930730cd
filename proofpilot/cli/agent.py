"""`proofpilot agent …`: check an LLM endpoint and ask it for verdicts on feature tasks.

    proofpilot agent check  --llm-url http://127.0.0.1:8011/v1 --model tinyqwen
    proofpilot agent decide --llm-url URL --model M --tasks tasks.jsonl --out verdicts.jsonl

A task line is `{"task_id": "...", "op_kind": "merge"|"split", "features": {"name": number, ...}}`.
Verdicts are appended to --out as they arrive (one JSON line each); tasks already there are skipped,
so an interrupted run resumes without losing or repeating anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import click

from proofpilot.agent.client import MIN_MAX_TOKENS, AgentClient
from proofpilot.agent.prompt import build_request
from proofpilot.agent.records import AgentRequest, Verdict
from proofpilot.core.errors import DataError

log = logging.getLogger(__name__)


def _endpoint_options(func: Any) -> Any:
    options = [
        click.option(
            "--llm-url", required=True, envvar="PROOFPILOT_LLM_URL", help="OpenAI base URL, e.g. http://host:8000/v1."
        ),
        click.option("--model", required=True, envvar="PROOFPILOT_LLM_MODEL", help="Served model name."),
        click.option(
            "--api-key", default="EMPTY", envvar="PROOFPILOT_LLM_API_KEY", show_default=False,
            help="API key if the server wants one (env PROOFPILOT_LLM_API_KEY).",
        ),
        click.option("--timeout", "timeout_s", default=60.0, show_default=True, help="Request timeout (s)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group("agent")
def agent() -> None:
    """Ask an LLM agent (vLLM or any OpenAI-compatible server) for merge/split verdicts."""


@agent.command("check")
@_endpoint_options
def check(llm_url: str, model: str, api_key: str, timeout_s: float) -> None:
    """Ping the endpoint and confirm it serves MODEL."""

    async def run() -> dict[str, Any]:
        async with AgentClient(llm_url, model, api_key=api_key, timeout_s=timeout_s) as client:
            return await client.check(timeout_s=timeout_s)

    info = asyncio.run(run())
    click.echo(f"ok: {model} served at {llm_url} (max_model_len {info.get('max_model_len', 'unknown')})")


def read_tasks(path: Path) -> list[AgentRequest]:
    """Parse a JSON-lines task file into requests; DataError (with the line number) on bad input."""
    requests = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            requests.append(build_request(str(row["task_id"]), row["op_kind"], row["features"]))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
        except (KeyError, TypeError) as exc:
            raise DataError(f"{path}:{lineno}: a task needs task_id, op_kind and features ({exc})") from None
        except DataError as exc:
            raise DataError(f"{path}:{lineno}: {exc}") from None
    if not requests:
        raise DataError(f"empty task list: {path} has no tasks")
    return requests


def _done_task_ids(out: Path) -> set[str]:
    if not out.exists():
        return set()
    done = set()
    for lineno, line in enumerate(out.read_text().splitlines(), start=1):
        if line.strip():
            try:
                done.add(json.loads(line)["task_id"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DataError(f"{out}:{lineno}: not a verdict line; refusing to append to it") from None
    return done


def _summary(verdicts: list[Verdict]) -> str:
    valid = sum(v.valid for v in verdicts)
    reasons = Counter(v.error_reason for v in verdicts if not v.valid)
    answered = [v for v in verdicts if v.answers]
    mean_p = sum(v.prompt_tokens for v in answered) / max(len(answered), 1)
    mean_c = sum(v.completion_tokens for v in answered) / max(len(answered), 1)
    failed = ", ".join(f"{r}: {n}" for r, n in sorted(reasons.items())) or "none"
    return (
        f"{len(verdicts)} verdicts, {valid} valid; failed by reason: {failed}; "
        f"mean tokens per answered task: {mean_p:.1f} prompt, {mean_c:.1f} completion"
    )


@agent.command("decide")
@_endpoint_options
@click.option(
    "--tasks", "tasks_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--max-in-flight", default=32, show_default=True, help="Concurrent requests.")
@click.option("--max-tokens", default=MIN_MAX_TOKENS, show_default=True, help="Completion cap per answer.")
@click.option("--max-retries", default=2, show_default=True, help="Transport retries (SDK, with backoff).")
@click.option("--max-invalid-retries", default=2, show_default=True, help="Re-asks after a schema failure.")
def decide(
    llm_url: str,
    model: str,
    api_key: str,
    timeout_s: float,
    tasks_path: Path,
    out_path: Path,
    max_in_flight: int,
    max_tokens: int,
    max_retries: int,
    max_invalid_retries: int,
) -> None:
    """Ask MODEL for a verdict on every task in TASKS; append verdicts to OUT."""
    requests = read_tasks(tasks_path)
    done = _done_task_ids(out_path)
    todo = [r for r in requests if r.task_id not in done]
    if not todo:
        click.echo(f"all {len(requests)} tasks already have verdicts in {out_path}")
        return
    out_path.parent.mkdir(parents=True, exist_ok=True)

    async def run() -> list[Verdict]:
        client = AgentClient(
            llm_url, model, api_key=api_key, timeout_s=timeout_s, max_retries=max_retries,
            max_invalid_retries=max_invalid_retries, max_tokens=max_tokens, max_in_flight=max_in_flight,
        )
        async with client:
            await client.check()
            with out_path.open("a") as sink:

                def write(verdict: Verdict) -> None:
                    sink.write(json.dumps(verdict.to_dict()) + "\n")
                    sink.flush()

                return await client.decide_all(todo, on_verdict=write)

    verdicts = asyncio.run(run())
    click.echo(_summary(verdicts) + f"; appended to {out_path}")
