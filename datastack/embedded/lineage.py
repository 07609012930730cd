"""Root ids of the embedded datastack: which exist, when each was created, whether it is latest, and the
lineage
graph (parents/children through merges and splits), all derived from the neuron logs.

A root's lineage lies within one neuron pair: shared splits are the only operations that touch two neurons."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from proofpilot.datastack.embedded import ids
from proofpilot.datastack.embedded.generator import Generator
from proofpilot.datastack.embedded.ids import RootKind

PRE_PROOFREADING_MS = 86_400_000  # roots never edited are dated one day before the edit window


@dataclass(frozen=True)
class RootState:
    """A state of a proofread neuron's lineage: the neuron after its first `n_rows` log rows."""

    neuron: int
    n_rows: int


Graph = tuple[dict[int, list[int]], dict[int, list[int]], dict[int, int]]  # parents, children, creator
GRAPH_CACHE_SIZE = 4096  # neuron pairs whose lineage graph is kept (a batch of roots often hits one pair)


class Lineage:
    def __init__(self, gen: Generator):
        self.gen = gen
        self._graphs: dict[tuple[int, ...], Graph] = {}

    def _decode(self, root: int) -> tuple[RootKind, int] | None:
        try:
            kind, payload = ids.decode_root(root)
        except ValueError:
            return None
        if kind in (RootKind.NEURON, RootKind.INITIAL):
            return (kind, payload) if payload < self.gen.n_neurons else None
        if not self.gen.operation_exists(payload):
            return None
        return kind, payload

    def exists(self, root: int) -> bool:
        decoded = self._decode(root)
        if decoded is None:
            return False
        kind, payload = decoded
        if kind in (RootKind.NEURON, RootKind.DISTRACTOR):
            return True
        if kind is RootKind.INITIAL:
            return len(self.gen.neuron_log(payload)) > 0
        return root in self.graph(root)[1]  # appears in its pair's lineage

    def state(self, root: int) -> RootState | None:
        """The neuron state a root stands for; None for roots outside every proofread lineage."""
        decoded = self._decode(root)
        if decoded is None:
            return None
        kind, payload = decoded
        if kind is RootKind.NEURON:
            return RootState(payload, len(self.gen.neuron_log(payload)))
        if kind is RootKind.INITIAL:
            return RootState(payload, 0)
        if kind in (RootKind.AFTER, RootKind.FOREIGN):
            for neuron in ids.op_owner(payload):
                log = self.gen.neuron_log(neuron)
                try:
                    row = log.row_of(payload)
                except KeyError:
                    continue
                if int(log.after_root[row]) == root:
                    return RootState(neuron, row + 1)
        return None

    def timestamp_ms(self, root: int) -> int:
        kind, payload = self._decode(root) or (None, 0)
        if kind is RootKind.NEURON:
            log = self.gen.neuron_log(payload)
            if len(log):
                return int(log.timestamp_ms[-1])
        if kind in (RootKind.AFTER, RootKind.FOREIGN):
            neuron = ids.op_owner(payload)[0]
            log = self.gen.neuron_log(neuron)
            return int(log.timestamp_ms[log.row_of(payload)])
        if kind is RootKind.SHARED_BEFORE:
            neuron = ids.op_owner(payload)[0]
            log = self.gen.neuron_log(neuron)
            return int(log.timestamp_ms[log.row_of(payload)]) - 1
        return self.gen.t0_ms - PRE_PROOFREADING_MS

    def is_latest(self, root: int) -> bool:
        _, children, _ = self.graph(root)
        return len(children.get(root, ())) == 0

    def graph(self, root: int) -> tuple[dict[int, list[int]], dict[int, list[int]], dict[int, int]]:
        """(parents, children, creating operation) of every root in the lineage of `root`'s neuron pair."""
        decoded = self._decode(root)
        if decoded is None:
            return {}, {}, {}
        kind, payload = decoded
        neuron = payload if kind in (RootKind.NEURON, RootKind.INITIAL) else ids.op_owner(payload)[0]
        pair = neuron // 2
        neurons = [n for n in (2 * pair, 2 * pair + 1) if n < self.gen.n_neurons]
        if self.gen.population.n_shared[2 * pair] == 0:
            neurons = [neuron]
        key = tuple(neurons)
        if key not in self._graphs:
            if len(self._graphs) >= GRAPH_CACHE_SIZE:
                self._graphs.pop(next(iter(self._graphs)))
            self._graphs[key] = self._build_graph(neurons)
        return self._graphs[key]

    def _build_graph(self, neurons: list[int]) -> Graph:
        parents: dict[int, list[int]] = defaultdict(list)
        created_by: dict[int, int] = {}
        for n in neurons:
            log = self.gen.neuron_log(n)
            previous = ids.root_id(RootKind.INITIAL, n) if len(log) else ids.root_id(RootKind.NEURON, n)
            parents.setdefault(previous, [])
            for row in range(len(log)):
                op = int(log.operation_id[row])
                after = int(log.after_root[row])
                created_by[after] = op
                if log.is_shared[row]:
                    shared = int(log.before_root[row])
                    parents[shared].append(previous)
                    parents[after].append(shared)
                elif log.is_merge[row]:
                    partner = int(log.partner_root[row])
                    parents.setdefault(partner, [])
                    parents[after].extend([previous, partner])
                else:
                    foreign = ids.root_id(RootKind.FOREIGN, op)
                    parents[after].append(previous)
                    parents[foreign].append(previous)
                    created_by[foreign] = op
                previous = after
        children: dict[int, list[int]] = defaultdict(list)
        for child, ps in parents.items():
            for p in ps:
                children[p].append(child)
            children.setdefault(child, [])
        return dict(parents), dict(children), created_by

    def lineage_graph(self, roots: list[int], past_ms: float | None, future_ms: float | None) -> dict:
        """networkx node_link_data of the roots' ancestors (created at or after `past_ms`) and descendants
        (created at or before `future_ms`)."""
        nodes: set[int] = set()
        links: set[tuple[int, int]] = set()
        meta: dict[int, int] = {}
        for root in roots:
            parents, children, created_by = self.graph(root)
            if root not in parents:
                continue
            meta.update(created_by)
            nodes.add(root)
            for neighbours, upward in ((parents, True), (children, False)):
                stack = [root]
                while stack:
                    node = stack.pop()
                    for nxt in neighbours.get(node, ()):
                        ts = self.timestamp_ms(nxt)
                        if (upward and past_ms is not None and ts < past_ms) or (
                            not upward and future_ms is not None and ts > future_ms
                        ):
                            continue
                        links.add((nxt, node) if upward else (node, nxt))
                        if nxt not in nodes:
                            nodes.add(nxt)
                            stack.append(nxt)
        node_list = []
        for node in sorted(nodes):
            entry: dict = {"id": node, "timestamp": self.timestamp_ms(node) / 1000.0}
            if node in meta:
                entry["operation_id"] = meta[node]
            node_list.append(entry)
        return {
            "directed": True,
            "multigraph": False,
            "graph": {},
            "nodes": node_list,
            "links": [{"source": s, "target": t} for s, t in sorted(links)],
        }

    def neuron_root_at(self, neuron: int, ms: float) -> int:
        """The neuron's root at time `ms` (inclusive: an operation's new root exists at its own timestamp)."""
        log = self.gen.neuron_log(neuron)
        if len(log) == 0:
            return ids.root_id(RootKind.NEURON, neuron)
        k = int(np.searchsorted(log.timestamp_ms, ms, side="right"))
        return int(log.after_root[k - 1]) if k else ids.root_id(RootKind.INITIAL, neuron)

    def operation_sv_root_at(self, operation_id: int, k: int, ms: float) -> int:
        """Root at `ms` of supervoxel k of an operation (operation_details: merge 0 source / 1 sink; split 0-1
        source side / 2-3 sink side). Before a merge its source is on the neuron's root and its sink on the
        partner; before a split both sides are on the root it cuts; from the op on, each side is on its new
        root and follows the neuron's later edits."""
        owners = ids.op_owner(operation_id)
        log = self.gen.neuron_log(owners[0])
        row = log.row_of(operation_id)
        op_ms = int(log.timestamp_ms[row])
        if log.is_merge[row]:
            if ms < op_ms and k >= 1:
                return int(log.partner_root[row])
            return self.neuron_root_at(owners[0], ms)
        if ms < op_ms:
            if len(owners) == 2 and ms >= op_ms - 1:
                return int(log.before_root[row])  # SHARED_BEFORE, created 1 ms before the split
            return self.neuron_root_at(owners[0], ms)
        if k < 2:
            return self.neuron_root_at(owners[0], ms)
        return (
            self.neuron_root_at(owners[1], ms)
            if len(owners) == 2
            else ids.root_id(RootKind.FOREIGN, operation_id)
        )

    def past_ids(self, root: int, past_ms: float | None) -> list[int]:
        """The ancestors-or-self of `root` that existed at `past_ms` (the earliest ancestors when None)."""
        parents, _, _ = self.graph(root)
        seen, stack, out = {root}, [root], []
        while stack:
            node = stack.pop()
            ps = parents.get(node, [])
            if not ps or (past_ms is not None and self.timestamp_ms(node) <= past_ms):
                out.append(node)
                continue
            for p in ps:
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
        return sorted(out)
