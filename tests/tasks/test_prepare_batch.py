"""tasks.prepare.prepare_tasks, what each preparation Ray task runs: every task gets a result, in order, with
its stage times; a stage that fails makes that task a failed one with the stage and a one-line reason."""

from __future__ import annotations

import dataclasses

import pytest
from support.prep_sources import LineSkeletons, make_tasks, render_unless_west

from proofpilot.core.errors import DataError
from proofpilot.tasks.prepare import SkeletonCache, prepare_tasks, probe_source


def test_every_task_gets_a_result_in_order_with_the_stage_that_failed():
    tasks = make_tasks({11: 4}, west={"2:partner"})
    tasks[1] = dataclasses.replace(tasks[1], base_root_id=999)  # a split whose segment has no skeleton
    tasks[3] = dataclasses.replace(tasks[3], interface_nm=(float("nan"), 0.0, 0.0))  # features refuse it
    cache = SkeletonCache(LineSkeletons(missing={999}))
    out = prepare_tasks(tasks, cache, views=2, view_px=64, renderer=render_unless_west)
    assert [p.task.task_id for p in out] == [t.task_id for t in tasks]
    ok, geometry, render, features = out
    assert ok.ok and len(ok.views) == 2 and ok.views[0].startswith(b"\x89PNG") and ok.task.features
    assert ok.seconds.geometry > 0 and ok.seconds.features > 0 and ok.seconds.render > 0
    assert geometry.failed_stage == "geometry"
    assert geometry.reason == "no skeleton in the test layer for root 999"
    assert geometry.seconds.features is None and geometry.seconds.render is None
    assert render.failed_stage == "render" and "west of the origin" in render.reason
    assert render.task.features  # its features were computed before the render failed
    assert features.failed_stage == "features" and features.reason and "\n" not in features.reason
    assert features.seconds.render is None


def test_text_only_preparation_renders_nothing():
    (prepared,) = prepare_tasks(make_tasks({11: 1}), SkeletonCache(LineSkeletons()))
    assert prepared.ok and prepared.views == () and prepared.seconds.render is None


def test_a_source_that_fails_for_the_batch_fails_each_task_at_geometry():
    class Broken:
        def get_many(self, root_ids):
            raise DataError("skeleton layer http://127.0.0.1:9 is unreachable")

    out = prepare_tasks(make_tasks({11: 3}), SkeletonCache(Broken()))
    assert [p.failed_stage for p in out] == ["geometry"] * 3
    assert all("unreachable" in p.reason for p in out)


def test_an_unreachable_layer_is_one_line_before_any_task_is_sent():
    with pytest.raises(DataError, match="unreachable") as info:
        probe_source("precomputed://http://127.0.0.1:9/x", make_tasks({11: 1})[0])
    assert "\n" not in str(info.value)
