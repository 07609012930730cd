"""A run's LLM requests as a `vllm bench serve --dataset-name custom` file (and a `capacity --prompts` file).

vLLM 0.32's CustomDataset (`vllm/benchmarks/datasets/datasets.py`) reads JSON lines with a `prompt` string
and an optional integer `output_tokens` (used with `--custom-output-len -1`); other keys are ignored. Each
line here is one LLM call of the run: a decision answered twice (an invalid answer asked again) gives two
lines, so both tools count the same requests. `prompt` is the system and user text of the pilot's own
request (as the session logged it in llm_requests.jsonl), joined by a blank line: `vllm bench serve`
wraps it in the model's chat template as one user turn, a few template tokens fewer than the pilot's two
turns. `output_tokens` is the call's completion tokens (the decision's, split evenly over its calls); with
`--ignore-eos` the server generates exactly that many. `op_kind` and `messages` make the same file a
`proofpilot capacity --prompts` file. Images are not exported (the custom dataset is text-only).

    proofpilot export-prompts RUN_DIR --out prompts.jsonl
    vllm bench serve --backend openai --base-url http://HOST:PORT --model M --tokenizer MODEL_DIR \
        --dataset-name custom --dataset-path prompts.jsonl --custom-output-len -1 --ignore-eos \
        --num-prompts N --max-concurrency C --request-rate inf --disable-shuffle
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from proofpilot.agent.prompt import build_request
from proofpilot.core.atomic import write_text_atomic
from proofpilot.core.errors import DataError
from proofpilot.core.records import from_json
from proofpilot.orchestrator.run_records import read_verdict_rows

TASKS_FILE = "tasks.jsonl"  # the pilot's stored task list (pilot/recover.py TASKS_NAME), without features
REQUESTS_FILE = "llm_requests.jsonl"  # the chat messages the pilot sent, per task (`append_request_log`)


@dataclass(frozen=True)
class LoggedRequest:
    """One line of llm_requests.jsonl: a task's chat messages as sent (text parts; images counted only)."""

    task_id: str
    op_kind: str
    messages: tuple[dict[str, Any], ...]
    n_images: int = 0


def _text_only(message: dict[str, Any]) -> dict[str, Any]:
    return {"role": message["role"], "content": _text(message["content"])}


def append_request_log(run_dir: Path, requests: Iterable[Any]) -> Path:
    """Append the LLM requests a session is about to send (AgentRequest-like: task_id, op_kind, messages,
    n_images) to run_dir/llm_requests.jsonl: what `export-prompts` replays. Image data is left out."""
    path = Path(run_dir) / REQUESTS_FILE
    lines = [
        json.dumps(asdict(LoggedRequest(r.task_id, r.op_kind, tuple(_text_only(m) for m in r.messages),
                                        int(getattr(r, "n_images", 0)))))
        for r in requests
    ]
    with path.open("a") as fh:
        fh.write("".join(line + "\n" for line in lines))
        fh.flush()
        os.fsync(fh.fileno())
    return path


def read_request_log(run_dir: Path) -> dict[str, LoggedRequest]:
    """task id -> its logged request (the last one, if a resumed session sent it again); {} if no file."""
    path = Path(run_dir) / REQUESTS_FILE
    if not path.exists():
        return {}
    out = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = from_json(LoggedRequest, json.loads(line), f"{path}:{lineno}")
        except ValueError as exc:  # a torn last line of a killed session
            raise DataError(f"{path}:{lineno}: not JSON ({exc})") from None
        out[row.task_id] = row
    return out


@dataclass(frozen=True)
class ReplayPrompt:
    """One line of the replay file (one LLM call of the run)."""

    prompt: str  # system + user text: vLLM's custom dataset field
    output_tokens: int  # completion tokens of this call: vLLM's custom dataset field
    op_kind: str
    messages: tuple[dict[str, Any], ...]  # the pilot's chat messages (capacity --prompts reads these)
    task_id: str
    prompt_tokens: int  # what the pilot's server counted for this call (chat template included)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")


def _tasks(run_dir: Path) -> dict[str, dict[str, Any]]:
    path = run_dir / TASKS_FILE
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}".splitlines()[0]) from None
    return {str(r["task_id"]): r for r in rows if isinstance(r, dict) and "task_id" in r}


def _messages(run_dir: Path, task_id: str, op_kind: str, logged: dict, tasks: dict) -> tuple:
    """The messages the pilot sent for a task: its llm_requests.jsonl line, else rebuilt from a task line
    that carries features (a task file of `agent decide`'s format)."""
    if task_id in logged:
        return logged[task_id].messages
    task = tasks.get(task_id)
    if task is None or not task.get("features"):
        raise DataError(f"{run_dir}: no logged request for task {task_id} (a run older than {REQUESTS_FILE})")
    return build_request(task_id, op_kind, task["features"]).messages


def replay_prompts(run_dir: Path) -> list[ReplayPrompt]:
    """Every LLM call of the run's answered decisions, in stored order (DataError, one line, otherwise)."""
    run_dir = Path(run_dir)
    logged = read_request_log(run_dir)
    tasks = {} if logged else _tasks(run_dir)
    out = []
    for v in read_verdict_rows(run_dir):
        if v.agent != "llm" or v.answers < 1:
            continue
        messages = _messages(run_dir, v.task_id, v.op_kind, logged, tasks)
        prompt = "\n\n".join(_text(m["content"]) for m in messages)
        per_call_out = max(1, round(v.completion_tokens / v.answers))
        per_call_in = round(v.prompt_tokens / v.answers)
        line = ReplayPrompt(prompt, per_call_out, v.op_kind, tuple(messages), v.task_id, per_call_in)
        out.extend([line] * v.answers)
    if not out:
        raise DataError(f"{run_dir}: no answered LLM decisions to export")
    return out


def write_replay_jsonl(prompts: list[ReplayPrompt], out: Path) -> Path:
    """The replay file, atomically (one JSON object a line)."""
    out = Path(out)
    write_text_atomic(out, "".join(json.dumps(asdict(p)) + "\n" for p in prompts))
    return out


def read_replay_jsonl(path: Path) -> list[ReplayPrompt]:
    """The file `write_replay_jsonl` wrote, typed (DataError naming the line otherwise)."""
    out = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if line.strip():
            try:
                out.append(from_json(ReplayPrompt, json.loads(line), f"{path}:{lineno}"))
            except ValueError as exc:
                raise DataError(f"{path}:{lineno}: not JSON ({exc})") from None
    return out


def bench_command(out: Path, n: int, concurrency: int | str = "C") -> str:
    """The `vllm bench serve` line that replays `out` (HOST, PORT, M and MODEL_DIR left to the user)."""
    return (
        "vllm bench serve --backend openai --base-url http://HOST:PORT --model M --tokenizer MODEL_DIR "
        f"--dataset-name custom --dataset-path {out} --custom-output-len -1 --ignore-eos "
        f"--num-prompts {n} --max-concurrency {concurrency} --request-rate inf --disable-shuffle"
    )
