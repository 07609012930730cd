"""The one place that starts an embedded CAVE server for a data source that names an embedded profile.

`served(source)` yields the source to read: unchanged when it has a server address or names no embedded
profile (caveclient's lookup then), else the same source on a server started in-process for the block. A
started server gets a fresh port each time, so its responses are not cached (they could never be reused).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import replace

from proofpilot.core.errors import ConfigError
from proofpilot.datastack.embedded import l2
from proofpilot.datastack.embedded.profiles import PROFILES, get_profile
from proofpilot.datastack.embedded.server import start_server
from proofpilot.datastack.geometry import PCG_INVALIDATION_NM
from proofpilot.datastack.source import DataSource

log = logging.getLogger(__name__)

EMBEDDED_TOKEN = "e0e0"  # any token will do; a user's real one never goes there. Shorter than a secret, so
# never registered for redaction (a word like "embedded" would be masked in every message)


def is_embedded(datastack: str) -> bool:

    return datastack in PROFILES


def with_embedded_defaults(source: DataSource) -> DataSource:
    """An embedded profile's source as it is read: no response cache, never a user's real token."""
    if not is_embedded(source.datastack):
        return source
    return replace(
        source, auth_token=source.auth_token or EMBEDDED_TOKEN, use_cache=False, write_server_cache=False
    )


def geometry_invalidation_nm(datastack: str) -> float:
    """pcg_skel's TEASAR invalidation distance for a datastack: near its L2 nodes' spacing (the embedded
    ones are cut every `L2_SPAN_NM` of cable; real ones are chunk-sized, pcg_skel's default)."""
    return l2.L2_SPAN_NM if is_embedded(datastack) else PCG_INVALIDATION_NM


@contextlib.contextmanager
def served(source: DataSource, *, require_embedded: bool = False) -> Iterator[DataSource]:
    """The source to read for the block (see the module docstring).

    `require_embedded`: the source must name an embedded profile (ConfigError naming the profiles) and must
    not name a server."""
    if require_embedded:
        get_profile(source.datastack)  # ConfigError naming the profiles
        if source.server_address:
            raise ConfigError(
                f"the embedded datastack {source.datastack} is served in-process; "
                f"it cannot also be read from {source.server_address}"
            )
    if source.server_address or not is_embedded(source.datastack):
        yield source
        return

    with start_server(source.datastack) as server:
        log.info("embedded CAVE server for %s at %s", source.datastack, server.url)
        yield replace(
            source,
            server_address=server.url,
            auth_token=source.auth_token or EMBEDDED_TOKEN,
            write_server_cache=False,
            use_cache=False,
        )
