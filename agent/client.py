"""Async OpenAI-compatible client: AgentRequests in, Verdicts out, per-task failures never raised.

Transport failures (connection errors, timeouts, 408/409/429/5xx) are retried by the OpenAI SDK itself
(`max_retries`, exponential backoff with jitter, honouring Retry-After); every HTTP attempt is counted
through an httpx request hook keyed by a per-task call id. Answers that fail the verdict schema are
counted per reason and asked again up to `max_invalid_retries` times, then the verdict is marked
invalid. HTTP 400 (e.g. a prompt over the model's context) is not retried. No `seed` is ever sent
(it can kill the vLLM CPU engine: docs/serving.md "Workarounds", item 4).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import httpx2
import openai

from proofpilot.agent.records import AgentRequest, ClientStats, Verdict
from proofpilot.agent.schema import InvalidAnswer, parse_answer, response_format
from proofpilot.agent.streaming import STREAM_OPTIONS, read_stream, stream_error_reason
from proofpilot.agent.timings import TIMING_MODES, CallTiming, call_timing, decision_timing
from proofpilot.agent.transport import DEFAULT_MAX_RESPONSE_BYTES, BoundedTransport, ResponseTooLarge
from proofpilot.core.errors import ConfigError, DataError
from proofpilot.core.redact import redact, register_secret

log = logging.getLogger(__name__)

TASK_HEADER = "X-Proofpilot-Task-Id"
CALL_HEADER = "X-Proofpilot-Call-Id"
MIN_MAX_TOKENS = 64
_CONTEXT_MARKERS = ("context length", "context_length", "max_model_len", "maximum model length")


def classify_api_error(exc: openai.APIError) -> str:
    """Map an OpenAI SDK error (after the SDK's own retries) to a bounded reason label."""
    if isinstance(exc.__cause__, ResponseTooLarge):
        return "response_too_large"
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, openai.APIResponseValidationError):
        return "invalid_response"
    if isinstance(exc, openai.RateLimitError):
        return "rate_limited"
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500:
            return "server_error"
        if exc.status_code == 400:
            text = f"{exc.message} {exc.code or ''}".lower()
            return "context_length" if any(m in text for m in _CONTEXT_MARKERS) else "bad_request"
        if exc.status_code == 404:
            return "unknown_model"
    return "api_error"


def describe_api_error(exc: openai.APIError) -> str:
    """One line about an SDK error, with the transport's own reason (e.g. "deadline 3 s exceeded")."""
    cause = exc.__cause__
    text = f"{exc} ({cause})" if cause is not None and str(cause) else str(exc)
    return " ".join(text.split())[:300]


