"""The embedded CAVE server: a stdlib ThreadingHTTPServer on 127.0.0.1 speaking the CAVE wire format.

One server serves one profile (its datastack name selects it in the info and materialize routes, its PCG table
name in the chunkedgraph routes; other names get the 404 the real services give). Start it in-process with
`start_server(...)` or in the foreground with `proofpilot datastack serve`. caveclient works against it
unchanged: `CAVEclient(profile, server_address=server.url, auth_token="...", write_server_cache=False)`.

Routes live in info_routes / pcg_routes / l2cache_routes / materialize_routes. Paths under
`/skeletons/{profile}/...` go to the precomputed skeleton layer
(`proofpilot.datastack.embedded.skeleton_layer.handle`), imported lazily when it exists. Faults (faults.py)
apply to the data routes; every request is counted per route name (`request_counts`, and over HTTP at
``GET /proofpilot/request_counts`` for a server in another process)."""

from __future__ import annotations

import importlib
import json
import logging
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from proofpilot.core.errors import ConfigError, DataError
from proofpilot.datastack.embedded import (
    info_routes,
    l2cache_routes,
    materialize_routes,
    pcg_routes,
    watershed,
)
from proofpilot.datastack.embedded.faults import WRONG_TYPE_BODY, FaultConfig, FaultInjector
from proofpilot.datastack.embedded.profiles import get_profile
from proofpilot.datastack.embedded.routing import HttpError, Request, Response, Route, ServerContext

logger = logging.getLogger(__name__)

COUNTS_PATH = "/proofpilot/request_counts"  # JSON {route name: requests}
SKELETON_LAYER_MODULE = "proofpilot.datastack.embedded.skeleton_layer"
_MALFORMED_JSON = b'{"truncated": [1, 2, '
_MALFORMED_ARROW = b"\xff\xff\xff\xffnot an arrow stream"


