"""`proofpilot pilot`: a pilot run — Ray dispatch of decision tasks, Prometheus timing, the cost check.

    proofpilot pilot --datastack fafb_synthetic --neurons 100 --max-ops-per-neuron 2 \\
        --llm-url http://127.0.0.1:8011/v1 --model tinyqwen --gpus-per-endpoint 1 --run-dir runs/p1
    proofpilot pilot ... --run-dir runs/p1 --resume          # after a crash, Ctrl-C or an LLM outage
    proofpilot pilot --datastack fafb_synthetic --neurons 20 --agent baseline --run-dir runs/b1
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from proofpilot.agent.timings import TIMING_MODES
from proofpilot.cli.options import data_source_options
from proofpilot.core.errors import DataError
from proofpilot.datastack.source import DataSource
from proofpilot.orchestrator.outage import DEFAULT_MAX_TASK_FAILURES, DEFAULT_OUTAGE_WAIT_S
from proofpilot.telemetry.metrics import DEFAULT_METRICS_PORT
from proofpilot.telemetry.projection import DEFAULT_USD_PER_GPU_HOUR

log = logging.getLogger(__name__)


class LlmUnavailableError(DataError):
    """No LLM endpoint answered for the outage wait, or some tasks kept failing on their own; what is stored
    stays, the rest waits for --resume."""

    exit_code = 75  # EX_TEMPFAIL: try again later


def _split_urls(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    urls = tuple(u.strip() for chunk in value for u in chunk.split(",") if u.strip())
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise click.BadParameter(f"{url!r} is not an http(s) URL", ctx=ctx, param=param)
    return urls


@click.command("pilot")
@data_source_options(pin=False, fetch=False, timeout_flag=None)
@click.option(
    "--neurons", type=int, required=True, help="Neurons to sample (seeded) from the proofread table."
)
@click.option(
    "--max-ops-per-neuron",
    type=int,
    default=None,
    help="At most K operations per neuron, stratified by type (default: all).",
)
@click.option(
    "--llm-url",
    "llm_urls",
    multiple=True,
    callback=_split_urls,
    metavar="URL[,URL…]",
    envvar="PROOFPILOT_LLM_URL",
    help="OpenAI base URL(s) of the LLM endpoints, e.g. http://host:8000/v1.",
)
@click.option("--model", default=None, envvar="PROOFPILOT_LLM_MODEL", help="Served model name.")
@click.option(
    "--gpus-per-endpoint",
    type=int,
    default=2,
    show_default=True,
    help="GPUs behind each endpoint (for GPU-seconds and $).",
)
@click.option(
    "--served-on",
    type=click.Choice(["auto", "cpu", "gpu"]),
    default="auto",
    show_default=True,
    help="What serves the endpoints; a CPU run is a rehearsal, its $ not priced (auto: tiny model = CPU).",
)
@click.option(
    "--concurrency", type=int, default=64, show_default=True, help="Requests in flight per endpoint."
)
@click.option(
    "--agent",
    type=click.Choice(["llm", "baseline"]),
    default="llm",
    show_default=True,
    help="Who decides: the LLM, or the rule-based baseline on the same features (no LLM needed).",
)
@click.option(
    "--ray-address", default=None, metavar="ADDR", help="Join this Ray cluster (default: local Ray)."
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Run directory: manifest, verdicts.jsonl (append-only), tasks, vLLM window, cost.json.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_METRICS_PORT,
    show_default=True,
    help="Serve the pilot's Prometheus metrics on 127.0.0.1:PORT (0 = any free port).",
)
@click.option(
    "--resume", is_flag=True, help="Continue the run in --run-dir (same options); finished tasks are skipped."
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the neuron and operation samples."
)
@click.option(
    "--skeleton-layer",
    default=None,
    metavar="URL",
    help="Read whole skeletons from this precomputed layer instead of building each task's fragments "
    "with pcg_skel from the datastack's level-2 graph and L2 cache (the default, for any root id).",
)
@click.option(
    "--scrape-interval",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds between scrapes of vLLM's /metrics.",
)
@click.option(
    "--timeout",
    "request_timeout_s",
    type=float,
    default=120.0,
    show_default=True,
    help="LLM request timeout, seconds.",
)
@click.option(
    "--server-timings",
    type=click.Choice(TIMING_MODES),
    default="metrics",
    show_default=True,
    help="Per-request queue/prefill/decode times: vLLM's per-request metrics (metrics), or streamed "
    "responses timed by the client (stream: time to first chunk and decode, for servers without "
    "--enable-per-request-metrics), or metrics until an answer lacks them (auto).",
)
@click.option(
    "--find-capacity",
    is_flag=True,
    help="After the decisions, sweep the first endpoint's concurrency with the run's own requests "
    "(`proofpilot capacity`): RUN_DIR/capacity.json, and the report prices the full dataset at the knee.",
)
@click.option(
    "--capacity-max-concurrency",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="--find-capacity: the sweep's bound (levels 1, 2, 4, …).",
)
@click.option(
    "--max-p95-s",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="--find-capacity: a p95 latency cap for the recommended operating point, seconds.",
)
@click.option(
    "--outage-wait",
    "outage_wait_s",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_OUTAGE_WAIT_S,
    show_default=True,
    metavar="SECONDS",
    help="Tasks hit by an LLM outage are asked again once the server answers; stop (exit 75, resumable) "
    "when no endpoint has answered for this long.",
)
@click.option(
    "--max-task-failures",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_TASK_FAILURES,
    show_default=True,
    help="A task whose own request fails in transport this many times while the server decides other "
    "tasks is set aside for the session (exit 75, resumable).",
)
@click.option(
    "--usd-per-gpu-hour",
    type=click.FloatRange(min=0),
    default=DEFAULT_USD_PER_GPU_HOUR,
    show_default=True,
    help="Price of one GPU-hour for the $ figures of cost.json (default: H100 SXM on-demand, mid-range).",
)
@click.option(
    "--views",
    type=int,
    default=None,
    help="Rendered views sent as images per task, 0–6: xy, xz, yz around the interface point, then the same "
    "three zoomed out 3× (default: 3 for a model that takes images, 0 — features only — for a text model).",
)
@click.option(
    "--view-px", type=int, default=512, show_default=True, help="Side of each square view in px (112–1024)."
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
def pilot(
    source: DataSource,
    neurons: int,
    max_ops_per_neuron: int | None,
    llm_urls: tuple[str, ...],
    model: str | None,
    gpus_per_endpoint: int,
    served_on: str,
    concurrency: int,
    agent: str,
    ray_address: str | None,
    run_dir: Path,
    metrics_port: int,
    resume: bool,
    seed: int,
    skeleton_layer: str | None,
    scrape_interval: float,
    request_timeout_s: float,
    server_timings: str,
    find_capacity: bool,
    capacity_max_concurrency: int,
    max_p95_s: float | None,
    outage_wait_s: float,
    max_task_failures: int,
    usd_per_gpu_hour: float,
    views: int | None,
    view_px: int,
    progress: bool,
) -> None:
    """Dispatch a pilot's merge/split decisions to an agent through Ray and measure what they cost.

    Samples N neurons of the datastack's proofread table, turns their merge and split operations into
    decision tasks, sends them to the LLM endpoints (async Ray actors, bounded in-flight requests) or to the
    baseline, stores every verdict as it arrives (RUN_DIR/verdicts.jsonl), serves Prometheus metrics on
    127.0.0.1, scrapes vLLM's /metrics and writes RUN_DIR/cost.json. Ctrl-C stops cleanly; --resume continues.
    Tasks hit by an LLM outage are asked again when the server is back (failures: RUN_DIR/llm_errors.jsonl);
    a task whose own request keeps failing is set aside after --max-task-failures, for --resume.
    """
    # lazy: the library loads pandas/caveclient/ray; keep `proofpilot --help` fast
    from proofpilot.pilot.capacity_step import CapacityOptions
    from proofpilot.pilot.run import PilotConfig, run_pilot

    sweep = CapacityOptions(capacity_max_concurrency, max_p95_s, request_timeout_s) if find_capacity else None

    config = PilotConfig(
        source=source, run_dir=run_dir, neurons=neurons, llm_urls=llm_urls, model=model, agent=agent,
        max_ops_per_neuron=max_ops_per_neuron,
        gpus_per_endpoint=gpus_per_endpoint, concurrency=concurrency, ray_address=ray_address,
        metrics_port=metrics_port, resume=resume, seed=seed, skeleton_layer=skeleton_layer,
        scrape_interval_s=scrape_interval, request_timeout_s=request_timeout_s, outage_wait_s=outage_wait_s,
        server_timings=server_timings,
        usd_per_gpu_hour=usd_per_gpu_hour, progress=progress, max_task_failures=max_task_failures,
        served_on=served_on,
        views=views, view_px=view_px, find_capacity=sweep,
    )  # fmt: skip
    result = run_pilot(config)
    if result.embedded_server_url:
        click.echo(f"embedded CAVE server for {source.datastack} was at {result.embedded_server_url}")
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(result.outcomes.items())) or "none"
    click.echo(
        f"{result.n_stored} of {result.n_tasks} tasks have verdicts ({result.n_new} new this session: "
        f"{outcomes}; {result.decisions_per_s:.1f} decisions/s); run dir {result.run_dir}"
    )
    if result.neurons_without_log:
        click.echo(
            f"{result.neurons_without_log} of {result.n_neurons} sampled neurons had no readable change log "
            "when the run started: their tasks are not in this run (reasons: run.json, "
            "ingest/per_neuron.parquet)"
        )
    if result.tasks_without_geometry:
        click.echo(
            f"{result.tasks_without_geometry} task(s) have no geometry for a fragment and were not asked "
            "(reasons: run.json, tasks_without_geometry); --resume tries them again"
        )
    if result.llm_errors:
        click.echo(f"LLM transport failures: {result.llm_errors} (asked again; see llm_errors.jsonl)")
    if result.cost_path is not None:
        click.echo(f"cost: {result.cost_path}")
    if result.capacity_path is not None:
        click.echo(f"capacity: {result.capacity_path}")
    for note in result.notes:
        click.echo(f"note: {note}")
    if result.unavailable:
        raise LlmUnavailableError(
            f"no LLM endpoint answered for {outage_wait_s:g} s: {result.undecided} of {result.n_tasks} tasks "
            f"are undecided; rerun with --resume once the server is back ({run_dir})"
        )
    if result.interrupted:
        click.echo(
            f"proofpilot: interrupted; continue with the same command and --resume ({run_dir})", err=True
        )
        raise SystemExit(130)
    if result.set_aside:
        raise LlmUnavailableError(
            f"{len(result.set_aside)} task(s) failed {max_task_failures} times in transport while the LLM "
            f"decided others (first: {result.set_aside[0]}; reasons in llm_errors.jsonl): {result.undecided} "
            f"of {result.n_tasks} tasks are undecided; rerun with --resume to ask them again ({run_dir})"
        )
