"""The report's capacity section (RUN_DIR/capacity.json of `pilot --find-capacity` or `proofpilot capacity`):
the throughput-latency curve of the sweep, its table, and the factor that moves the run's measured cost to
the knee, the operating point a full-dataset run would use.

The factor is the knee level's node-seconds per decision over the run's own (both the client-exact union of
send..receive intervals, telemetry/busy.py; the run's scraped figure if it has no client figure). The knee's
per-edit cost is the run's (with its CI, from the run's decisions) times that factor: the sweep replays the
run's own requests, so the mix of merges and splits and of prompt sizes is the run's. The factor is one sweep
level's measurement; its own sampling error is not in the CI, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from proofpilot.report.figures import png_bytes
from proofpilot.report.format import esc, image, table
from proofpilot.telemetry.capacity import CAPACITY_NAME, CapacityReport, read_capacity_json
from proofpilot.telemetry.cost import CostReport

HEAD = ["in flight", "decisions", "decisions/s", "node-s per decision", "p50 latency [s]", "p95 latency [s]",
        "p99 latency [s]"]  # fmt: skip


@dataclass(frozen=True)
class KneeScale:
    """How the run's cost moves to the knee."""

    concurrency: int  # the knee
    run_concurrency_note: str
    factor: float  # knee node-s per decision / the run's
    knee_node_s_per_decision: float
    run_node_s_per_decision: float
    basis: str  # which run figure: client-exact or scraped


def read_run_capacity(run_dir: Path) -> CapacityReport | None:
    path = Path(run_dir) / CAPACITY_NAME
    return read_capacity_json(path) if path.exists() else None


def knee_scale(capacity: CapacityReport | None, cost: CostReport | None) -> KneeScale | None:
    """The factor from the run's node-s per decision to the knee's (None without both files)."""
    if capacity is None or cost is None:
        return None
    knee = capacity.level(capacity.knee_concurrency)
    if knee is None or knee.node_s_per_decision <= 0:
        return None
    client = cost.client_busy
    run, basis = (
        (client.node_s_per_decision, "client-exact")
        if client is not None and not client.foreign_load
        else (cost.throughput.node_s_per_decision, "scraped")
    )
    if not run > 0:
        return None
    note = f"{cost.throughput.busy_fraction:.0%} of the run's scrape intervals had the queue busy"
    if cost.served_by is not None and cost.served_by.rehearsal:
        note += ("; a CPU rehearsal: during the run the pilot's own task preparation shared the server's "
                 "cores, during the sweep it did not, so the factor also holds that difference")
    return KneeScale(capacity.knee_concurrency, note, knee.node_s_per_decision / run,
                     knee.node_s_per_decision, run, basis)  # fmt: skip


def capacity_figure(capacity: CapacityReport) -> bytes:
    """Decisions/s (left) and p50/p95 latency (right) against requests in flight; the knee marked."""
    fig = Figure(figsize=(7.0, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    conc = [lv.concurrency for lv in capacity.levels]
    ax.plot(conc, [lv.decisions_per_s for lv in capacity.levels], "o-", color="#1f77b4", label="decisions/s")
    ax.set_xscale("log", base=2)
    ax.set_xticks(conc, [str(c) for c in conc])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("requests in flight (concurrency)")
    ax.set_ylabel("throughput [decisions/s]", color="#1f77b4")
    ax.axvline(capacity.knee_concurrency, color="grey", linestyle=":", label="knee")
    lat = ax.twinx()
    lat.plot(conc, [lv.latency_p50_s for lv in capacity.levels], "s--", color="#d62728", label="p50 latency")
    lat.plot(conc, [lv.latency_p95_s for lv in capacity.levels], "^--", color="#ff7f0e", label="p95 latency")
    lat.set_ylabel("end-to-end latency [s]", color="#d62728")
    lat.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()[0] + lat.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left", fontsize=8)
    ax.set_title(f"capacity sweep of {capacity.model} (knee at {capacity.knee_concurrency} in flight)")
    return png_bytes(fig)


def _row(lv, knee: int) -> str:
    mark = " (knee)" if lv.concurrency == knee else ""
    return (f"<td>{lv.concurrency}{mark}</td><td>{lv.decisions}</td><td>{lv.decisions_per_s:.3g}</td>"
            f"<td>{lv.node_s_per_decision:.4g}</td><td>{lv.latency_p50_s:.3g}</td><td>{lv.latency_p95_s:.3g}</td>"
            f"<td>{lv.latency_p99_s:.3g}</td>")  # fmt: skip


def capacity_section(capacity: CapacityReport | None, scale: KneeScale | None, images: list[int]) -> str:
    """The section (empty without capacity.json)."""
    if capacity is None:
        return ""
    rows = [_row(lv, capacity.knee_concurrency) for lv in capacity.levels]
    caption = (f"Capacity sweep of {esc(capacity.llm_url)} ({esc(capacity.model)}, "
               f"{capacity.gpus_per_endpoint} GPU(s) per endpoint): stopped because "
               f"{esc(capacity.stopped)}")  # fmt: skip
    text = ("<p>Node-seconds per decision are the busy time of the endpoint (the union of the requests' "
            "send..receive intervals) over decisions; the knee is the lowest concurrency within 3 % of the "
            "best throughput.")  # fmt: skip
    if scale is not None:
        text += (f" The knee costs {scale.knee_node_s_per_decision:.4g} node-s per decision against the "
                 f"run's {scale.run_node_s_per_decision:.4g} ({scale.basis}; "
                 f"{esc(scale.run_concurrency_note)}): "
                 f"the full-dataset table prices the knee at {scale.factor:.3g}× the run's per-edit cost. "
                 "That factor is one sweep level's measurement; its own sampling error is not in the CIs.")
    notes = "".join(f"<li>{esc(n)}</li>" for n in capacity.notes)
    return (
        '<section id="capacity"><h2>Capacity: the operating point of a full run</h2>' + text + "</p>"
        + image(capacity_figure(capacity), "throughput and latency against requests in flight", images)
        + table("capacity-table", caption, HEAD, rows)
        + (f'<ul class="warn">{notes}</ul>' if notes else "")
        + "</section>"
    )  # fmt: skip
