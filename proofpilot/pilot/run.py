"""`run_pilot`: one pilot run, from the proofread table to verdicts in the run store and cost.json.

Order of work (every check that can fail on bad input runs before anything in the run dir is written):

1. the run dir: new, or (with resume) made with the same config; 2. every LLM endpoint answers and serves
the model; 3. the metrics exporter on 127.0.0.1:P; 4. the datastack (an embedded server is started
in-process when no address is given for an embedded profile) and its launch checks (datastack.launch:
token, chunkedgraph, L2 cache, segmentation; one line naming what is missing), a seeded sample of N neurons
(N larger than the table is an error), their change logs, decision tasks; 5. the store is opened, finished
tasks are skipped; 6. the rest are prepared by Ray tasks ahead of the workers, pipelined with the dispatch
(orchestrator.prep: geometry from pcg_skel crops around each interface, or a named skeleton layer; features;
views): a task whose fragment has no geometry is left undecided, its reason in run.json, for `resume`; a
task whose features or views fail is stored as an error verdict with its reason; vLLM's /metrics is scraped
(start, every `scrape_interval_s`, end) while Ray dispatches; every verdict is stored as it arrives and
recorded in the driver's Prometheus registry;
7. the scraped window and cost.json (telemetry.cost) are written.

Ctrl-C (or SIGTERM) during dispatch stops it cleanly: the verdicts in hand are stored, the window and cost
of the partial session are written, and `resume=True` continues the run.

An LLM outage is not a decision: the affected tasks are asked again once their endpoint answers (their
failures go to llm_errors.jsonl). When no endpoint answers for `outage_wait_s`, the session stops the same
clean way (ended "llm_unavailable" in the manifest, `PilotResult.unavailable`); `resume=True` then asks
exactly the tasks without a stored verdict. A task whose own request keeps failing while others are decided
is set aside after `max_task_failures` (ended "tasks_set_aside", `PilotResult.set_aside`), also for `resume`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from proofpilot.agent.records import INVALID_ANSWER_REASONS, REQUEST_REASONS, TRANSPORT_REASONS
from proofpilot.agent.schema import PROMPT_VERSION
from proofpilot.agent.timings import TIMING_MODES
from proofpilot.core.errors import ConfigError, DataError
from proofpilot.core.vocab import AGENTS
from proofpilot.datastack.client import add_request_observer, remove_request_observer
from proofpilot.datastack.ingest import resolve_table
from proofpilot.datastack.launch import LaunchReport, check_datastack
from proofpilot.datastack.records import DataPin
from proofpilot.datastack.session import add_timed_request_observer, remove_timed_request_observer
from proofpilot.datastack.source import DataSource
from proofpilot.orchestrator.outage import DEFAULT_MAX_TASK_FAILURES, DEFAULT_OUTAGE_WAIT_S
from proofpilot.orchestrator.prep import PrepOptions
from proofpilot.orchestrator.ray_session import RayOptions, check_ray_address
from proofpilot.orchestrator.run_records import read_run
from proofpilot.orchestrator.stats import DecisionStatLogger
from proofpilot.orchestrator.store import RunStore, StoreFullError, read_verdicts, write_json_lines
from proofpilot.pilot import inputs
from proofpilot.pilot.capacity_step import CapacityOptions, capacity_after_run
from proofpilot.pilot.recover import TASKS_NAME, check_manifest
from proofpilot.pilot.serve import geometry_invalidation_nm, served, with_embedded_defaults
from proofpilot.pilot.session import PilotSession, SessionOutcome, SessionSpec
from proofpilot.pilot.views import DEFAULT_VIEW_PX, check_views, resolve_views
from proofpilot.tasks.prepare import probe_source
from proofpilot.tasks.records import DecisionTask
from proofpilot.telemetry.metrics import DEFAULT_METRICS_PORT, make_decision_logger
from proofpilot.telemetry.projection import DEFAULT_USD_PER_GPU_HOUR
from proofpilot.telemetry.served import served_by

log = logging.getLogger(__name__)

NOTHING_TO_DO = SessionOutcome(0, 0.0, 0.0, False, {}, None, None, ())  # a resume of a finished run


@dataclass(frozen=True)
class PilotConfig:
    """Everything a pilot run needs (the CLI's options)."""

    source: DataSource  # a bare datastack name is taken as DataSource(name)
    run_dir: Path
    neurons: int
    llm_urls: tuple[str, ...] = ()
    model: str | None = None
    agent: str = "llm"
    max_ops_per_neuron: int | None = None
    gpus_per_endpoint: int = 2
    concurrency: int = 64  # requests in flight per endpoint
    ray_address: str | None = None
    ray_temp_dir: str | None = None
    metrics_port: int = DEFAULT_METRICS_PORT  # 0 = any free port
    resume: bool = False
    seed: int = 0
    skeleton_layer: str | None = None
    scrape_interval_s: float = 1.0
    request_timeout_s: float = 120.0
    server_timings: str = "metrics"  # metrics | stream | auto (agent/client.py TIMING_MODES)
    outage_wait_s: float = DEFAULT_OUTAGE_WAIT_S  # stop when no LLM endpoint has answered for this long
    max_task_failures: int = DEFAULT_MAX_TASK_FAILURES  # set a task aside after this many failures of its own
    usd_per_gpu_hour: float = DEFAULT_USD_PER_GPU_HOUR  # the $ basis of cost.json
    progress: bool = True
    served_on: str = "auto"  # cpu | gpu | auto (telemetry/served.py): a CPU run is a rehearsal, not priced
    views: int | None = 0  # per task; None (the CLI default): DEFAULT_VIEWS if the model takes images
    find_capacity: CapacityOptions | None = None  # after the decisions: sweep the first endpoint
    view_px: int = DEFAULT_VIEW_PX  # side of each (square) view

    def __post_init__(self) -> None:
        if isinstance(self.source, str):
            object.__setattr__(self, "source", DataSource(self.source))
        object.__setattr__(self, "run_dir", Path(self.run_dir))
        if self.agent not in AGENTS:
            raise ConfigError(f"agent must be one of {', '.join(AGENTS)}, got {self.agent!r}")
        if self.neurons < 1:
            raise ConfigError(f"--neurons must be >= 1, got {self.neurons}")
        if self.max_ops_per_neuron is not None and self.max_ops_per_neuron < 1:
            raise ConfigError(f"--max-ops-per-neuron must be >= 1, got {self.max_ops_per_neuron}")
        if self.agent == "llm":
            if not self.llm_urls:
                raise ConfigError("the llm agent needs at least one --llm-url")
            if not self.model:
                raise ConfigError("the llm agent needs --model")
            if len(set(self.llm_urls)) != len(self.llm_urls):
                raise ConfigError("--llm-url lists the same endpoint twice")
        if self.concurrency < 1 or self.gpus_per_endpoint < 1:
            raise ConfigError("--concurrency and --gpus-per-endpoint must be >= 1")
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"--metrics-port must be in 0..65535, got {self.metrics_port}")
        if self.scrape_interval_s <= 0 or self.request_timeout_s <= 0:
            raise ConfigError("the scrape interval and request timeout must be positive")
        if self.server_timings not in TIMING_MODES:
            raise ConfigError(f"--server-timings must be one of {', '.join(TIMING_MODES)}")
        if not self.outage_wait_s > 0:
            raise ConfigError(f"--outage-wait must be positive, got {self.outage_wait_s}")
        if self.max_task_failures < 1:
            raise ConfigError(f"--max-task-failures must be >= 1, got {self.max_task_failures}")
        if not 0 <= self.usd_per_gpu_hour < float("inf"):
            raise ConfigError(f"--usd-per-gpu-hour must be >= 0, got {self.usd_per_gpu_hour}")
        served_by(self.model, self.served_on, self.gpus_per_endpoint, len(self.llm_urls))  # checks served_on
        check_views(self.views, self.view_px, self.agent)

    @property
    def datastack(self) -> str:
        return self.source.datastack

    def identity(self) -> dict[str, Any]:
        """What defines the run's tasks and the meaning of its verdicts; `resume` requires the same.

        Endpoints, concurrency, Ray and the CAVE server address are left out: a resumed run may use
        a restarted server on another port or more endpoints."""
        return {
            "datastack": self.datastack,
            "table": self.source.table,
            "neurons": self.neurons,
            "max_ops_per_neuron": self.max_ops_per_neuron,
            "seed": self.seed,
            "agent": self.agent,
            "model": self.model if self.agent == "llm" else None,
            "prompt_version": PROMPT_VERSION,
            "skeleton_layer": self.skeleton_layer,
            **({"views": self.views, "view_px": self.view_px} if self.views else {}),
        }


