"""One dispatch session of a pilot: Ray workers, verdicts into the run store and the driver's Prometheus
registry as they arrive, vLLM's /metrics scraped over the dispatch window, then the window and cost.json.

Decisions (valid or invalid answers, request errors) are stored in verdicts.jsonl. A transport failure
(the server down, a timeout, HTTP 5xx/429 after the client's retries) is not a decision: it is stored in
llm_errors.jsonl and counted in Prometheus by reason, and its task is asked again once its endpoint answers
(orchestrator.outage); after `outage_wait_s` without any answer the session stops, its undecided tasks
left for `--resume`. A task that keeps failing on its own while others are decided is set aside after
`max_task_failures`, also left for `--resume`.

The scrape starts once the Ray workers are up (so Ray's start-up is not in the window) and stops when the last
verdict is stored, also after Ctrl-C or a failure; the window and the cost of a partial session are kept.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from proofpilot.agent.baseline import BaselineAgent
from proofpilot.agent.prompt import build_request, request_images
from proofpilot.agent.records import AgentRequest, Verdict
from proofpilot.agent.schema import PROMPT_VERSION
from proofpilot.core.errors import ConfigError, DataError
from proofpilot.orchestrator.dispatch import (
    Dispatcher,
    WorkItem,
    start_function_workers,
    start_llm_workers,
    stop_workers,
)
from proofpilot.orchestrator.outage import (
    DEFAULT_MAX_TASK_FAILURES,
    DEFAULT_OUTAGE_WAIT_S,
    EndpointHealth,
    models_probe,
)
from proofpilot.orchestrator.prep import PREP_REASONS, PrepFeed, PrepOptions
from proofpilot.orchestrator.ray_session import RayOptions, ray_session
from proofpilot.orchestrator.run_records import read_verdict_rows
from proofpilot.orchestrator.sample_views import read_sample_views, write_sample_views
from proofpilot.orchestrator.stats import (
    BusyStats,
    DecisionStatLogger,
    RunInfoStats,
    ServerTimingStats,
    StageStats,
)
from proofpilot.orchestrator.store import RunStore
from proofpilot.orchestrator.task_sizes import TaskSizeLog
from proofpilot.pilot.records import llm_error_record, outcome_of, verdict_record  # noqa: F401 - re-exported
from proofpilot.tasks.prepare import PreparedTask, SkeletonSource
from proofpilot.tasks.records import DecisionTask
from proofpilot.tasks.size import TaskSize, task_size
from proofpilot.tasks.views import view_names
from proofpilot.telemetry.busy import BusyTracker
from proofpilot.telemetry.cost import DecisionUsage, build_cost_report, live_cost_updater, write_cost_json
from proofpilot.telemetry.projection import DEFAULT_USD_BASIS, DEFAULT_USD_PER_GPU_HOUR, EditsProjection
from proofpilot.telemetry.replay import append_request_log
from proofpilot.telemetry.run_cost import distinct_operations, run_cost_report, session_file
from proofpilot.telemetry.served import served_by
from proofpilot.telemetry.vllm_scrape import VllmScraper, metrics_url_for

log = logging.getLogger(__name__)

SAMPLES_PER_ROLE = 2  # tasks per (op, role) whose views the report shows

WINDOW_NAME = "vllm_window.json"


@dataclass(frozen=True)
class SessionSpec:
    """How to dispatch: the agent, its endpoints, and what the cost accounting needs."""

    agent: str  # "llm" | "baseline"
    llm_urls: tuple[str, ...] = ()
    model: str | None = None
    concurrency: int = 64
    request_timeout_s: float = 120.0
    server_timings: str = "metrics"
    ray: RayOptions = dataclasses.field(default_factory=RayOptions)
    scrape_interval_s: float = 1.0
    gpus_per_endpoint: int = 2
    progress: bool = True
    outage_wait_s: float = DEFAULT_OUTAGE_WAIT_S
    usd_per_gpu_hour: float = DEFAULT_USD_PER_GPU_HOUR
    max_task_failures: int = DEFAULT_MAX_TASK_FAILURES  # a task failing on its own is set aside after this
    served_on: str = "auto"  # cpu | gpu | auto: what served the run (telemetry/served.py)
    prep: PrepOptions = dataclasses.field(default_factory=PrepOptions)  # views, batches, prefetch
    tokens_per_view: int = 0  # prompt tokens of one view (agent.vision.check_vision)


@dataclass(frozen=True)
class SessionOutcome:
    completed: int
    seconds: float
    decisions_per_s: float
    interrupted: bool
    outcomes: dict[str, int]
    window_path: Path | None
    cost_path: Path | None
    notes: tuple[str, ...]
    unavailable: bool = False  # stopped: no LLM endpoint answered for the outage wait
    llm_errors: int = 0  # transport failures stored by this session
    set_aside: tuple[str, ...] = ()  # tasks that kept failing in transport while others were decided


def llm_payload(prepared: PreparedTask, tokens_per_view: int = 0) -> AgentRequest:
    """The agent's request for a prepared task (built in the preparation's Ray task, images included);
    `tokens_per_view`: the prompt tokens one view adds, carried on the request for the token split."""
    task, images = prepared.task, prepared.views
    return build_request(
        task.task_id, task.op_kind, task.features, images,
        view_names=view_names(len(images)), image_tokens=len(images) * tokens_per_view,
    )  # fmt: skip


def baseline_payload(prepared: PreparedTask) -> DecisionTask:
    return prepared.task


class PilotSession:
    """The driver side of one session: every batch of verdicts is stored (fsync) and recorded.

    With `skeletons` (a layer URL, a PcgSkeletons or another SkeletonSource) the tasks come without features
    and are prepared by Ray tasks during the dispatch (orchestrator.prep; those whose fragment has no geometry
    end in `without_geometry`, undecided); without, they must carry their features."""

    def __init__(
        self,
        store: RunStore,
        logger: DecisionStatLogger,
        tasks: Sequence[DecisionTask],
        agent: str,
        skeletons: str | SkeletonSource | Callable[[], str | SkeletonSource] | None = None,
    ):
        self.store, self.logger, self.agent = store, logger, agent
        self.skeletons = skeletons
        self.without_geometry: dict[str, str] = {}  # after `run`: tasks left undecided, and why
        self.tasks = {t.task_id: t for t in tasks}
        # views kept for the report: SAMPLES_PER_ROLE tasks per (op, role), by the first session with views
        kept_before = bool(read_sample_views(store.run_dir))
        self.samples: Counter[tuple[str, str]] | None = None if kept_before else Counter()
        self.verdicts: list[Verdict] = []
        self.outcomes: Counter[str] = Counter()
        self.busy = BusyTracker()
        self.sizes = TaskSizeLog(store.run_dir)
        self._feed: PrepFeed | None = None

    def _size_of(self, task: DecisionTask) -> TaskSize | None:
        """The size its preparation measured; for a task that came with its features, from those."""
        if self._feed is not None:
            return self._feed.sizes.pop(task.task_id, None)
        return task_size(task) if task.features else None

    def on_verdicts(self, batch: list[tuple[WorkItem, Verdict]]) -> None:
        records, sizes = [], []
        for item, verdict in batch:
            task = self.tasks[item.task_id]
            record = verdict_record(task, verdict, self.agent, self.store.session)
            records.append(record)
            if (size := self._size_of(task)) is not None:
                sizes.append(size)
            self.logger.record_decision(
                op=task.op_kind, agent=self.agent, outcome=record["outcome"], seconds=verdict.latency_s,
                prompt_tokens=verdict.prompt_tokens, completion_tokens=verdict.completion_tokens,
                llm_calls=verdict.answers,
            )  # fmt: skip
            if verdict.attempts:
                self.logger.record(StageStats(task.op_kind, llm=verdict.latency_s))
            if verdict.n_images:
                views = verdict.n_images * verdict.answers
                self.logger.record_views(op=task.op_kind, views=views, image_tokens=verdict.image_tokens)
            if not verdict.valid and verdict.error_reason and verdict.error_reason not in PREP_REASONS:
                self.logger.record_llm_error(verdict.error_reason)
            self._record_serving(task.op_kind, verdict)
        self.sizes.append(sizes)  # before the verdicts: a decided task always has its size stored
        self.store.append(records)  # durable before the next batch is taken
        self.outcomes.update(r["outcome"] for r in records)
        self.verdicts.extend(v for _, v in batch)

    def _record_serving(self, op: str, verdict: Verdict) -> None:
        """The busy-node-seconds counter (client-exact, grown by this decision's calls) and vLLM's
        per-request timings, when the server sent them."""
        if verdict.call_spans and verdict.endpoint:
            added = self.busy.add((self.store.session, verdict.endpoint), verdict.call_spans)
            self.logger.record_busy(BusyStats(verdict.endpoint, added))
        timing = ServerTimingStats(op, self.agent, verdict.server_queue_s, verdict.server_prefill_s,
                                   verdict.server_decode_s, verdict.server_ttft_s)  # fmt: skip
        if any(v is not None for v in (timing.queue_s, timing.prefill_s, timing.decode_s)):
            self.logger.record_server_timing(timing)

    def on_failures(self, batch: list[tuple[WorkItem, Verdict]]) -> None:
        """Transport failures: stored (fsync) in llm_errors.jsonl and counted by reason; not decisions."""
        records = [
            llm_error_record(self.tasks[item.task_id], verdict, self.agent, self.store.session)
            for item, verdict in batch
        ]
        for record in records:
            self.logger.record_llm_error(record["reason"])
        self.store.append_llm_errors(records)

    def run(
        self,
        spec: SessionSpec,
        projection: Callable[[], EditsProjection | None] = lambda: None,
    ) -> SessionOutcome:
        """Dispatch every task of the session (they carry their features) and account for the cost."""
        scraper = None
        stats = None
        notes: list[str] = []
        window_path = cost_path = None
        served = served_by(spec.model, spec.served_on, spec.gpus_per_endpoint, len(spec.llm_urls))
        device = served.device if spec.agent == "llm" else "cpu"
        self.logger.record_run_info(RunInfoStats(spec.model or "none", PROMPT_VERSION, self.agent, device))
        try:
            with ray_session(spec.ray):
                slots, items = self._workers(spec)
                feed = self._feed = self._make_feed(spec)
                try:
                    if feed is not None:
                        feed.prime()  # the preparation's start-up stays out of the scraped window
                    if spec.agent == "llm":
                        scraper = self._start_scraper(spec)
                    before = len(self.store)
                    dispatcher = Dispatcher(
                        slots, self.on_verdicts, self.logger, on_failures=self.on_failures,
                        health=self._health(spec), max_task_failures=spec.max_task_failures,
                    )  # fmt: skip
                    stats = dispatcher.run(
                        items, total=before + len(self.tasks), initial=before, progress=spec.progress,
                        feed=feed,
                    )  # fmt: skip
                finally:
                    stop_workers(slots)
                    if feed is not None:
                        self.without_geometry = dict(feed.without_geometry)
        finally:
            self.sizes.close()
            if scraper is not None:
                try:
                    window_path, cost_path, notes = self._account(spec, scraper, projection)
                except (OSError, DataError, ConfigError) as exc:
                    if stats is not None:
                        raise
                    log.warning("could not write the vLLM window / cost.json: %s", exc)
        log.info("%d decisions in %.1f s (%.1f/s); %d transport failures asked again%s", stats.completed,
                 stats.seconds, stats.decisions_per_s, stats.transport_failures,
                 "; interrupted" if stats.interrupted else "")  # fmt: skip
        return SessionOutcome(
            completed=stats.completed, seconds=stats.seconds, decisions_per_s=stats.decisions_per_s,
            interrupted=stats.interrupted, outcomes=dict(self.outcomes), window_path=window_path,
            cost_path=cost_path, notes=tuple(notes), unavailable=stats.unavailable,
            llm_errors=self.store.n_llm_errors, set_aside=tuple(stats.set_aside),
        )  # fmt: skip

    @staticmethod
    def _health(spec: SessionSpec) -> EndpointHealth | None:
        if spec.agent != "llm":
            return None  # the baseline has no endpoint to lose
        return EndpointHealth(spec.llm_urls, spec.outage_wait_s, probe=models_probe)

    def _make_feed(self, spec: SessionSpec) -> PrepFeed | None:
        if self.skeletons is None:
            return None
        if spec.agent == "llm":
            tasks, model = list(self.tasks.values()), spec.model or ""
            payload = functools.partial(llm_payload, tokens_per_view=spec.tokens_per_view)
            return PrepFeed(tasks, self.skeletons, payload, spec.prep, model, on_prepared=self._on_prepared,
                            on_cave_call=self._on_cave_call)  # fmt: skip
        return PrepFeed(list(self.tasks.values()), self.skeletons, baseline_payload, spec.prep,
                        on_cave_call=self._on_cave_call)  # fmt: skip

    def _on_cave_call(self, endpoint: str, status: str, seconds: float) -> None:
        """A CAVE request of a preparation task (its Ray worker), recorded as the driver's own are."""
        self.logger.record_cave_request(endpoint, status)
        self.logger.record_cave_latency(endpoint, status, seconds)

    def _workers(self, spec: SessionSpec):
        tasks = [] if self.skeletons is not None else list(self.tasks.values())
        if spec.agent == "llm":
            items = [WorkItem(t.task_id, build_request(t.task_id, t.op_kind, t.features)) for t in tasks]
            self._on_prepared([item.payload for item in items])
            options = {"timeout_s": spec.request_timeout_s, "timings": spec.server_timings}
            return start_llm_workers(spec.llm_urls, spec.model, spec.concurrency, options), items  # type: ignore[arg-type]

        return start_function_workers(BaselineAgent().decide), [WorkItem(t.task_id, t) for t in tasks]

    def _on_prepared(self, requests: list[AgentRequest]) -> None:
        """Requests about to be sent: logged for export-prompts, and a few tasks' views kept for the report.
        Both are auxiliary, so a full disk here is the store's to report, not theirs."""
        if not requests:
            return
        try:
            append_request_log(self.store.run_dir, requests)
            self._keep_sample_views(requests)
        except OSError as exc:
            log.warning("could not log the LLM requests or their sample views: %s", exc)

    def _keep_sample_views(self, requests: list[AgentRequest]) -> None:
        if self.samples is None:
            return
        samples = []
        for request in requests:
            task = self.tasks[request.task_id]
            key = (task.op_kind, task.role)
            if request.n_images and self.samples[key] < SAMPLES_PER_ROLE:
                self.samples[key] += 1
                pngs = request_images(request)
                samples.append((task.task_id, task.op_kind, view_names(len(pngs)), pngs))
        if samples:
            write_sample_views(self.store.run_dir, samples)

    def _start_scraper(self, spec: SessionSpec):

        urls = [metrics_url_for(u) for u in spec.llm_urls]
        updater = live_cost_updater(self.logger, lambda: len(self.verdicts))
        try:
            return VllmScraper(urls, interval_s=spec.scrape_interval_s, on_snapshot=updater).start()
        except DataError as exc:
            log.warning("no vLLM metrics, so no cost.json: %s", exc)
            return None

    def _account(self, spec: SessionSpec, scraper, projection) -> tuple[Path, Path | None, list[str]]:
        """Stop the scrape, save the window, write cost.json; returns (window path, cost path, notes)."""

        run_dir, session = self.store.run_dir, self.store.session
        window = scraper.stop()
        window_path = run_dir / WINDOW_NAME
        window.save(window_path)
        _keep_session_copy(window_path, session)
        decided = [v for v in self.verdicts if v.answers > 0]
        if not decided:
            return window_path, None, ["no LLM answers in this session: no cost.json"]
        served = served_by(spec.model, spec.served_on, spec.gpus_per_endpoint, len(spec.llm_urls))
        basis = {"gpus_per_endpoint": spec.gpus_per_endpoint, "edits_projection": _safe(projection),
                 **_usd_basis(spec.usd_per_gpu_hour), "served_by": served}  # fmt: skip
        try:
            report = build_cost_report(
                window, [DecisionUsage.from_verdict(v) for v in decided],
                edits_by_op=distinct_operations(
                    (self.tasks[v.task_id].op_kind, self.tasks[v.task_id].operation_id) for v in decided
                ), **basis,
            )  # fmt: skip
        except (DataError, ConfigError) as exc:
            log.warning("no cost.json: %s", exc)
            return window_path, None, [f"no cost.json: {exc}"]
        if session > 1:
            note = f"session {session} of a resumed run: this file covers this session's decisions only"
            report = dataclasses.replace(report, notes=(*report.notes, note))
        cost_path = write_cost_json(report, run_dir)
        _keep_session_copy(cost_path, session)
        if session > 1:  # cost.json becomes the run's: every session with a saved window
            try:
                run_report = run_cost_report(run_dir, session, read_verdict_rows(run_dir), **basis)
            except (DataError, ConfigError) as exc:
                log.warning("cost.json holds this session only: no run-level cost: %s", exc)
                return window_path, cost_path, [*report.notes, f"no run-level cost: {exc}"]
            if run_report is not None:
                write_cost_json(run_report, run_dir)
                return window_path, cost_path, list(run_report.notes)
        return window_path, cost_path, list(report.notes)


def _usd_basis(usd_per_gpu_hour: float) -> dict[str, float | str]:
    """The $ basis for cost.json: the default price with its source, or the user's own."""
    if usd_per_gpu_hour == DEFAULT_USD_PER_GPU_HOUR:
        return {"usd_per_gpu_hour": usd_per_gpu_hour, "usd_basis": DEFAULT_USD_BASIS}
    return {"usd_per_gpu_hour": usd_per_gpu_hour, "usd_basis": "set with --usd-per-gpu-hour"}


def _safe(projection: Callable[[], EditsProjection | None]) -> EditsProjection | None:
    try:
        return projection()
    except (DataError, ConfigError) as exc:
        log.warning("no full-dataset projection: %s", exc)
        return None


def _keep_session_copy(path: Path, session: int) -> None:
    """`cost.s2.json`, `vllm_window.s2.json` etc.: each session's own (`cost.json` is the run's)."""
    shutil.copyfile(path, session_file(path.parent, path.name, session))
