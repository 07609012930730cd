"""The baseline agent: its rule, Verdicts, fit, and accuracy on embedded tasks it was not fitted on."""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from proofpilot.agent.baseline import (
    DEFAULT_RULE,
    BaselineAgent,
    BaselineRule,
    Stump,
    cluster_bootstrap_accuracy,
    fit_rule,
    fit_stump,
)
from proofpilot.agent.schema import DECISIONS
from proofpilot.core.errors import ConfigError, DataError
from proofpilot.core.vocab import ROLE_LABEL
from proofpilot.datastack.client import CaveConnection, ClientSettings
from proofpilot.datastack.embedded.distractors import EmbeddedDistractors
from proofpilot.datastack.embedded.ids import RootKind, root_id
from proofpilot.datastack.embedded.server import start_server
from proofpilot.datastack.ingest import IngestOptions, ingest
from proofpilot.datastack.roles import CaveRoles
from proofpilot.datastack.skeletons import skeleton_layer_url
from proofpilot.tasks.build import TaskOptions, tasks_from_ingest
from proofpilot.tasks.prepare import SkeletonCache, add_features
from proofpilot.tasks.records import DecisionTask


def task(i: int, role: str, features: dict[str, float], neuron: int = 1) -> DecisionTask:
    kind = "merge" if role in ("partner", "distractor") else "split"
    return DecisionTask(
        task_id=f"{i}:{role}",
        operation_id=i,
        neuron_root_id=neuron,
        neuron_n_edits=10,
        op_kind=kind,
        role=role,
        label=ROLE_LABEL[role],
        base_root_id=100 + i,
        candidate_root_id=200 + i if kind == "merge" else None,
        interface_nm=(0.0, 0.0, 0.0),
        features=features,
    )


def test_a_stump_decides_by_its_threshold_and_grows_confident_away_from_it():
    stump = Stump("gap_nm", "le", 100.0, 0.5)
    assert stump.decide(10.0)[0] and not stump.decide(1000.0)[0]
    confidences = [stump.decide(v)[1] for v in (99.0, 50.0, 10.0, 1.0)]
    assert confidences == sorted(confidences) and 0.5 <= confidences[0] < confidences[-1] < 1.0
    assert stump.decide(math.nan) == (False, 0.5)  # missing: the no-edit answer, unsure
    assert Stump("side_cable_um", "ge", 4.0).decide(5.0)[0]
    with pytest.raises(ConfigError):
        Stump("gap_nm", "sideways", 1.0)


def test_fit_finds_the_informative_feature_and_its_threshold():
    rng = random.Random(0)
    tasks = []
    for i in range(200):
        role = "partner" if i % 2 else "distractor"
        gap = rng.uniform(1, 40) if role == "partner" else rng.uniform(60, 2000)
        tasks.append(task(i, role, {"gap_nm": gap, "angle_deg": rng.uniform(0, 180)}))
        split_role = "before_split" if i % 2 else "clean"
        cable = rng.uniform(5, 50) if split_role == "before_split" else rng.uniform(0, 2)
        tasks.append(task(1000 + i, split_role, {"side_cable_um": cable, "kink_deg": rng.uniform(0, 90)}))
    rule = fit_rule(tasks)
    assert (rule.merge.feature, rule.merge.direction) == ("gap_nm", "le") and 40 < rule.merge.threshold < 60
    assert (rule.split.feature, rule.split.direction) == (
        "side_cable_um",
        "ge",
    ) and 2 < rule.split.threshold < 5
    verdicts = BaselineAgent(rule).decide_tasks(tasks)
    assert all(v.decision == t.label for t, v in zip(tasks, verdicts, strict=True))
    with pytest.raises(DataError):
        fit_stump([t for t in tasks if t.role == "partner"], "merge")  # one class only


