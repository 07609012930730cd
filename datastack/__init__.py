"""proofpilot.datastack: CAVE edit histories of a datastack's proofread neurons, and the operation bank.

`DataSource` says where the data come from; `ingest(source.client_settings(), IngestOptions(...))` fetches
and `write_result(result, out_dir)` writes Parquet. Names load on first use (importing the package is light).
"""

from proofpilot.core.lazy import lazy_exports

_EXPORTS = {
    "DataSource": ".source",
    "ClientSettings": ".client",
    "CaveConnection": ".client",
    "DataPin": ".records",
    "IngestOptions": ".ingest",
    "IngestResult": ".ingest",
    "IngestStats": ".ingest",
    "ingest": ".ingest",
    "write_result": ".ingest",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
