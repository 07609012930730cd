"""The report's "Views the agent saw" section: for a few tasks per op type, the rendered views sent to the
model (views/ of the run, orchestrator.sample_views) beside the task's ground truth and the agent's verdict,
so a person can judge what the agent was shown. A text-only run has no such section."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

from proofpilot.orchestrator.run_records import StoredVerdict
from proofpilot.orchestrator.sample_views import VIEWS_DIR, SampleViews
from proofpilot.report.format import esc


def _verdict_text(v: StoredVerdict | None) -> str:
    if v is None:
        return "no verdict stored"
    if v.valid:
        return f"{v.decision} (confidence {v.confidence:.2f}) — {v.outcome}"
    return f"{v.outcome or 'error'}: {v.error_reason}" + (f" ({v.error_detail})" if v.error_detail else "")


def _sample(run_dir: Path, s: SampleViews, verdict: StoredVerdict | None, images: list[int]) -> str:
    imgs = []
    for name, file in zip(s.view_names, s.files, strict=True):
        path = run_dir / VIEWS_DIR / file
        if not path.exists():
            imgs.append(f'<span class="note">{esc(name)}: missing</span>')
            continue
        png = path.read_bytes()
        images.append(len(png))
        data = base64.b64encode(png).decode()
        imgs.append(
            f'<figure style="display:inline-block;margin:4px"><img src="data:image/png;base64,{data}" '
            f'alt="{esc(name)} view of task {esc(s.task_id)}" style="width:200px">'
            f"<figcaption>{esc(name)}</figcaption></figure>"
        )
    label = f"truth {esc(verdict.label)} · " if verdict is not None else ""
    return (
        f"<h3>{esc(s.op_kind)} task {esc(s.task_id)}</h3>"
        f"<p>{label}verdict: {esc(_verdict_text(verdict))}</p><div>{''.join(imgs)}</div>"
    )


def views_section(
    run_dir: Path, samples: Sequence[SampleViews], verdicts: Sequence[StoredVerdict], images: list[int]
) -> str:
    """The section (empty for a run without sample views)."""
    if not samples:
        return ""
    by_task = {v.task_id: v for v in verdicts}
    intro = (
        '<p class="note">The rendered views sent with each request (PNG, as the model got them, shown at '
        "200 px): 2-D projections of the skeletons around the interface point (black cross); merge tasks "
        "show "
        "fragment A in blue and candidate B in orange, split tasks the segment in blue; ×3 views cover a 3× "
        "larger cube. The scale bar is at the lower left.</p>"
    )
    body = "".join(_sample(run_dir, s, by_task.get(s.task_id), images) for s in samples)
    return f'<section id="views"><h2>Views the agent saw</h2>{intro}{body}</section>'