@dataclass(frozen=True)
class PilotResult:
    run_dir: Path
    session: int
    n_tasks: int
    n_stored: int  # verdicts in the store after this session
    n_new: int  # verdicts stored by this session
    interrupted: bool
    seconds: float  # dispatch wall time of this session
    decisions_per_s: float
    metrics_url: str | None
    window_path: Path | None
    cost_path: Path | None
    outcomes: dict[str, int]
    notes: tuple[str, ...] = ()
    unavailable: bool = False  # stopped: no LLM endpoint answered for the outage wait
    set_aside: tuple[str, ...] = ()  # tasks that kept failing in transport while others were decided
    llm_errors: int = 0  # transport failures of this session (in llm_errors.jsonl; those tasks asked again)
    n_neurons: int = 0  # sampled neurons
    neurons_without_log: int = 0  # of them, those whose change log could not be read when the run started
    embedded_server_url: str | None = None  # the embedded CAVE server started for this session, if any
    tasks_without_geometry: int = 0  # tasks of this session left undecided: a fragment's geometry failed
    capacity_path: Path | None = None  # capacity.json of `find_capacity`

    @property
    def complete(self) -> bool:
        return self.n_stored == self.n_tasks

    @property
    def undecided(self) -> int:
        return self.n_tasks - self.n_stored

    @property
    def ended(self) -> str:
        """How the session ended, as the manifest says: done | interrupted | llm_unavailable |
        tasks_set_aside."""
        if self.unavailable:
            return "llm_unavailable"
        if self.interrupted:
            return "interrupted"
        return "tasks_set_aside" if self.set_aside else "done"


