"""`pilot --find-capacity`: after the decisions, the capacity sweep (telemetry/capacity.py) on the run's own
requests, saved as RUN_DIR/capacity.json for the report (its throughput-latency curve, and the full-dataset
projection at the knee beside the one at the run's own concurrency).

The requests are the ones the run logged (llm_requests.jsonl: system and user text as sent). Their images are
not logged; a request that carried k views gets k of the run's saved sample views (views/, real renders of the
same size) in their place, so its image tokens, and so its prefill, are those of the run.

    >>> from proofpilot.agent.prompt import build_request, request_images
    >>> logged = build_request("t1", "merge", {"gap_um": 1.0})
    >>> [len(request_images(r)) for r in with_stand_in_views([(logged, 2)], [b"png-a", b"png-b", b"png-c"])]
    [2]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from proofpilot.agent.prompt import image_parts
from proofpilot.agent.records import AgentRequest
from proofpilot.agent.schema import PROMPT_VERSION
from proofpilot.core.errors import ConfigError, DataError
from proofpilot.orchestrator.sample_views import VIEWS_DIR, read_sample_views
from proofpilot.telemetry.capacity import CAPACITY_NAME, CapacityReport, SweepSpec, sweep, write_capacity_json
from proofpilot.telemetry.replay import read_request_log

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CapacityOptions:
    """The sweep `pilot --find-capacity` runs on the first LLM endpoint."""

    max_concurrency: int = 64
    max_p95_s: float | None = None
    timeout_s: float = 120.0
    min_requests: int = 16  # per level (at least; 4 × its concurrency otherwise)


def with_stand_in_views(
    logged: Sequence[tuple[AgentRequest, int]], pngs: Sequence[bytes]
) -> list[AgentRequest]:
    """Each (text-only request, views it carried) with that many of `pngs` (in turn) in its user turn."""
    out, k = [], 0
    for request, n_images in logged:
        if n_images and not pngs:
            raise DataError("the run sent views but saved no sample views to stand in for them")
        images = [pngs[(k + j) % len(pngs)] for j in range(n_images)]
        k += n_images
        system, user = request.messages[0], request.messages[1]
        text = user["content"] if isinstance(user["content"], str) else ""
        content = [{"type": "text", "text": text}, *image_parts(images)] if images else text
        messages = (system, {"role": "user", "content": content})
        out.append(AgentRequest(request.task_id, request.op_kind, messages, request.prompt_version,
                                n_images=len(images)))  # fmt: skip
    return out


def run_requests(run_dir: Path) -> list[AgentRequest]:
    """The run's logged requests, images stood in by its sample views (DataError, one line, if none)."""
    logged = read_request_log(run_dir)
    if not logged:
        raise DataError(f"{run_dir}: no logged LLM requests to sweep with")
    folder = Path(run_dir) / VIEWS_DIR
    pngs = [(folder / name).read_bytes() for s in read_sample_views(run_dir) for name in s.files]
    plain = [
        (AgentRequest(r.task_id, r.op_kind, r.messages, PROMPT_VERSION), r.n_images) for r in logged.values()
    ]
    return with_stand_in_views(plain, pngs)


def capacity_after_run(
    run_dir: Path, llm_url: str, model: str, gpus_per_endpoint: int, options: CapacityOptions
) -> tuple[Path | None, str]:
    """`find_capacity` after a pilot's decisions: (capacity.json, a one-line summary), or (None, why not):
    a failed sweep never costs the run its stored verdicts."""
    try:
        report = find_capacity(run_dir, llm_url, model, gpus_per_endpoint, options)
    except (DataError, ConfigError) as exc:
        log.warning("no capacity sweep: %s", exc)
        return None, f"no capacity sweep: {exc}"
    knee = report.level(report.knee_concurrency)
    summary = (f"capacity: knee at concurrency {report.knee_concurrency}, {knee.decisions_per_s:.3g} "
               f"decisions/s, {knee.node_s_per_decision:.4g} node-s per decision")  # fmt: skip
    return Path(run_dir) / CAPACITY_NAME, summary


def find_capacity(
    run_dir: Path, llm_url: str, model: str, gpus_per_endpoint: int, options: CapacityOptions
) -> CapacityReport:
    """Sweep the endpoint with the run's own requests; write and return RUN_DIR/capacity.json."""
    spec = SweepSpec(llm_url=llm_url, model=model, max_concurrency=options.max_concurrency,
                     max_p95_s=options.max_p95_s, gpus_per_endpoint=gpus_per_endpoint,
                     timeout_s=options.timeout_s, min_requests=options.min_requests)  # fmt: skip
    spec.check()
    requests = run_requests(run_dir)
    log.info("capacity sweep on %s with the run's %d requests, up to %d in flight",
             llm_url, len(requests), options.max_concurrency)  # fmt: skip
    report = sweep(spec, requests)
    write_capacity_json(report, Path(run_dir) / CAPACITY_NAME)
    return report
