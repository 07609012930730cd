"""Bad geometry input to a pilot on the embedded datastack: a root with no L2 data, a server that 404s
``lvl2_graph``. Each affected task is left undecided with its reason in run.json, the run finishes, `--resume`
asks exactly those again, and no stored verdict is lost. (A datastack without an L2 cache stops the pilot
before any data: tests/pilot/test_realdata_pilot.py; a cutout outside the volume is a counted skip:
tests/tasks/test_distractors.py.)"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import replace

import pytest

from proofpilot.core.errors import DataError
from proofpilot.datastack.embedded import l2
from proofpilot.datastack.embedded.faults import FaultConfig
from proofpilot.datastack.embedded.server import start_server
from proofpilot.datastack.source import DataSource
from proofpilot.orchestrator.store import VERDICTS_NAME, read_verdicts
from proofpilot.pilot.run import PilotConfig, run_pilot

FLY = "fafb_synthetic"


@pytest.fixture(scope="module")
def ray_tmp():
    path = tempfile.mkdtemp(prefix="ppr-", dir="/tmp")  # short: unix socket paths are limited
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _config(run_dir, ray_tmp, source=FLY) -> PilotConfig:
    return PilotConfig(source=source, run_dir=run_dir, neurons=6, max_ops_per_neuron=2, agent="baseline",
                       metrics_port=0, progress=False, ray_temp_dir=ray_tmp)  # fmt: skip


def _without_geometry(run_dir) -> dict[str, str]:
    return json.loads((run_dir / "run.json").read_text())["sessions"][-1]["tasks_without_geometry"]


def test_a_root_without_l2_data_is_one_task_error_and_resume_decides_it(tmp_path, ray_tmp, monkeypatch):
    real = l2.attributes
    victim: dict[str, int] = {}

    def cache_lacks_one_root(profile, l2_id):  # the first root pcg_skel asks about has no L2 data
        root = l2.decode_l2(l2_id)[0]
        victim.setdefault("root", root)
        return {} if root == victim["root"] else real(profile, l2_id)

    monkeypatch.setattr(l2, "attributes", cache_lacks_one_root)
    run_dir = tmp_path / "run"
    first = run_pilot(_config(run_dir, ray_tmp))
    missing = _without_geometry(run_dir)
    assert first.tasks_without_geometry == len(missing) >= 1 and first.ended == "done"
    assert first.n_stored == first.n_tasks - len(missing) > 0  # the run finished the others
    assert all(str(victim["root"]) in why and "not yet computed" in why for why in missing.values())
    stored = (run_dir / VERDICTS_NAME).read_bytes()

    monkeypatch.setattr(l2, "attributes", real)  # the L2 cache has caught up
    second = run_pilot(replace(_config(run_dir, ray_tmp), resume=True))
    assert second.complete and second.n_new == len(missing) and _without_geometry(run_dir) == {}
    assert (run_dir / VERDICTS_NAME).read_bytes().startswith(stored)  # nothing stored is lost
    assert {v["task_id"] for v in read_verdicts(run_dir)[-len(missing):]} == set(missing)


def test_a_server_that_404s_lvl2_graph_leaves_those_tasks_undecided_and_loses_nothing(tmp_path, ray_tmp):
    run_dir = tmp_path / "run"
    some = FaultConfig(error_rate=0.3, error_status=404, routes=("lvl2_graph",), sticky=True, seed=1)
    with start_server(FLY, faults=some) as server:
        config = _config(run_dir, ray_tmp, DataSource(FLY, server_address=server.url))
        first = run_pilot(config)
        missing = _without_geometry(run_dir)
        assert 0 < len(missing) < first.n_tasks and first.n_stored == first.n_tasks - len(missing)
        assert all("HTTP 404" in why and "lvl2_graph" in why for why in missing.values())
        stored = (run_dir / VERDICTS_NAME).read_bytes()

        server.set_faults(replace(some, error_rate=1.0))  # now no lvl2_graph answers at all
        with pytest.raises(DataError, match=f"none of the {len(missing)} tasks has the geometry") as err:
            run_pilot(replace(config, resume=True))
        assert "\n" not in str(err.value)
    assert (run_dir / VERDICTS_NAME).read_bytes() == stored