def check_endpoints(urls: tuple[str, ...], model: str, timeout_s: float = 10.0) -> None:
    """Every endpoint must answer and serve `model`; a one-line DataError names the first that does not."""
    # lazy: the OpenAI client stack loads only where requests are sent
    from proofpilot.agent.client import AgentClient

    async def check_all() -> None:
        for url in urls:
            async with AgentClient(url, model) as client:
                await client.check(timeout_s=timeout_s)

    asyncio.run(check_all())


def _resume_tasks(run_dir: Path, tasks: list[DecisionTask]) -> list[DecisionTask]:
    """On resume the run's stored task list is authoritative. Rebuilt tasks may add to it (neurons whose CAVE
    log failed in the first session and answer now) — those stay out of this run; any stored task that can no
    longer be built means the datastack changed under the run."""
    path = run_dir / TASKS_NAME
    if not path.exists():
        return tasks
    stored = {json.loads(line)["task_id"] for line in path.read_text().splitlines() if line.strip()}
    rebuilt = {t.task_id for t in tasks}
    if not stored <= rebuilt:
        raise DataError(
            f"the tasks built now differ from those in {path} ({len(stored - rebuilt)} stored tasks can no "
            "longer be built): the datastack changed since the run started; start a new --run-dir"
        )
    verdicts = {v["task_id"] for v in read_verdicts(run_dir)}
    if verdicts - stored:
        raise DataError(
            f"{run_dir}: {len(verdicts - stored)} verdicts are for tasks not in {TASKS_NAME} (e.g. "
            f"{min(verdicts - stored)!r}); the run store is damaged"
        )
    if len(rebuilt) > len(stored):
        log.warning(
            "%d tasks from neurons that could not be fetched when the run started are left out of this run "
            "(start a new --run-dir to include them)",
            len(rebuilt) - len(stored),
        )
    return [t for t in tasks if t.task_id in stored]


