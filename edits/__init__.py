"""proofpilot.edits: edit statistics of proofread neurons, their projection to the whole table, and its cost.

`analyze(client, sample_sizes=(100, 500))` reads through your own `caveclient.CAVEclient` and returns an
`EditsResult` (the `EditSummary` record and the per-neuron / operations / membership DataFrames) without
writing anything; `write_edits(result, out_dir)` writes the files; `run_edits(EditsConfig(...))` does both,
as `proofpilot edits` does. Names load on first use (importing the package is light).
"""

from proofpilot.core.lazy import lazy_exports

_EXPORTS = {
    "analyze": ".analysis",
    "run_edits": ".analysis",
    "write_edits": ".analysis",
    "CostBasis": ".records",
    "CostReport": ".records",
    "EditsConfig": ".records",
    "EditsResult": ".records",
    "EditSummary": ".records",
    "Estimate": ".records",
    "SampleStats": ".records",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
