"""An httpx transport for the LLM client with an overall deadline per HTTP attempt and a response-size cap.

httpx's timeouts bound each socket read, so a server that drips a byte every half second never times out; this
transport bounds the whole attempt (headers and body) by `deadline_s` on the event loop's clock and stops
reading a body past `max_bytes`. The errors are httpx request errors, so the OpenAI SDK retries them like any
transport failure: `DeadlineExceeded` is a timeout (label "timeout"), `ResponseTooLarge` a read error (label
"response_too_large", see `client.classify_api_error`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx2

DEFAULT_MAX_RESPONSE_BYTES = 64 * 2**20
LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)  # the OpenAI SDK's defaults


class DeadlineExceeded(httpx2.ReadTimeout):
    """The attempt ran past its overall deadline."""


class ResponseTooLarge(httpx2.ReadError):
    """The response body is larger than the cap."""


def _mib(n: int) -> str:
    return f"{n / 2**20:g} MiB"


class _BoundedStream(httpx2.AsyncByteStream):
    def __init__(self, inner, request, deadline: float, deadline_s: float, max_bytes: int) -> None:
        self._inner, self._request = inner, request
        self._deadline, self._deadline_s, self._max_bytes = deadline, deadline_s, max_bytes
        self.received = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        chunks = self._inner.__aiter__()
        while True:
            remaining = self._deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                async with asyncio.timeout(remaining):
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                message = f"deadline {self._deadline_s:g} s exceeded"
                raise DeadlineExceeded(message, request=self._request) from None
            self.received += len(chunk)
            if self.received > self._max_bytes:
                raise ResponseTooLarge(f"response over {_mib(self._max_bytes)}", request=self._request)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class BoundedTransport(httpx2.AsyncBaseTransport):
    """Wraps an AsyncHTTPTransport: each attempt ends within `deadline_s` and reads at most `max_bytes`."""

    def __init__(
        self,
        deadline_s: float,
        max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        inner: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.deadline_s, self.max_bytes = deadline_s, max_bytes
        self._inner = inner or httpx2.AsyncHTTPTransport(limits=LIMITS)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline_s
        try:
            async with asyncio.timeout(self.deadline_s):
                response = await self._inner.handle_async_request(request)
        except TimeoutError:
            raise DeadlineExceeded(f"deadline {self.deadline_s:g} s exceeded", request=request) from None
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            await response.aclose()
            raise ResponseTooLarge(f"response over {_mib(self.max_bytes)}", request=request)
        stream = _BoundedStream(response.stream, request, deadline, self.deadline_s, self.max_bytes)
        return httpx2.Response(
            response.status_code, headers=response.headers, stream=stream, extensions=response.extensions
        )

    async def aclose(self) -> None:
        await self._inner.aclose()
