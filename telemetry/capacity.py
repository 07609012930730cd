"""Capacity sweep: the concurrency at which one endpoint stops serving more decisions per second.

The pilot's own requests (agent/prompt.py on tasks, or a prompts file) are sent through the agent client
at geometric concurrency 1, 2, 4, … up to a bound, each level a closed loop of `rounds` × concurrency
requests (at least `min_requests`). Per level: decisions/s (decisions / the span from the first send to
the last receive), node-seconds per decision from the exact busy time (telemetry/busy.py: the union of
the requests' send..receive intervals), latency p50/p95/p99. The sweep stops once throughput grows by
less than `GAIN` over the best level so far `PATIENCE` times in a row, or once p95 exceeds the cap.

The knee, the recommended operating point, is the lowest concurrency reaching (1 − KNEE_WITHIN) of the
best throughput: beyond it more requests in flight only add latency. KNEE_WITHIN is tighter than GAIN
because the knee's node-seconds per decision is what the projection prices: at most 1/(1 − KNEE_WITHIN)
(3.1 %) over the saturated cost. At concurrency = K slots a closed loop leaves each slot idle for one
client turnaround per request (on the 0.2 s simulated server that was 7 % of its time), so the knee is
usually one level above K. With a p95 cap the recommendation is
the knee if it meets the cap, else the highest-throughput level that does. Written to capacity.json
(`write_capacity_json`, read back by `read_capacity_json`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from proofpilot.agent.client import AgentClient
from proofpilot.agent.records import TRANSPORT_REASONS, AgentRequest, Verdict
from proofpilot.agent.schema import PROMPT_VERSION, check_op_kind
from proofpilot.core.atomic import write_text_atomic
from proofpilot.core.errors import ConfigError, DataError
from proofpilot.core.records import from_json, read_json_object
from proofpilot.telemetry.busy import percentile, union_seconds

log = logging.getLogger(__name__)

CAPACITY_NAME = "capacity.json"
GAIN = 0.05  # a level "grows" throughput when it beats the best so far by at least this fraction
PATIENCE = 2  # levels in a row without growth end the sweep
KNEE_WITHIN = 0.03  # the knee: the lowest concurrency within this fraction of the best throughput


@dataclass(frozen=True)
class CapacityLevel:
    """One concurrency level of the sweep."""

    concurrency: int
    decisions: int
    invalid: int  # answers that failed the verdict schema (they still cost server time)
    wall_s: float  # first send to last receive
    busy_s: float  # union of the requests' send..receive intervals
    decisions_per_s: float
    node_s_per_decision: float
    gpu_s_per_decision: float
    latency_p50_s: float
    latency_p95_s: float
    latency_p99_s: float
    gain: float | None  # decisions/s over the best earlier level, minus 1 (None for the first)


@dataclass(frozen=True)
class CapacityReport:
    llm_url: str
    model: str
    gpus_per_endpoint: int
    max_concurrency: int
    max_p95_s: float | None
    levels: tuple[CapacityLevel, ...]
    stopped: str  # why the sweep ended
    knee_concurrency: int
    recommended_concurrency: int | None  # None: no level met the p95 cap
    notes: tuple[str, ...] = ()
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    schema: str = "proofpilot.capacity/1"

    def level(self, concurrency: int | None) -> CapacityLevel | None:
        return next((lv for lv in self.levels if lv.concurrency == concurrency), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = CAPACITY_NAME) -> CapacityReport:
        return from_json(cls, data, source)


def write_capacity_json(report: CapacityReport, path: Path) -> Path:
    """Write the report atomically to `path` (a directory gets capacity.json)."""
    path = Path(path)
    path = path / CAPACITY_NAME if path.is_dir() else path
    write_text_atomic(path, json.dumps(report.to_dict(), indent=1, allow_nan=False))
    return path


def read_capacity_json(path: Path) -> CapacityReport:
    """capacity.json (or a directory's) as the record `write_capacity_json` wrote."""
    path = Path(path)
    path = path / CAPACITY_NAME if path.is_dir() else path
    return CapacityReport.from_dict(read_json_object(path, "capacity report"), str(path))


def read_prompts(path: Path) -> list[AgentRequest]:
    """A prompts file: JSON lines `{"op_kind": "merge"|"split", "messages": [...]}` or `{"op_kind": ...,
    "prompt": "text"}` (a single user message). One-line DataError naming the line otherwise."""
    out = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            kind = check_op_kind(row.get("op_kind", "merge"))
            messages = row["messages"] if "messages" in row else [{"role": "user", "content": row["prompt"]}]
            if not isinstance(messages, list) or not messages:
                raise TypeError("messages must be a non-empty list")
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(
                f"{path}:{lineno}: a prompt needs op_kind and messages or prompt ({exc})"
            ) from None
        out.append(AgentRequest(f"p{lineno}", kind, tuple(messages), PROMPT_VERSION))
    if not out:
        raise DataError(f"no prompts in {path}")
    return out


def levels_up_to(max_concurrency: int) -> list[int]:
    """1, 2, 4, … below the bound, then the bound itself."""
    if max_concurrency < 1:
        raise ConfigError(f"--max-concurrency must be >= 1, got {max_concurrency}")
    out, c = [], 1
    while c < max_concurrency:
        out.append(c)
        c *= 2
    return [*out, max_concurrency]


async def run_level(
    client: AgentClient, prompts: Sequence[AgentRequest], concurrency: int, n: int, gpus: int = 1
) -> CapacityLevel:
    """`n` requests (the prompts in turn) with `concurrency` in flight; DataError on a transport failure."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Verdict:
        p = prompts[i % len(prompts)]
        request = AgentRequest(f"{p.task_id}@c{concurrency}#{i}", p.op_kind, p.messages, p.prompt_version)
        async with gate:
            return await client.decide(request)

    verdicts = await asyncio.gather(*(one(i) for i in range(n)))
    failed = [v.error_reason for v in verdicts if v.error_reason in TRANSPORT_REASONS or not v.answers]
    if failed:
        raise DataError(
            f"capacity sweep at concurrency {concurrency}: {len(failed)} of {n} requests got no answer "
            f"({failed[0]}): the endpoint is not serving"
        )
    spans = [s for v in verdicts for s in v.call_spans]
    wall = max(b for _, b in spans) - min(a for a, _ in spans)
    busy = union_seconds(spans)
    latencies = [v.latency_s for v in verdicts]
    return CapacityLevel(
        concurrency=concurrency,
        decisions=n,
        invalid=sum(not v.valid for v in verdicts),
        wall_s=wall,
        busy_s=busy,
        decisions_per_s=n / wall,
        node_s_per_decision=busy / n,
        gpu_s_per_decision=gpus * busy / n,
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
        latency_p99_s=percentile(latencies, 99),
        gain=None,
    )


def knee(levels: Sequence[CapacityLevel]) -> CapacityLevel:
    """The lowest concurrency within KNEE_WITHIN of the best throughput measured."""
    best = max(lv.decisions_per_s for lv in levels)
    return next(lv for lv in levels if lv.decisions_per_s >= (1 - KNEE_WITHIN) * best)


def recommend(levels: Sequence[CapacityLevel], max_p95_s: float | None) -> CapacityLevel | None:
    """The knee, or under a p95 cap the knee if it meets it, else the best level that does."""
    k = knee(levels)
    if max_p95_s is None or k.latency_p95_s <= max_p95_s:
        return k
    ok = [lv for lv in levels if lv.latency_p95_s <= max_p95_s]
    return max(ok, key=lambda lv: lv.decisions_per_s) if ok else None


@dataclass(frozen=True)
class SweepSpec:
    """What to sweep: the endpoint, the bound, the per-level size and the optional p95 cap."""

    llm_url: str
    model: str
    max_concurrency: int = 64
    max_p95_s: float | None = None
    rounds: int = 4  # requests per level = rounds × concurrency ...
    min_requests: int = 16  # ... but at least this many
    gpus_per_endpoint: int = 1
    timeout_s: float = 60.0  # per request
    deadline_s: float = 1800.0  # the whole sweep
    api_key: str = "EMPTY"

    def check(self) -> None:
        levels_up_to(self.max_concurrency)
        if self.max_p95_s is not None and self.max_p95_s <= 0:
            raise ConfigError(f"--max-p95-s must be > 0, got {self.max_p95_s}")
        if self.rounds < 1 or self.min_requests < 1 or self.gpus_per_endpoint < 1:
            raise ConfigError("rounds, min requests and GPUs per endpoint must be >= 1")
        if self.timeout_s <= 0 or self.deadline_s <= 0:
            raise ConfigError("timeout and deadline must be > 0")


async def _sweep(spec: SweepSpec, prompts: Sequence[AgentRequest]) -> CapacityReport:
    levels: list[CapacityLevel] = []
    stopped, strikes = f"reached --max-concurrency {spec.max_concurrency}", 0
    client = AgentClient(spec.llm_url, spec.model, api_key=spec.api_key, timeout_s=spec.timeout_s,
                         max_retries=0, max_in_flight=spec.max_concurrency)  # fmt: skip
    async with client:
        await client.check(timeout_s=min(10.0, spec.timeout_s))
        for c in levels_up_to(spec.max_concurrency):
            lv = await run_level(client, prompts, c, max(spec.min_requests, spec.rounds * c),
                                 spec.gpus_per_endpoint)  # fmt: skip
            best = max((x.decisions_per_s for x in levels), default=None)
            gain = lv.decisions_per_s / best - 1 if best else None
            levels.append(CapacityLevel(**{**asdict(lv), "gain": gain}))
            log.info("concurrency %d: %.2f decisions/s, p95 %.3f s", c, lv.decisions_per_s, lv.latency_p95_s)
            strikes = strikes + 1 if gain is not None and gain < GAIN else 0
            if strikes >= PATIENCE:
                stopped = f"throughput grew < {GAIN:.0%} {PATIENCE} levels in a row"
                break
            if spec.max_p95_s is not None and lv.latency_p95_s > spec.max_p95_s:
                stopped = f"p95 latency {lv.latency_p95_s:.3g} s over --max-p95-s {spec.max_p95_s:g}"
                break
    return _report(spec, levels, stopped)


def _report(spec: SweepSpec, levels: list[CapacityLevel], stopped: str) -> CapacityReport:
    k, rec = knee(levels), recommend(levels, spec.max_p95_s)
    notes = []
    if k is levels[-1] and k.concurrency == spec.max_concurrency and len(levels) > 1:
        notes.append("throughput still grew at the bound: raise --max-concurrency to find the knee")
    if rec is None:
        notes.append(f"no level met --max-p95-s {spec.max_p95_s:g}: no recommendation")
    elif rec is not k:
        notes.append(f"the knee (concurrency {k.concurrency}) is over the p95 cap; recommended is below it")
    if any(lv.invalid for lv in levels):
        notes.append("some answers failed the verdict schema; they are counted (they cost server time)")
    return CapacityReport(
        llm_url=spec.llm_url,
        model=spec.model,
        gpus_per_endpoint=spec.gpus_per_endpoint,
        max_concurrency=spec.max_concurrency,
        max_p95_s=spec.max_p95_s,
        levels=tuple(levels),
        stopped=stopped,
        knee_concurrency=k.concurrency,
        recommended_concurrency=rec.concurrency if rec else None,
        notes=tuple(notes),
    )


def sweep(spec: SweepSpec, prompts: Sequence[AgentRequest]) -> CapacityReport:
    """Run the sweep against `spec.llm_url` (DataError, one line, if it is down, does not serve the model
    or stops answering; the whole sweep is bounded by `spec.deadline_s`)."""
    spec.check()
    if not prompts:
        raise DataError("no prompts to send")

    async def bounded() -> CapacityReport:
        try:
            return await asyncio.wait_for(_sweep(spec, prompts), spec.deadline_s)
        except TimeoutError:
            raise DataError(f"capacity sweep ran past its deadline of {spec.deadline_s:g} s") from None

    return asyncio.run(bounded())
