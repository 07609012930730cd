"""Request/response types and the regex router shared by the embedded server's route modules."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from proofpilot.datastack.embedded.encoding import TabularLogEncoder, dumps
from proofpilot.datastack.embedded.generator import Generator, get_generator
from proofpilot.datastack.embedded.lineage import Lineage
from proofpilot.datastack.embedded.profiles import Profile, get_profile


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]  # last value of each parameter; unknown parameters are simply ignored by handlers
    body: bytes
    headers: dict[str, str]  # lower-case names

    def json_body(self) -> dict:
        try:
            data = json.loads(self.body or b"{}")
        except ValueError:
            raise HttpError(400, "request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise HttpError(400, "request body must be a JSON object")
        return data


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drip_s: float = 0.0  # fault: send the body one byte per drip_s seconds
    stream_bytes: int = 0  # fault: instead of `body`, this many filler bytes, without a Content-Length


class HttpError(Exception):
    """An error answer: status + {"code", "message"} JSON, as the CAVE services' error handlers send."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> Response:
        return json_response({"code": self.status, "message": self.message}, self.status)


def json_response(obj: object, status: int = 200) -> Response:
    return Response(status, dumps(obj))


class ServerContext:
    """What handlers need: the profile, its generator and the server's own base URL."""

    def __init__(self, profile_name: str, base_url: str = ""):
        self.profile: Profile = get_profile(profile_name)
        self.gen: Generator = get_generator(profile_name)
        self.tabular = TabularLogEncoder(self.gen)
        self.lineage = Lineage(self.gen)
        self.base_url = base_url

    def check_datastack(self, name: str) -> None:
        if name != self.profile.name:
            raise HttpError(404, f"datastack {name!r} not found")

    def check_pcg_table(self, table: str) -> None:
        if table != self.profile.pcg_table:
            raise HttpError(404, f"chunkedgraph table {table!r} not found")


Handler = Callable[..., Response]


@dataclass(frozen=True)
class Route:
    name: str  # stable name, used for request counters and the fault filter
    methods: frozenset[str]
    pattern: re.Pattern[str]
    handler: Handler
    bootstrap: bool = False  # info / version / metadata: not subject to faults unless asked

    @classmethod
    def make(cls, name: str, methods: str, pattern: str, handler: Handler, bootstrap: bool = False) -> Route:
        return cls(name, frozenset(methods.split(",")), re.compile(pattern + r"/?$"), handler, bootstrap)


def parse_int(text: str, what: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise HttpError(400, f"{what} {text!r} is not an integer") from None


def parse_bool(text: str | None, default: bool = False) -> bool:
    if text is None:
        return default
    return text.strip().lower() in ("true", "1", "yes", "t")
