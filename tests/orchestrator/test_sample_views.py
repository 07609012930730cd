"""The run's sample views (one writer, one typed reader) and old verdict lines without the vision fields."""

from __future__ import annotations

import pytest

from proofpilot.core.errors import DataError
from proofpilot.orchestrator.run_records import StoredVerdict
from proofpilot.orchestrator.sample_views import INDEX_NAME, VIEWS_DIR, read_sample_views, write_sample_views

OLD_LINE = {  # a verdicts.jsonl line written before views existed
    "task_id": "1:partner", "operation_id": 1, "neuron_root_id": 2, "neuron_n_edits": 3, "label": "merge",
    "agent": "llm", "op_kind": "merge", "decision": "merge", "valid": True, "latency_s": 0.5,
    "prompt_tokens": 500, "completion_tokens": 20, "attempts": 1, "answers": 1, "error_reason": None,
}  # fmt: skip


def test_old_verdict_lines_read_as_text_only():
    v = StoredVerdict.from_dict(OLD_LINE)
    assert (v.n_images, v.image_tokens, v.text_tokens, v.error_detail) == (0, 0, 500, None)
    line = {**OLD_LINE, "n_images": 3, "image_tokens": 978, "prompt_tokens": 1658}
    with_views = StoredVerdict.from_dict(line)
    assert with_views.text_tokens == 680


def test_sample_views_round_trip_once_per_task(tmp_path):
    assert read_sample_views(tmp_path) == []
    pngs = (b"\x89PNG-a", b"\x89PNG-b")
    first = write_sample_views(tmp_path, [("1:partner", "merge", ("xy", "xy×3"), pngs)])
    again = write_sample_views(tmp_path, [("1:partner", "merge", ("xy", "xy×3"), pngs),
                                          ("2:clean", "split", ("xy",), (b"\x89PNG-c",))])  # fmt: skip
    assert len(first) == 1 and [s.task_id for s in again] == ["1:partner", "2:clean"]
    sample = again[0]
    assert sample.view_names == ("xy", "xy×3") and len(sample.files) == 2
    assert [(tmp_path / VIEWS_DIR / f).read_bytes() for f in sample.files] == list(pngs)


def test_a_damaged_index_line_is_named(tmp_path):
    write_sample_views(tmp_path, [("1:partner", "merge", ("xy",), (b"png",))])
    with open(tmp_path / VIEWS_DIR / INDEX_NAME, "a") as f:
        f.write('{"task_id": 5}\n')
    with pytest.raises(DataError, match=f"{INDEX_NAME}:2"):
        read_sample_views(tmp_path)