@dataclass(frozen=True)
class _Prepared:
    sample: inputs.PilotSample
    tasks: list[DecisionTask]
    geometry: object  # a skeleton layer URL or a PcgSkeletons (inputs.geometry_source)
    make_geometry: Callable[[], object]  # the same, made where it is called (in each preparation worker)
    checks: LaunchReport


def _prepare(config: PilotConfig, source: DataSource, pinned: DataPin | None) -> _Prepared:
    """Check the datastack (launch checks, before any data is fetched), sample and ingest the neurons, build
    the tasks and name their geometry source."""

    source = with_embedded_defaults(source)  # synthetic data: no response cache, never a user's real token
    resolve_table(source.datastack, source.table)  # an unknown datastack needs --table: said first
    checks = check_datastack(source.client_settings())
    if pinned:
        source = replace(source, version=pinned.materialization_version, timestamp=None)
    sample = inputs.ingest_sample(source, config.neurons, config.seed, config.progress)
    tasks = inputs.build_tasks(sample, source, config.seed, config.max_ops_per_neuron)
    if config.resume:
        tasks = _resume_tasks(config.run_dir, tasks)
    invalidation = geometry_invalidation_nm(config.datastack)
    make_geometry = functools.partial(inputs.geometry_source, source, config.skeleton_layer, invalidation)
    return _Prepared(sample, tasks, make_geometry(), make_geometry, checks)


def _session_spec(config: PilotConfig, tokens_per_view: int = 0) -> SessionSpec:
    return SessionSpec(
        agent=config.agent, llm_urls=config.llm_urls, model=config.model, concurrency=config.concurrency,
        request_timeout_s=config.request_timeout_s, server_timings=config.server_timings,
        ray=RayOptions(address=config.ray_address, temp_dir=config.ray_temp_dir),
        scrape_interval_s=config.scrape_interval_s, gpus_per_endpoint=config.gpus_per_endpoint,
        progress=config.progress, outage_wait_s=config.outage_wait_s,
        usd_per_gpu_hour=config.usd_per_gpu_hour, max_task_failures=config.max_task_failures,
        served_on=config.served_on, tokens_per_view=tokens_per_view,
        prep=PrepOptions(views=config.views or 0, view_px=config.view_px,
                         prefetch=max(PrepOptions.prefetch, 2 * config.concurrency * len(config.llm_urls))),
    )  # fmt: skip


