"""Connection to a CAVE datastack through caveclient: token, pinning, version recording, timeouts, retries.

caveclient sets no timeouts and retries only 502/503/504 (docs/cave.md "Timeouts and retries"). After building
a client we mount our own requests adapter on every subclient session: a default (connect, read) timeout on
each call and a urllib3 ``Retry`` with exponential backoff on 429/5xx, connection errors and read timeouts.
The constructor's own HTTP calls run before that adapter exists, so construction runs under a wall-clock
deadline, after a one-shot reachability probe that makes a refused connection fail in well under a second.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from typing import Any

import requests

from proofpilot.core.errors import ConfigError, DataError
from proofpilot.core.redact import redact, register_secret
from proofpilot.datastack.records import DataPin
from proofpilot.datastack.session import (  # noqa: F401 - part of the connection's API
    RETRY_STATUSES,
    RequestObserver,
    TimeoutRetryAdapter,
    add_request_observer,
    endpoint_name,
    harden_session,
    is_local,
    make_retry,
    remove_request_observer,
)
from proofpilot.datastack.shapes import WrongShape
from proofpilot.datastack.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    TransportLimit,
    read_body,
)

log = logging.getLogger(__name__)

TOKEN_ENV_VARS = ("PROOFPILOT_CAVE_TOKEN", "CAVE_TOKEN")
DEFAULT_GLOBAL_SERVER = "https://global.daf-apis.com"


@dataclass(frozen=True)
class ClientSettings:
    """Where and how to connect. ``auth_token`` None: env variable, else caveclient's secret files."""

    datastack: str
    server_address: str | None = None
    version: int | None = None  # materialization version; None = latest (unless `timestamp` is given)
    timestamp: datetime | None = None  # pin to a cutoff instead of a version (live query)
    auth_token: str | None = field(default=None, repr=False)
    write_server_cache: bool = True  # caveclient's datastack→server map under ~/.cloudvolume; False in tests
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 120.0
    max_retries: int = 3
    backoff_factor: float = 0.5
    backoff_max_s: float = 30.0
    construct_deadline_s: float = 180.0
    deadline_s: float | None = None  # overall bound of one HTTP attempt incl. its body; None = read_timeout_s
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        if self.version is not None and self.timestamp is not None:
            raise ConfigError("pin either a materialization version or a timestamp, not both")
        if self.timestamp is not None and self.timestamp.tzinfo is None:
            object.__setattr__(self, "timestamp", self.timestamp.replace(tzinfo=UTC))


def resolve_token(explicit: str | None) -> str | None:
    """The token for caveclient: explicit, else the first set env variable, else None (secret files)."""
    if explicit:
        return explicit
    for var in TOKEN_ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            return value
    return None


def describe_failure(exc: BaseException) -> str:
    """A one-line reason for an error row; server-supplied text is redacted (a proxy may echo the token)."""
    if isinstance(exc, TransportLimit):
        text = str(exc)
    elif isinstance(exc, requests.HTTPError) and exc.response is not None:
        text = f"HTTP {exc.response.status_code} {exc.response.reason}: {_server_message(exc.response)}"
    elif isinstance(exc, requests.Timeout):
        text = f"timeout: {exc}"
    elif isinstance(exc, requests.ConnectionError):
        text = f"timeout: {exc}" if "timed out" in str(exc).lower() else f"connection error: {exc}"
    elif isinstance(exc, ValueError | KeyError | TypeError):
        text = f"malformed response: {type(exc).__name__}: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return redact(" ".join(text.split()))[:300]


def _server_message(response: requests.Response) -> str:
    """The server's own words about a failure (redacted: some proxies quote the request's token)."""
    try:
        body = response.json()
    except ValueError:
        return redact(response.text)[:200]
    if isinstance(body, dict) and body.get("message"):
        return redact(str(body["message"]))
    return redact(str(body))[:200]


