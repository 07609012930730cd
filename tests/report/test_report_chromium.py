"""report.html in real headless Chromium (Debian's package): no console errors, every image renders, the
cost and accuracy tables are there. The console is captured over the DevTools protocol (chromium_fixtures).

A control page with a console.error, an uncaught exception, a broken image and a blocked external image shows
that the same harness does catch each of them.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image
from support.chromium_fixtures import WIDTH, inspect_page, requires_chromium
from support.eval_runs import correct_rows, edits_outputs, hand_rows, make_cost, make_run

from proofpilot.report.build import build_report

pytestmark = [pytest.mark.chromium, requires_chromium]


def test_report_renders_in_chromium(tmp_path):
    rows = hand_rows()
    llm = make_run(tmp_path / "llm", rows)
    make_cost(llm, rows)
    base = make_run(tmp_path / "base", correct_rows(rows), agent="baseline")
    mouse, fly = edits_outputs()
    result = build_report(llm, (mouse, fly), (base,), n_bootstrap=300)

    report = inspect_page(result.path, screenshot=True)

    assert report.problems == []
    page = report.page
    assert page["title"].startswith("proofpilot pilot report")
    assert len(page["images"]) == result.n_images == 10
    for img in page["images"]:
        assert img["scheme"] == "data" and img["decoded"] and img["complete"], img["alt"]
        assert img["naturalWidth"] > 0 and img["naturalHeight"] > 0, img["alt"]
    assert page["external"] == [] and page["resources"] == [] and page["scripts"] == 0
    tables = {t["id"]: t for t in page["tables"]}
    for table_id in ("accuracy-table", "cost-table", "full-dataset-cost-table"):
        assert tables[table_id]["rows"] > 0, table_id
    assert "mouse-like" in tables["full-dataset-cost-table"]["text"]
    assert "fly-like" in tables["full-dataset-cost-table"]["text"]
    assert "baseline" in tables["accuracy-table"]["text"] and "66.7" in tables["accuracy-table"]["text"]
    shot = Image.open(io.BytesIO(report.screenshot))
    assert shot.width == WIDTH and shot.height == page["height"] > 2000
    # the page is drawn: plots and tables put plenty of non-white pixels on it
    gray = shot.convert("L").resize((WIDTH // 8, shot.height // 8))
    assert (np.asarray(gray) < 200).mean() > 0.02
    (tmp_path / "report.png").write_bytes(report.screenshot)


CONTROL = """<!DOCTYPE html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; img-src data:; script-src 'unsafe-inline'">
<title>control</title></head><body>
<img alt="broken" src="data:image/png;base64,AAAA">
<img alt="external" src="http://127.0.0.1:9/x.png">
<img alt="fine" src="data:image/png;base64,{ok}">
<table id="t"><tbody><tr><td>1</td></tr></tbody></table>
<script>console.error("control: console error"); no_such_function();</script>
</body></html>"""


def test_harness_catches_errors_and_broken_images(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (3, 2), "red").save(buf, format="PNG")
    path = tmp_path / "control.html"
    path.write_text(CONTROL.replace("{ok}", base64.b64encode(buf.getvalue()).decode()))
    report = inspect_page(path)
    problems = "\n".join(report.problems)
    assert "console.error: control: console error" in problems
    assert "no_such_function" in problems  # the uncaught ReferenceError
    assert "Content Security Policy" in problems  # the blocked external image
    images = {i["alt"]: i for i in report.page["images"]}
    assert images["broken"]["naturalWidth"] == 0 and not images["broken"]["decoded"]
    assert images["external"]["naturalWidth"] == 0 and images["external"]["scheme"] == "http"
    assert images["fine"]["naturalWidth"] == 3 and images["fine"]["decoded"]
    assert report.page["external"] == ["http://127.0.0.1:9/x.png"]