def run_pilot(config: PilotConfig, logger: DecisionStatLogger | None = None) -> PilotResult:
    """Run (or resume) a pilot; see the module docstring. Raises ProofpilotError subclasses on bad input.

    `logger` records every decision (default: a fresh Prometheus registry, served on the metrics port)."""
    identity = config.identity()  # with --views as asked (the default, auto, adds nothing)
    check_manifest(config.run_dir, identity, config.resume)  # a run whose run.json is gone
    RunStore.check(config.run_dir, identity, config.resume)  # read-only
    pinned = read_run(config.run_dir).pin if config.resume else None
    tokens_per_view = 0
    if config.agent == "llm":
        check_endpoints(config.llm_urls, config.model)  # type: ignore[arg-type]
        views, tokens_per_view = resolve_views(config.llm_urls, config.model, config.views, config.view_px)  # type: ignore[arg-type]
        config = replace(config, views=views)
    if config.ray_address:
        check_ray_address(config.ray_address)  # before any data is fetched
    logger = logger or make_decision_logger(True)
    with contextlib.ExitStack() as stack:
        exporter = logger.start_exporter(config.metrics_port)
        if exporter is not None:
            stack.callback(exporter.shutdown)
        logger.declare_llm_error_reasons(INVALID_ANSWER_REASONS + TRANSPORT_REASONS + REQUEST_REASONS)
        add_request_observer(logger.record_cave_request)  # every CAVE call of the ingestion, by route/status
        stack.callback(remove_request_observer, logger.record_cave_request)
        add_timed_request_observer(logger.record_cave_latency)  # and its wall time
        stack.callback(remove_timed_request_observer, logger.record_cave_latency)
        source = stack.enter_context(served(config.source))
        prepared = _prepare(config, source, pinned)
        sample, tasks = prepared.sample, prepared.tasks
        store = stack.enter_context(RunStore.open(config.run_dir, identity, config.resume))
        store.update_manifest(datastack_checks=prepared.checks.to_dict())
        if store.session == 1:
            write_json_lines(config.run_dir / TASKS_NAME, (inputs.task_row(t) for t in tasks))
            inputs.write_ingest(sample, config.run_dir / "ingest")
            store.update_manifest(
                pin=sample.ingest.pin.to_dict(),
                n_tasks=len(tasks),
                neuron_root_ids=list(sample.root_ids),
                neurons_without_log=inputs.neurons_without_log(sample),
            )
        todo = [t for t in tasks if t.task_id not in store.done_task_ids]
        log.info("%d tasks, %d already stored, %d to decide", len(tasks), len(tasks) - len(todo), len(todo))
        outcome = NOTHING_TO_DO
        without_geometry: dict[str, str] = {}
        try:
            if todo:
                if isinstance(prepared.geometry, str):  # an unreachable layer: one line, not N undecided
                    probe_source(prepared.geometry, todo[0])
                geometry = prepared.geometry if isinstance(prepared.geometry, str) else prepared.make_geometry
                session = PilotSession(store, logger, todo, config.agent, skeletons=geometry)
                outcome = session.run(
                    _session_spec(config, tokens_per_view),
                    lambda: inputs.edits_projection(sample, config.datastack, config.seed),
                )
                without_geometry = session.without_geometry  # known once prepared: written after dispatch
                store.update_manifest(session={"tasks_without_geometry": without_geometry})
                if len(without_geometry) == len(todo):
                    raise DataError(f"none of the {len(todo)} tasks has the geometry of its fragments")
        except StoreFullError:
            raise  # the manifest cannot be written either
        except BaseException:
            with contextlib.suppress(Exception):
                store.update_manifest(
                    session={"ended": "failed", "stored": store.n_appended, "llm_errors": store.n_llm_errors}
                )
            raise
        if exporter is not None and not outcome.interrupted:
            exporter.wait_for_final_scrape()  # so Prometheus holds the run's final counts
        result = PilotResult(
            run_dir=config.run_dir, session=store.session, n_tasks=len(tasks), n_stored=len(store),
            n_new=store.n_appended, interrupted=outcome.interrupted, seconds=outcome.seconds,
            decisions_per_s=outcome.decisions_per_s, metrics_url=exporter.url if exporter else None,
            window_path=outcome.window_path, cost_path=outcome.cost_path, outcomes=outcome.outcomes,
            notes=outcome.notes, unavailable=outcome.unavailable, set_aside=outcome.set_aside,
            llm_errors=store.n_llm_errors,
            n_neurons=len(sample.root_ids),
            neurons_without_log=len(read_run(config.run_dir).neurons_without_log),
            embedded_server_url=source.server_address if source is not config.source else None,
            tasks_without_geometry=len(without_geometry),
        )  # fmt: skip
        if config.find_capacity is not None and config.agent == "llm" and result.complete:
            path, note = capacity_after_run(config.run_dir, config.llm_urls[0], config.model,
                                            config.gpus_per_endpoint, config.find_capacity)  # fmt: skip
            result = replace(result, capacity_path=path, notes=(*result.notes, note))
        store.update_manifest(session={
            "ended": result.ended, "stored": store.n_appended, "llm_errors": store.n_llm_errors,
            "undecided": result.undecided, "set_aside": list(result.set_aside), "seconds": outcome.seconds,
            "decisions_per_s": outcome.decisions_per_s,
        })  # fmt: skip
        return result