def test_verdicts_look_like_the_llm_clients_with_zero_tokens():
    tasks = [
        task(1, "partner", {DEFAULT_RULE.merge.feature: DEFAULT_RULE.merge.threshold / 2}),  # the merge side
        task(2, "clean", {"side_cable_um": 0.0}),
        task(3, "distractor", {DEFAULT_RULE.merge.feature: math.nan}),
    ]
    seen = []
    verdicts = asyncio.run(BaselineAgent().decide_all(tasks, on_verdict=seen.append))
    assert [v.task_id for v in verdicts] == [t.task_id for t in tasks] == [v.task_id for v in seen]
    for t, v in zip(tasks, verdicts, strict=True):
        assert v.valid and v.error_reason is None and v.op_kind == t.op_kind
        assert v.decision in DECISIONS[t.op_kind] and 0.5 <= v.confidence <= 1.0
        assert v.prompt_tokens == v.completion_tokens == 0 and v.latency_s >= 0
    assert [v.decision for v in verdicts] == ["merge", "clean", "no_merge"]


def test_bad_input_gives_one_line_errors():
    agent = BaselineAgent()
    for bad in ([], [task(1, "partner", {})], [task(1, "partner", {"gap_nm": 1.0})] * 2):
        with pytest.raises(DataError) as err:
            agent.decide_tasks(bad)
        assert "\n" not in str(err.value)


def test_cluster_bootstrap_resamples_neurons_not_rows():
    # one neuron holds half of the rows and gets all of them wrong; 20 small neurons are all right
    correct = [False] * 100 + [True] * 100
    clusters = [0] * 100 + [1 + i // 5 for i in range(100)]
    acc, low, high = cluster_bootstrap_accuracy(correct, clusters, n_boot=4000)
    assert acc == 0.5 and low < 0.35 and high > 0.6  # rows as independent would give about ±0.07
    assert cluster_bootstrap_accuracy([True, False], [7, 7]) == (0.5, 0.5, 0.5)
    with pytest.raises(DataError):
        cluster_bootstrap_accuracy([], [])


@pytest.fixture(scope="module")
def embedded_tasks():
    """About 250 tasks of the fly-like profile: neurons the shipped rule was not fitted on (it was fitted on
    the mouse-like profile's neurons 0–39), features through cloud-volume from the embedded server."""
    profile = "fafb_synthetic"
    with start_server(profile) as server:
        settings = ClientSettings(datastack=profile, server_address=server.url, write_server_cache=False)
        roots = tuple(root_id(RootKind.NEURON, i) for i in range(1000, 1040))
        result = ingest(settings, IngestOptions(root_ids=roots, use_cache=False, progress=False))
        roles = CaveRoles(CaveConnection(settings).client.chunkedgraph)
        tasks = tasks_from_ingest(
            result, EmbeddedDistractors(profile), TaskOptions(seed=3, max_ops_per_neuron=4), roles=roles
        )
        return add_features(tasks, SkeletonCache(skeleton_layer_url(profile, server_url=server.url)))


@pytest.mark.parametrize("op_kind", ["merge", "split"])
def test_the_shipped_rule_is_above_chance_on_embedded_tasks(embedded_tasks, op_kind):
    tasks = [t for t in embedded_tasks if t.op_kind == op_kind]
    assert len(tasks) >= 80
    verdicts = BaselineAgent(DEFAULT_RULE).decide_tasks(tasks)
    correct = [v.decision == t.label for t, v in zip(tasks, verdicts, strict=True)]
    acc, low, _ = cluster_bootstrap_accuracy(correct, [t.neuron_root_id for t in tasks])
    assert low > 0.5, f"{op_kind}: accuracy {acc:.3f}, 95% CI lower bound {low:.3f}"


def test_a_rule_that_ignores_the_geometry_is_at_chance(embedded_tasks):
    """The same check fails for a rule that looks at nothing: every operation gives one task of each label, so
    always answering "no edit" is right exactly half the time in every neuron."""
    blind = BaselineRule(merge=Stump("no_such_feature", "le", 1.0), split=Stump("no_such_feature", "ge", 1.0))
    verdicts = BaselineAgent(blind).decide_tasks(embedded_tasks)
    correct = [v.decision == t.label for t, v in zip(embedded_tasks, verdicts, strict=True)]
    acc, low, _ = cluster_bootstrap_accuracy(correct, [t.neuron_root_id for t in embedded_tasks])
    assert acc == pytest.approx(0.5) and not low > 0.5
