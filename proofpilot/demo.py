"""The one-command demo: the whole pilot on the embedded datastack with a real vLLM CPU server.

Starts an embedded CAVE server per profile and the vLLM CPU server with the tiny random-weight Qwen2.5-VL (the
vision agent's prompts: 3 rendered views of 512 px per task with the features; `text_only` serves the tiny
Qwen2 and sends features only), then composes the same library calls the commands make: `run_edits` on the
mouse-like and fly-like datastacks, `run_pilot` with the LLM (then its capacity sweep, `find_capacity`, so the
report prices the full dataset at the knee) and with the rule-based baseline on the same tasks, and
`build_report` (which also writes the `eval` outputs).
Stops every server it started (also on Ctrl-C or an error) and returns the report's path.

Example::

    from proofpilot.demo import DemoConfig, run_demo
    report = run_demo(DemoConfig(out_dir=Path("demo-out"), neurons=100))
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from proofpilot.agent.serving import CpuServerConfig, VllmCpuServer, unavailable_reason, vision_config
from proofpilot.core.errors import ProofpilotError
from proofpilot.datastack.embedded.server import start_server
from proofpilot.datastack.source import DataSource
from proofpilot.edits.analysis import run_edits
from proofpilot.edits.records import EditsConfig
from proofpilot.pilot.capacity_step import CapacityOptions
from proofpilot.pilot.run import PilotConfig, run_pilot
from proofpilot.report.build import build_report

log = logging.getLogger(__name__)

PILOT_PROFILE = "minnie65_synthetic"
EDITS_PROFILES = ("minnie65_synthetic", "fafb_synthetic")


@dataclass(frozen=True)
class DemoConfig:
    out_dir: Path
    neurons: int = 100
    max_ops_per_neuron: int = 4
    sample_sizes: tuple[int, ...] = (100, 500)
    concurrency: int = 32
    seed: int = 0
    metrics_port: int = 0
    progress: bool = True
    text_only: bool = False  # serve the tiny text model and send features only (no views)
    capacity_max_concurrency: int | None = 32  # the capacity sweep's bound; None: no sweep


def _edits(name: str, server_url: str, config: DemoConfig, out: Path) -> Path:
    edits_dir = out / f"edits-{name}"
    summary = run_edits(
        EditsConfig(
            source=DataSource(
                name, server_address=server_url, cache_dir=out / "cache", write_server_cache=False
            ),
            out_dir=edits_dir,
            sample_sizes=config.sample_sizes,
            seed=config.seed,
            progress=config.progress,
        )
    )
    log.info("edits on %s: %s", name, summary.out_dir)
    return Path(summary.out_dir)


def _pilot(run_dir: Path, server_url: str, config: DemoConfig, **agent) -> Path:
    """One pilot; rerunning the demo continues an earlier, interrupted pilot instead of refusing its dir."""
    started = time.monotonic()
    result = run_pilot(
        PilotConfig(
            source=DataSource(PILOT_PROFILE, server_address=server_url),
            run_dir=run_dir,
            neurons=config.neurons,
            max_ops_per_neuron=config.max_ops_per_neuron,
            seed=config.seed,
            resume=(run_dir / "run.json").exists(),
            progress=config.progress,
            **agent,
        )
    )
    if not result.complete:
        raise ProofpilotError(
            f"the demo's pilot in {run_dir} stopped with {result.n_stored} of {result.n_tasks} verdicts; "
            "run the demo again to continue it"
        )
    log.info("pilot %s: %d verdicts in %.1f s", run_dir.name, result.n_stored, time.monotonic() - started)
    return run_dir


def run_demo(config: DemoConfig) -> Path:
    """Run the whole demo and return the path of report.html."""
    out = config.out_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "vllm-server.log"
    vllm_config = CpuServerConfig(log_path=log_path) if config.text_only else vision_config(log_path=log_path)
    reason = unavailable_reason(vllm_config)
    if reason:
        raise ProofpilotError(f"the vLLM CPU server is not set up ({reason}); run `make setup` first")

    with ExitStack() as stack:
        servers = {name: stack.enter_context(start_server(name)) for name in EDITS_PROFILES}
        log.info("embedded CAVE servers: %s", {n: s.url for n, s in servers.items()})
        vllm = stack.enter_context(VllmCpuServer(vllm_config))
        log.info("vLLM CPU server healthy at %s", vllm.base_url)

        edits_dirs = [_edits(name, server.url, config, out) for name, server in servers.items()]
        pilot_url = servers[PILOT_PROFILE].url
        sweep = config.capacity_max_concurrency
        llm_run = _pilot(
            out / "run-llm", pilot_url, config, agent="llm", llm_urls=(vllm.base_url,),
            model=vllm_config.served_model, gpus_per_endpoint=1, concurrency=config.concurrency,
            metrics_port=config.metrics_port, served_on="cpu", views=None,  # None: 3 views for a vision model
            find_capacity=CapacityOptions(max_concurrency=sweep) if sweep else None,
        )  # fmt: skip
        baseline_run = _pilot(out / "run-baseline", pilot_url, config, agent="baseline", metrics_port=0)
        result = build_report(llm_run, tuple(edits_dirs), (baseline_run,), None)
    if not Path(result.path).is_file():
        raise ProofpilotError(f"the report was not written: {result.path}")
    return Path(result.path)
