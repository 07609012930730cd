"""The one-command demo: the whole pilot on the embedded datastack with a real vLLM CPU server.

Starts an embedded CAVE server per profile and the vLLM CPU server (tiny random-weight Qwen2), then runs the
same commands a user would: `edits` on the mouse-like and fly-like datastacks, a `pilot` with the LLM and one
with the rule-based baseline on the same tasks, and `report` (which also writes the `eval` outputs).
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

from proofpilot.errors import ProofpilotError

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


def _run(argv: list[str]) -> None:
    """Run one `proofpilot` sub-command in-process; a non-zero exit stops the demo."""
    from proofpilot.cli import main

    log.info("proofpilot %s", " ".join(argv))
    started = time.monotonic()
    code = main(argv)
    if code != 0:
        raise ProofpilotError(f"demo step `proofpilot {argv[0]}` failed (exit {code}); see the message above")
    log.info("proofpilot %s took %.1f s", argv[0], time.monotonic() - started)


def run_demo(config: DemoConfig) -> Path:
    """Run the whole demo and return the path of report.html."""
    from proofpilot.agent.serving import CpuServerConfig, VllmCpuServer, unavailable_reason
    from proofpilot.datastack.embedded.server import start_server

    out = config.out_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cache"
    progress = "--progress" if config.progress else "--no-progress"
    vllm_config = CpuServerConfig(log_path=out / "vllm-server.log")
    reason = unavailable_reason(vllm_config)
    if reason:
        raise ProofpilotError(f"the vLLM CPU server is not set up ({reason}); run `make setup` first")

    with ExitStack() as stack:
        servers = {name: stack.enter_context(start_server(name)) for name in EDITS_PROFILES}
        log.info("embedded CAVE servers: %s", {n: s.url for n, s in servers.items()})
        vllm = stack.enter_context(VllmCpuServer(vllm_config))
        log.info("vLLM CPU server healthy at %s", vllm.base_url)

        edits_dirs = []
        for name, server in servers.items():
            edits_dir = out / f"edits-{name}"
            sizes = [str(n) for n in config.sample_sizes]
            _run(["edits", "--datastack", name, "--server-address", server.url, "--sample-sizes", *sizes,
                  "--seed", str(config.seed), "--out", str(edits_dir), "--cache-dir", str(cache)])
            edits_dirs.append(edits_dir)

        common = ["--datastack", PILOT_PROFILE, "--server-address", servers[PILOT_PROFILE].url,
                  "--neurons", str(config.neurons), "--max-ops-per-neuron", str(config.max_ops_per_neuron),
                  "--seed", str(config.seed), progress]
        llm_run, baseline_run = out / "run-llm", out / "run-baseline"
        _run(["pilot", *common, "--agent", "llm", "--llm-url", vllm.base_url, "--model", "tinyqwen",
              "--gpus-per-endpoint", "1", "--concurrency", str(config.concurrency),
              "--metrics-port", str(config.metrics_port), "--run-dir", str(llm_run), *_resume(llm_run)])
        _run(["pilot", *common, "--agent", "baseline", "--metrics-port", "0", "--run-dir", str(baseline_run),
              *_resume(baseline_run)])
        edits_args = [arg for d in edits_dirs for arg in ("--edits", str(d))]
        _run(["report", str(llm_run), *edits_args, "--compare", str(baseline_run)])
    report = llm_run / "report.html"
    if not report.is_file():
        raise ProofpilotError(f"the report was not written: {report}")
    return report


def _resume(run_dir: Path) -> list[str]:
    """Rerunning the demo continues an earlier, interrupted pilot instead of refusing its run dir."""
    return ["--resume"] if (run_dir / "run.json").exists() else []