def _run_with_deadline(fn, deadline_s: float, what: str):
    """Run ``fn()`` in a daemon thread; DataError if it has not returned after ``deadline_s``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"cave-{what}", daemon=True)
    thread.start()
    thread.join(deadline_s)
    if thread.is_alive():
        raise DataError(f"{what} did not finish within {deadline_s:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _bounded_get(url: str, settings: ClientSettings) -> requests.Response:
    """One GET without retries, under the same deadline and size cap as the hardened sessions."""
    deadline_s = settings.deadline_s or settings.read_timeout_s
    started = time.monotonic()
    response = requests.get(url, timeout=(settings.connect_timeout_s, settings.read_timeout_s), stream=True)
    read_body(response, started + deadline_s, deadline_s, settings.max_response_bytes)
    return response


def _probe(server_address: str, settings: ClientSettings) -> None:
    """One request without retries so that a wrong or dead address fails at once."""
    url = f"{server_address.rstrip('/')}/info/version"
    try:
        _bounded_get(url, settings)
    except requests.ConnectionError as exc:
        reason = "connection refused" if "refused" in str(exc).lower() else describe_failure(exc)
        raise DataError(f"cannot reach CAVE server {server_address}: {reason}") from None
    except requests.RequestException as exc:
        raise DataError(f"cannot reach CAVE server {server_address}: {describe_failure(exc)}") from None


def _known_datastacks(server_address: str, settings: ClientSettings) -> list[str] | None:
    try:
        r = _bounded_get(f"{server_address.rstrip('/')}/info/api/v2/datastacks", settings)
        r.raise_for_status()
        names = r.json()
        return sorted(str(n) for n in names) if isinstance(names, list) else None
    except (requests.RequestException, ValueError):
        return None


class CaveConnection:
    """A CAVEclient pinned to one materialization version (or cutoff), with hardened sessions."""

    def __init__(self, settings: ClientSettings) -> None:
        # lazy: caveclient takes seconds to import; only CAVE calls need it
        import caveclient

        self.settings = settings
        self._token = resolve_token(settings.auth_token)
        register_secret(self._token)
        address = settings.server_address
        if address is not None:
            _probe(address, settings)
        _run_with_deadline(
            lambda: self._setup(caveclient), settings.construct_deadline_s, "connecting to CAVE"
        )

    # -- construction -------------------------------------------------------------------------------------
    def _setup(self, caveclient) -> None:
        """Everything that talks to the server before our adapter is mounted (runs under the deadline)."""
        settings = self.settings
        self.client = self._build(caveclient)
        self.server_address = str(self.client.server_address)
        self._datastack_info = self._call(self.client.info.get_datastack_info, "route info …/datastack/full")
        if settings.version is not None:
            self._set_version(settings.version)
        elif settings.timestamp is None:
            self._set_version(
                int(self._call(self.client.materialize.most_recent_version, "route materialize …/versions"))
            )
        self.materialization_version: int | None = self.client.version
        if settings.timestamp is not None:
            self.pin_timestamp = settings.timestamp.astimezone(UTC)
        else:
            self.pin_timestamp = self._as_utc(self.client.timestamp)
        subclients = [
            self._call(lambda name=name: getattr(self.client, name), f"{name} service")
            for name in ("info", "materialize", "chunkedgraph")
        ]
        self.server_versions = {
            name: self._version_str(sub)
            for name, sub in zip(("info", "materialize", "chunkedgraph"), subclients, strict=True)
        }
        for sub in subclients:
            harden_session(sub.session, settings)
        # the L2 cache (pcg_skel's vertices) gets the same bounds; building its client sends no request
        harden_session(self._call(lambda: self.client.l2cache, "l2cache service").session, settings)

    def _build(self, caveclient):
        try:
            client = caveclient.CAVEclient(
                self.settings.datastack,
                server_address=self.settings.server_address,
                auth_token=self._token,
                write_server_cache=self.settings.write_server_cache
                and not is_local(self.settings.server_address),
                max_retries=self.settings.max_retries,
                version=None,
            )
        except requests.HTTPError as exc:
            raise self._datastack_error(exc) from None
        except requests.RequestException as exc:
            raise DataError(
                f"cannot reach CAVE server {self.settings.server_address or DEFAULT_GLOBAL_SERVER}: "
                f"{describe_failure(exc)}"
            ) from None
        except (ValueError, TypeError, KeyError) as exc:  # JSON of the wrong shape from the info service
            raise WrongShape(
                f"CAVE server {self.settings.server_address or DEFAULT_GLOBAL_SERVER}, route info "
                f"…/datastack/full/{self.settings.datastack}: {describe_failure(exc)}"
            ) from None
        return client

    def _set_version(self, version: int) -> None:
        try:
            self.client.version = int(version)
        except ValueError:
            versions = self._call(lambda: self.client.materialize.get_versions(expired=True), "versions")
            raise DataError(
                f"materialization version {version} is not available for "
                f"{self.settings.datastack} (available: {sorted(versions)})"
            ) from None
        except requests.RequestException as exc:
            raise DataError(
                f"cannot read materialization version {version}: {describe_failure(exc)}"
            ) from None

    def _datastack_error(self, exc: requests.HTTPError) -> DataError:
        status = exc.response.status_code if exc.response is not None else None
        address = self.settings.server_address or DEFAULT_GLOBAL_SERVER
        if status in (400, 404):
            known = _known_datastacks(address, self.settings)
            hint = f" (known: {', '.join(known)})" if known else ""
            return DataError(f"unknown datastack {self.settings.datastack!r} on {address}{hint}")
        if status in (401, 403):
            return DataError(
                f"not authorised for datastack {self.settings.datastack!r} on {address} (HTTP {status}); "
                f"set a token in {TOKEN_ENV_VARS[0]} or caveclient's secret file"
            )
        return DataError(f"datastack {self.settings.datastack!r} on {address}: {describe_failure(exc)}")

    def _call(self, fn, what: str):
        try:
            return fn()
        except requests.RequestException as exc:
            raise DataError(f"CAVE call failed ({what}): {describe_failure(exc)}") from None
        except (ValueError, TypeError, KeyError) as exc:  # JSON of the wrong shape (caveclient indexed it)
            server = self.settings.server_address or DEFAULT_GLOBAL_SERVER
            raise WrongShape(f"CAVE server {server}, {what}: {describe_failure(exc)}") from None

    @staticmethod
    def _version_str(sub) -> str | None:
        value = getattr(sub, "server_version", None)
        return None if value is None else str(value)

    @staticmethod
    def _as_utc(ts: datetime | None) -> datetime | None:
        if ts is None:
            return None
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)

    # -- what the rest of the layer uses ------------------------------------------------------------------
    @property
    def datastack(self) -> str:
        return self.settings.datastack

    @property
    def voxel_resolution_nm(self) -> tuple[float, float, float]:
        """mip-0 segmentation resolution in nm (segmentation info): the unit of source/sink coords."""
        try:
            res = self.client.chunkedgraph.base_resolution
        except (requests.RequestException, KeyError, IndexError, TypeError):
            res = None
        if not res:
            info = self._datastack_info
            res = [info.get(f"viewer_resolution_{axis}") for axis in "xyz"]
            if any(v is None for v in res):
                raise DataError(f"no segmentation resolution for datastack {self.datastack!r}")
            log.warning(
                "segmentation info has no resolution; using the datastack's viewer resolution %s", res
            )
        return tuple(float(v) for v in res)  # type: ignore[return-value]

    def pin(self, table: str) -> DataPin:
        # lazy: caveclient takes seconds to import; only CAVE calls need it
        import caveclient

        ts = self.pin_timestamp
        return DataPin(
            datastack=self.datastack,
            server_address=self.server_address,
            table=table,
            materialization_version=self.materialization_version,
            timestamp=ts.isoformat() if ts is not None else "",
            caveclient_version=getattr(caveclient, "__version__", None) or package_version("caveclient"),
            server_versions=dict(self.server_versions),
        )

    def new_worker_client(self):
        """A separate CAVEclient for one worker thread (caveclient sessions are not meant to be shared)."""
        # lazy: caveclient takes seconds to import; only CAVE calls need it
        import caveclient

        info = {self.datastack: self._datastack_info}

        def build():
            return caveclient.CAVEclient(
                self.datastack,
                server_address=self.server_address,
                auth_token=self._token,
                write_server_cache=False,
                max_retries=self.settings.max_retries,
                info_cache=info,
            )

        client = _run_with_deadline(build, self.settings.construct_deadline_s, "connecting a CAVE worker")
        for sub in (client.info, client.chunkedgraph):
            harden_session(sub.session, self.settings)
        return client

    def cache_namespace(self) -> str:
        """The cache key part that identifies server, datastack and pin."""
        pin = (
            self.materialization_version
            if self.settings.timestamp is None
            else self.pin_timestamp.isoformat()
        )
        return json.dumps([self.server_address.rstrip("/"), self.datastack, str(pin)])
