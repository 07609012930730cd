"""Launch checks: does a datastack offer what a pilot reads, before anything expensive starts?

A pilot on a real datastack needs (reference cave-realdata.md 1, 3, 4, 7):

- the token accepted by the info service (a 401/403 there is the first thing a new user hits);
- the chunkedgraph: its server version (``GET /segmentation/api/version``; caveclient refuses most calls
  without one, and bounded ``lvl2_graph`` needs >= 2.15.0) and its table info (what cloud-volume reads);
- the L2 cache listing the datastack's chunkedgraph table (``table_mapping``; pcg_skel refuses otherwise);
- a ``graphene://`` segmentation source (the watershed cutouts of the distractors).

`check_datastack` asks each once, every request on a hardened session (timeout, overall deadline per attempt,
retries) and the whole check under one wall-clock deadline, and raises one DataError line naming everything
that is missing. It fetches no edit history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import requests
from packaging.version import InvalidVersion, Version

from proofpilot.core.errors import DataError
from proofpilot.datastack.client import (
    DEFAULT_GLOBAL_SERVER,
    CaveConnection,
    ClientSettings,
    _run_with_deadline,
    describe_failure,
)
from proofpilot.datastack.session import harden_session

log = logging.getLogger(__name__)

MIN_CHUNKEDGRAPH = Version("2.15.0")  # lvl2_graph with bounds (the crops around an interface)
DEFAULT_DEADLINE_S = 60.0


@dataclass(frozen=True)
class LaunchReport:
    """What the checks found (for the log and run.json)."""

    datastack: str
    server_address: str
    server_versions: dict[str, str | None]
    pcg_table: str
    segmentation_source: str
    missing: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        return {
            "datastack": self.datastack,
            "server_address": self.server_address,
            "server_versions": dict(self.server_versions),
            "pcg_table": self.pcg_table,
            "segmentation_source": self.segmentation_source,
        }


def check_datastack(settings: ClientSettings, deadline_s: float = DEFAULT_DEADLINE_S) -> LaunchReport:
    """The launch checks of the module docstring; DataError (one line) naming what is missing."""
    conn = CaveConnection(settings)  # token, datastack info, materialize and chunkedgraph versions
    report = _run_with_deadline(lambda: _probe_services(conn), deadline_s, "the datastack launch checks")
    if report.missing:
        raise DataError(
            f"datastack {report.datastack!r} on {report.server_address} lacks what a pilot needs: "
            + "; ".join(report.missing)
        )
    log.info(
        "datastack %s on %s: chunkedgraph %s, L2 cache for %s, segmentation %s",
        report.datastack,
        report.server_address,
        report.server_versions.get("chunkedgraph"),
        report.pcg_table,
        report.segmentation_source,
    )
    return report


def _probe_services(conn: CaveConnection) -> LaunchReport:
    client = conn.client
    missing: list[str] = []
    versions = dict(conn.server_versions)
    missing += _chunkedgraph_problems(client, versions.get("chunkedgraph"))
    table = str(client.chunkedgraph.table_name)
    l2_problem = _l2cache_problem(client, table, conn.settings)
    if l2_problem:
        missing.append(l2_problem)
    source = str(client.info.segmentation_source() or "")
    if not source.startswith("graphene://"):
        missing.append(f"a graphene:// segmentation source for cutouts (the info names {source or 'none'!r})")
    return LaunchReport(
        datastack=conn.datastack,
        server_address=conn.server_address or DEFAULT_GLOBAL_SERVER,
        server_versions=versions,
        pcg_table=table,
        segmentation_source=source,
        missing=tuple(missing),
    )


def _chunkedgraph_problems(client, version: str | None) -> list[str]:
    if version is None:
        return ["a chunkedgraph server version (GET /segmentation/api/version answered none)"]
    problems = []
    try:
        if Version(version) < MIN_CHUNKEDGRAPH:
            problems.append(f"chunkedgraph >= {MIN_CHUNKEDGRAPH} for bounded lvl2_graph (server: {version})")
    except InvalidVersion:
        problems.append(f"a readable chunkedgraph version (server: {version!r})")
    try:
        info = client.chunkedgraph.segmentation_info
        if not isinstance(info, dict) or "graph" not in info:
            problems.append("chunkedgraph table info with a 'graph' block (what cloud-volume reads)")
    except requests.RequestException as exc:
        problems.append(f"a reachable chunkedgraph table info ({describe_failure(exc)})")
    return problems


def _l2cache_problem(client, table: str, settings: ClientSettings) -> str | None:
    l2cache = client.l2cache
    harden_session(l2cache.session, settings)
    try:
        mapping = l2cache.table_mapping()
    except requests.RequestException as exc:
        return f"a reachable L2 cache (GET /l2cache/api/v1/table_mapping: {describe_failure(exc)})"
    except (ValueError, TypeError, KeyError) as exc:
        return f"a readable L2 cache table mapping ({describe_failure(exc)})"
    if not isinstance(mapping, dict) or table not in mapping:
        return f"an L2 cache for chunkedgraph table {table!r} (the L2 cache's table_mapping does not list it)"
    return None