class AgentClient:
    """One OpenAI-compatible endpoint (vLLM on the CPU or the GPU node) serving one model."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = "EMPTY",
        timeout_s: float = 60.0,
        max_retries: int = 2,
        max_invalid_retries: int = 2,
        max_tokens: int = MIN_MAX_TOKENS,
        temperature: float = 0.7,
        max_in_flight: int = 32,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        timings: str = "metrics",
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"LLM URL must start with http:// or https://, got {base_url!r}")
        if max_tokens < MIN_MAX_TOKENS:
            raise ConfigError(f"max_tokens must be at least {MIN_MAX_TOKENS} for a verdict, got {max_tokens}")
        if timeout_s <= 0 or max_retries < 0 or max_invalid_retries < 0 or max_in_flight < 1:
            raise ConfigError("timeout must be > 0, retries >= 0 and max_in_flight >= 1")
        if timings not in TIMING_MODES:
            raise ConfigError(f"timings must be one of {', '.join(TIMING_MODES)}, got {timings!r}")
        if max_response_bytes < 1:
            raise ConfigError(f"max_response_bytes must be positive, got {max_response_bytes}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_invalid_retries = max_invalid_retries
        register_secret(api_key)  # a server that echoes the key in an error body never gets it logged
        self.stats = ClientStats()
        self.timings = timings
        self.streaming = timings == "stream"  # "auto" switches on at the first answer without metrics
        self._attempts: Counter[str] = Counter()
        self._wire: dict[str, list[float]] = {}  # call id -> [request on the wire, response headers in]
        self._in_flight = asyncio.Semaphore(max_in_flight)
        http_client = openai.DefaultAsyncHttpxClient(
            event_hooks={"request": [self._count_attempt], "response": [self._mark_response]},
            transport=BoundedTransport(timeout_s, max_response_bytes),  # deadline per attempt, size cap
        )
        self._openai = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=api_key,
            max_retries=max_retries,
            timeout=timeout_s,
            http_client=http_client,
        )

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._openai.close()

    async def _count_attempt(self, request: Any) -> None:
        """httpx request hook: runs when the SDK has built the request and hands it to the transport."""
        call_id = request.headers.get(CALL_HEADER)
        if call_id:
            self._attempts[call_id] += 1
            self._wire.setdefault(call_id, [time.monotonic(), math.nan])

    async def _mark_response(self, response: Any) -> None:
        """httpx response hook: runs when the response headers are in (the body of a verdict is small)."""
        wire = self._wire.get(response.request.headers.get(CALL_HEADER, ""))
        if wire is not None:
            wire[1] = time.monotonic()

    def _call_span(self, call_id: str, sent: float, headers_end: bool = True) -> tuple[float, float]:
        """One call's send..receive: the time its request was on the wire, not the SDK's own work
        around it (building and parsing a request costs about a millisecond, and with many calls started
        at once those milliseconds queue up before the first byte leaves). A streamed call ends when its
        stream does (its headers come first), so `headers_end` is False for it."""
        received = time.monotonic()
        first, last = self._wire.pop(call_id, (math.nan, math.nan))
        start = first if math.isfinite(first) and first >= sent else sent
        end = last if headers_end and math.isfinite(last) and start <= last <= received else received
        return start, end

    def _server_timing(self, completion: Any) -> CallTiming | None:
        """vLLM's per-request metrics of a completion; in "auto" mode, the first answer without them
        switches this client to streaming (the next calls are timed from their chunks)."""
        timing = call_timing(completion)
        if timing is None and self.timings == "auto" and not self.streaming:
            self.streaming = True
            log.info("%s returns no per-request metrics: timing the next calls from streaming", self.base_url)
        return timing

    async def check(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """Ping the endpoint and confirm it serves `model`; raise DataError (one line) if not.

        Returns the model's entry from `/models` (vLLM adds `max_model_len`).
        """
        try:
            page = await self._openai.with_options(max_retries=0, timeout=timeout_s).models.list()
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise DataError(f"LLM endpoint {self.base_url} is unreachable ({type(cause).__name__})") from None
        except openai.APIStatusError as exc:
            hint = " (does the URL end in /v1?)" if exc.status_code == 404 else ""
            raise DataError(
                f"LLM endpoint {self.base_url} answered HTTP {exc.status_code} to GET /models{hint}"
            ) from None
        served = {entry.id: entry for entry in page.data}
        if self.model not in served:
            names = ", ".join(sorted(served)) or "none"
            raise DataError(f"model {self.model!r} is not served at {self.base_url} (served: {names})")
        return served[self.model].model_dump()

    async def decide_all(
        self, requests: Sequence[AgentRequest], on_verdict: Callable[[Verdict], None] | None = None
    ) -> list[Verdict]:
        """Ask every request concurrently (at most `max_in_flight` at once); verdicts in request order.

        `on_verdict` is called in the event loop as each verdict arrives (e.g. to checkpoint it); an
        exception there cancels the batch and propagates. Raises DataError for an empty task list or
        duplicate task ids.
        """
        if not requests:
            raise DataError("empty task list: there is nothing to ask the LLM")
        duplicates = [tid for tid, n in Counter(r.task_id for r in requests).items() if n > 1]
        if duplicates:
            raise DataError(f"duplicate task ids in one batch, e.g. {duplicates[0]!r}")

        async def one(request: AgentRequest) -> Verdict:
            verdict = await self.decide(request)
            if on_verdict is not None:
                on_verdict(verdict)
            return verdict

        tasks = [asyncio.ensure_future(one(r)) for r in requests]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def decide(self, request: AgentRequest) -> Verdict:
        """Ask one decision; always returns a Verdict (invalid, with `error_reason`, on failure)."""
        async with self._in_flight:
            return await self._decide(request)

    async def _decide(self, request: AgentRequest) -> Verdict:
        call_id = uuid.uuid4().hex
        start = time.perf_counter()
        prompt_tokens = completion_tokens = answers = image_tokens = 0
        decision: str | None = None
        confidence: float | None = None
        finish_reason: str | None = None
        error: str | None = None
        spans: list[tuple[float, float]] = []
        timings: list[CallTiming | None] = []  # vLLM's per-request metrics of each answered call
        try:
            for _ in range(self.max_invalid_retries + 1):
                sent = time.monotonic()  # exact busy time (telemetry/busy.py): this call's send..receive
                stream, streamed = self.streaming, None
                try:
                    raw = await self._openai.chat.completions.with_raw_response.create(
                        model=self.model,
                        messages=list(request.messages),  # type: ignore[arg-type]
                        max_tokens=self.max_tokens,
                        temperature=self.temperature,
                        response_format=response_format(request.op_kind),  # type: ignore[arg-type]
                        extra_headers={TASK_HEADER: quote(request.task_id, safe=""), CALL_HEADER: call_id},
                        **(STREAM_OPTIONS if stream else {}),  # type: ignore[arg-type]
                    )
                    streamed = await read_stream(raw) if stream else None
                except openai.APIError as exc:
                    error = classify_api_error(exc)
                    log.debug("task %s: %s (%s)", request.task_id, error, redact(describe_api_error(exc)))
                    break
                except httpx2.HTTPError as exc:  # raised while a stream is read: the SDK does not wrap it
                    error = stream_error_reason(exc)
                    log.debug("task %s: %s while streaming (%s)", request.task_id, error, redact(str(exc)))
                    break
                finally:
                    span = self._call_span(call_id, sent, headers_end=not stream)
                    spans.append(span)
                answers += 1
                self.stats.answers += 1
                try:
                    if streamed is not None:
                        content, finish_reason = streamed.content, streamed.finish_reason
                        p_tokens, c_tokens = streamed.prompt_tokens, streamed.completion_tokens
                        timings.append(streamed.timing(span[0]))
                    else:
                        content, finish_reason, p_tokens, c_tokens = _read_completion(raw)
                        timings.append(self._server_timing(raw.parse()))  # parse() is cached by the SDK
                    prompt_tokens += p_tokens
                    completion_tokens += c_tokens
                    image_tokens += request.image_tokens if p_tokens else 0  # the processor's count
                except (openai.APIError, AttributeError, TypeError, ValueError, IndexError) as exc:
                    self.stats.invalid_answers["invalid_response"] += 1
                    error = "invalid_response"
                    log.debug(
                        "task %s: response is not a chat completion (%s)", request.task_id, redact(str(exc))
                    )
                    continue
                try:
                    decision, confidence = parse_answer(content, finish_reason, request.op_kind)
                except InvalidAnswer as bad:
                    self.stats.invalid_answers[bad.reason] += 1
                    error = bad.reason
                    log.debug("task %s: invalid answer (%s)", request.task_id, redact(str(bad)))
                    continue
                error = None
                break
        except Exception:  # a bug here must not sink the batch; it is logged and labelled
            log.exception("task %s: unexpected client error", request.task_id)
            error, decision, confidence = "client_error", None, None
        finally:
            attempts = self._attempts.pop(call_id, 0)
        valid = error is None and decision is not None
        if valid:
            self.stats.valid_verdicts += 1
        else:
            self.stats.failed_tasks[error or "client_error"] += 1
        return Verdict(
            task_id=request.task_id,
            op_kind=request.op_kind,
            decision=decision if valid else None,
            confidence=confidence if valid else None,
            valid=valid,
            latency_s=time.perf_counter() - start,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            attempts=attempts,
            answers=answers,
            error_reason=None if valid else (error or "client_error"),
            finish_reason=finish_reason,
            endpoint=self.base_url,
            model=self.model,
            prompt_version=request.prompt_version,
            call_spans=tuple(spans),
            **decision_timing(timings),
            n_images=request.n_images,
            image_tokens=image_tokens,
        )


def _read_completion(raw) -> tuple[str | None, str | None, int, int]:
    """(content, finish reason, prompt tokens, completion tokens) of a raw chat-completion response."""
    completion = raw.parse()
    usage = getattr(completion, "usage", None)
    p_tokens = int(usage.prompt_tokens or 0) if usage is not None else 0
    c_tokens = int(usage.completion_tokens or 0) if usage is not None else 0
    choice = completion.choices[0] if completion.choices else None
    finish_reason = getattr(choice, "finish_reason", None)
    content = choice.message.content if choice is not None else None
    return content, finish_reason, p_tokens, c_tokens
