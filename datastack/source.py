"""`DataSource`: where the edit histories come from, declared once for every stage and command.

A datastack name, the CAVE server, the pin (a materialization version or a UTC cutoff), the proofread-neuron
table, the token, the response cache, retries and the read timeout. Stage configs hold one (`EditsConfig`,
`PilotConfig`); the connection settings (`ClientSettings`) and ingestion options are built from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from proofpilot.core.errors import ConfigError
from proofpilot.datastack.client import ClientSettings


@dataclass(frozen=True)
class DataSource:
    """One CAVE datastack at one pin. ``auth_token`` None: env variable, else caveclient's secret files;
    ``server_address`` None: caveclient's lookup (or, for an embedded profile, a server the caller starts)."""

    datastack: str
    server_address: str | None = None
    version: int | None = None  # materialization version; None = latest (unless `timestamp` is given)
    timestamp: datetime | None = None  # pin to a UTC cutoff instead of a version (live query)
    table: str | None = None  # proofread-neuron table; None = the datastack's known table
    auth_token: str | None = field(default=None, repr=False)
    cache_dir: Path | None = None  # response cache; None = $PROOFPILOT_CACHE_DIR or ~/.cache/proofpilot
    use_cache: bool = True
    write_server_cache: bool = True  # caveclient's datastack→server map under ~/.cloudvolume
    retries: int = 3  # per CAVE call, on 429/5xx, dropped connections and timeouts (exponential backoff)
    read_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if not self.datastack:
            raise ConfigError("a data source needs a datastack name")
        if self.version is not None and self.timestamp is not None:
            raise ConfigError("pin either a materialization version or a timestamp, not both")
        if self.timestamp is not None and self.timestamp.tzinfo is None:
            object.__setattr__(self, "timestamp", self.timestamp.replace(tzinfo=UTC))
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")
        if not self.read_timeout_s > 0:
            raise ConfigError(f"the read timeout must be positive, got {self.read_timeout_s}")
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))

    def with_server(self, server_address: str, **changes: object) -> DataSource:
        """The same source read from another server (e.g. an embedded one started for it)."""
        return replace(self, server_address=server_address, **changes)  # type: ignore[arg-type]

    def client_settings(self) -> ClientSettings:
        return ClientSettings(
            datastack=self.datastack,
            server_address=self.server_address,
            version=self.version,
            timestamp=self.timestamp,
            auth_token=self.auth_token,
            write_server_cache=self.write_server_cache,
            read_timeout_s=self.read_timeout_s,
            max_retries=self.retries,
        )

    def ingest_options(self, **options: object):
        """`IngestOptions` reading this source's table through its response cache (`options`: the rest)."""
        # lazy: datastack.ingest imports this module
        from proofpilot.datastack.ingest import IngestOptions

        return IngestOptions(
            table=self.table, cache_dir=self.cache_dir, use_cache=self.use_cache, **options  # type: ignore[arg-type]
        )

    @classmethod
    def from_client(cls, client, **changes: object) -> DataSource:
        """The source an existing `caveclient.CAVEclient` reads: its datastack, server, token and version
        (the latest when it has none). The client itself is not changed."""
        token = getattr(getattr(client, "auth", None), "token", None)
        fields = {
            "datastack": client.datastack_name,
            "server_address": str(client.server_address),
            "version": client.version,
            "auth_token": token or None,
            "write_server_cache": False,
        }
        fields.update(changes)
        return cls(**fields)  # type: ignore[arg-type]