def _skeleton_hook(ctx: ServerContext, req: Request, profile: str, subpath: str) -> Response:
    """HOOK for the precomputed skeleton layer: skeleton_layer.handle(profile, subpath), if installed."""
    try:
        module = importlib.import_module(SKELETON_LAYER_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != SKELETON_LAYER_MODULE:
            raise
        raise HttpError(404, "no skeleton layer is installed in this server") from None
    status, headers, body = module.handle(profile, subpath)
    headers = dict(headers)
    content_type = headers.pop("Content-Type", headers.pop("content-type", "application/octet-stream"))
    return Response(status, body, content_type=content_type, headers=headers)


ROUTES: list[Route] = [
    *info_routes.ROUTES,
    *pcg_routes.ROUTES,
    *l2cache_routes.ROUTES,
    *materialize_routes.ROUTES,
    *watershed.ROUTES,
    Route.make("skeletons", "GET", r"/skeletons/(?P<profile>[^/]+)/(?P<subpath>.*)", _skeleton_hook),
]


def _check_fault_routes(faults: FaultConfig | None) -> None:
    names = {route.name for route in ROUTES}
    unknown = sorted(set(faults.routes or ()) - names) if faults else []
    if unknown:
        raise ConfigError(f"unknown route name(s) in the fault config: {', '.join(unknown)}")


class CaveApp:
    """Routes a request, applies faults, counts it, and turns errors into CAVE-style JSON error answers."""

    def __init__(self, profile: str, faults: FaultConfig | None = None):
        self.ctx = ServerContext(profile)
        self.injector = FaultInjector(faults)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def handle(self, req: Request) -> Response:
        if req.path == COUNTS_PATH and req.method == "GET":  # the server's own bookkeeping, not counted
            with self._lock:
                return Response(200, json.dumps(dict(self.counts), sort_keys=True).encode())
        for route in ROUTES:
            match = route.pattern.match(req.path)
            if match is None:
                continue
            if req.method not in route.methods:
                return HttpError(405, f"method {req.method} not allowed on {req.path}").response()
            with self._lock:
                self.counts[route.name] += 1
            return self._run(route, req, match.groupdict())
        return HttpError(404, f"no route for {req.path}").response()

    def _run(self, route: Route, req: Request, groups: dict[str, str]) -> Response:
        if self.injector.config.no_l2cache and route.name.startswith("l2cache_"):
            if route.name == "l2cache_table_mapping":
                return Response(200, b"{}")  # the L2 cache service knows no table of this datastack
            return HttpError(404, f"no L2 cache for {self.ctx.profile.pcg_table}").response()
        key = b"|".join(
            [req.method.encode(), req.path.encode(), repr(sorted(req.query.items())).encode(), req.body]
        )
        decision = self.injector.decide(route.name, key, route.bootstrap)
        if decision.latency_s:
            self.stopping.wait(decision.latency_s)
        if decision.kind == "timeout":
            self.stopping.wait(self.injector.config.timeout_hold_s)
            return HttpError(504, "upstream request timed out (injected fault)").response()
        if decision.kind == "error":
            status = self.injector.config.error_status
            message = (
                f"internal server error on {route.name} (injected fault)"
                if status >= 500
                else (f"request rejected on {route.name} (injected fault)")
            )
            if self.injector.config.echo_token:
                message += _echo_credentials(req)
            return HttpError(status, message).response()
        if decision.oversize_bytes:
            return Response(200, b"", stream_bytes=decision.oversize_bytes)
        try:
            response = route.handler(self.ctx, req, **groups)
        except HttpError as exc:
            return exc.response()
        except Exception as exc:  # a server bug: answer 500 like the real services, keep serving
            logger.exception("embedded server error on %s", route.name)
            return HttpError(500, f"{type(exc).__name__}: {exc}").response()
        if decision.kind == "malformed":
            body = _MALFORMED_ARROW if response.content_type == "data.arrow" else _MALFORMED_JSON
            return Response(200, body, content_type=response.content_type)
        if decision.kind == "wrong_type":
            return Response(200, WRONG_TYPE_BODY)  # JSON, whatever the route normally sends
        response.drip_s = decision.drip_s
        return response


def _echo_credentials(req: Request) -> str:
    """What a careless proxy quotes back: the Authorization header, the bare token, any token parameter."""
    auth = req.headers.get("authorization", "")
    token = auth.split(None, 1)[1] if " " in auth else auth
    cookie = req.headers.get("cookie", "")
    param = req.query.get("middle_auth_token", "")
    return (
        f"; credentials {token} not accepted (Authorization: {auth}; cookie: {cookie}; "
        f"url: {req.path}?middle_auth_token={param or token}&token={token})"
    )


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stalls
    protocol_version = "HTTP/1.1"  # keep-alive: caveclient reuses its pooled connections
    server: _Server

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)  # GET routes carry JSON bodies too
        body = self.rfile.read(length) if length else b""
        req = Request(
            method,
            parts.path,
            dict(parse_qsl(parts.query, keep_blank_values=True)),
            body,
            {k.lower(): v for k, v in self.headers.items()},
        )
        response = self.server.app.handle(req)
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            if response.stream_bytes:
                self.send_header("Connection", "close")  # the body ends when the connection does
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self._write_body(response)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its own deadline)
            self.close_connection = True

    def _write_body(self, response: Response) -> None:
        stopping = self.server.app.stopping
        if response.stream_bytes:
            filler = b" " * 2**20
            left = response.stream_bytes
            while left > 0 and not stopping.is_set():
                self.wfile.write(filler[: min(left, len(filler))])
                left -= len(filler)
        elif response.drip_s:
            for i in range(len(response.body)):
                if stopping.wait(response.drip_s):
                    self.close_connection = True
                    return
                self.wfile.write(response.body[i : i + 1])
                self.wfile.flush()
        else:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: object) -> None:  # request lines only, never headers/tokens
        logger.debug("%s " + format, self.client_address[0], *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    app: CaveApp

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that drops a pooled keep-alive connection is routine, not a server error."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionResetError, BrokenPipeError, TimeoutError)):
            logger.debug("client %s dropped the connection: %s", client_address, exc)
            return
        logger.exception("error while serving %s", client_address)


class EmbeddedServer:
    """A running embedded CAVE server. Use as a context manager or call stop()."""

    ROUTE_NAMES = tuple(route.name for route in ROUTES)

    def __init__(
        self,
        profile: str = "minnie65_synthetic",
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultConfig | None = None,
    ):
        self.profile = get_profile(profile)
        _check_fault_routes(faults)
        self.app = CaveApp(profile, faults)
        try:
            self._httpd = _Server((host, port), _Handler)
        except OSError as exc:
            raise DataError(
                f"cannot bind the embedded server to {host}:{port}: {exc.strerror or exc}"
            ) from None
        self._httpd.app = self.app
        self.host, self.port = self._httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self.app.ctx.base_url = self.url
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"cave-{profile}", daemon=True)
        self._thread.start()
        logger.info("embedded CAVE server for %s at %s", profile, self.url)

    @property
    def datastack(self) -> str:
        return self.profile.name

    def set_faults(self, faults: FaultConfig | None) -> None:
        """Replace the fault configuration (fault draws restart from the new config's seed)."""
        _check_fault_routes(faults)
        self.app.injector = FaultInjector(faults)

    @property
    def faults_injected(self) -> dict[str, int]:
        return dict(self.app.injector.injected)

    @property
    def request_counts(self) -> dict[str, int]:
        """Requests received per route name since start (or the last reset_counts)."""
        with self.app._lock:
            return dict(self.app.counts)

    def reset_counts(self) -> None:
        with self.app._lock:
            self.app.counts.clear()

    def stop(self) -> None:
        self.app.stopping.set()  # wakes held (timeout/latency) requests
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> EmbeddedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    profile: str = "minnie65_synthetic",
    host: str = "127.0.0.1",
    port: int = 0,
    faults: FaultConfig | None = None,
) -> EmbeddedServer:
    """Start an embedded CAVE server for `profile` in a background thread (port 0 = a free port)."""
    return EmbeddedServer(profile, host, port, faults)
