"""Records the agent stage hands on: what is asked (`AgentRequest`) and what came back (`Verdict`).

Error reasons are short, bounded labels (safe as Prometheus label values):

- invalid answers, retried up to the client's limit: `length`, `empty_answer`, `invalid_json`,
  `schema_mismatch`, `invalid_response` (a 200 whose body is not a chat completion);
- transport failures, retried by the OpenAI SDK with backoff: `connection`, `timeout` (also an attempt past
  its overall deadline), `server_error`, `rate_limited`, `response_too_large` (a body over the size cap)
  (a pilot never stores them as a verdict: it asks the task again once the server answers);
- request errors, never retried: `context_length` (prompt over the model's context), `bad_request`,
  `unknown_model`, `api_error` (any other HTTP status), `client_error` (a bug on our side; logged);
- a task whose preparation failed (`geometry_failed` aside: `features_failed`, `render_failed`,
  `payload_failed`, `prep_failed`; orchestrator.prep) is stored as an error verdict, its `error_detail` says
  why; the LLM is not asked.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from proofpilot.agent.schema import OpKind

INVALID_ANSWER_REASONS = ("length", "empty_answer", "invalid_json", "schema_mismatch", "invalid_response")
TRANSPORT_REASONS = ("connection", "timeout", "server_error", "rate_limited", "response_too_large")
REQUEST_REASONS = ("context_length", "bad_request", "unknown_model", "api_error", "client_error")


@dataclass(frozen=True)
class AgentRequest:
    """One decision to ask the LLM: chat messages in OpenAI format, built by `prompt.build_request`."""

    task_id: str
    op_kind: OpKind
    messages: tuple[dict[str, Any], ...]
    prompt_version: str
    n_images: int = 0
    image_tokens: int = 0  # prompt tokens of the images per call, by the image processor's count


@dataclass(frozen=True)
class Verdict:
    """The outcome of one task. `valid` is True only for an answer that passed the schema.

    Token counts and `answers` add up over every completed HTTP response for the task (retries of
    invalid answers included), i.e. what the server actually processed; `attempts` counts every HTTP
    request sent (SDK transport retries included). `latency_s` is the wall time from the first send to
    the final outcome. `call_spans` holds (sent, received) of every LLM call of the task, in seconds of
    the host's monotonic clock (`time.monotonic`, comparable between processes of one host, not between
    hosts or across a reboot): the pilot's exact busy time is their union (telemetry/busy.py).
    `image_tokens` is the images' share of `prompt_tokens` (the image processor's count per call times the
    calls answered); the server's own split is checked once per run (`agent.vision.check_vision`).
    """

    task_id: str
    op_kind: OpKind
    decision: str | None
    confidence: float | None
    valid: bool
    latency_s: float
    prompt_tokens: int
    completion_tokens: int
    attempts: int
    answers: int
    error_reason: str | None
    finish_reason: str | None
    endpoint: str
    model: str
    prompt_version: str
    call_spans: tuple[tuple[float, float], ...] = ()
    # vLLM's per-request timings (agent/timings.py), summed over the calls; None when the server sent none
    server_queue_s: float | None = None
    server_prefill_s: float | None = None
    server_decode_s: float | None = None
    server_ttft_s: float | None = None  # queue + prefill: the server's time to first token from arrival
    n_images: int = 0  # views sent with each call
    image_tokens: int = 0  # the part of `prompt_tokens` that is images (processor count, summed over answers)
    error_detail: str | None = None  # a longer reason where one is known (e.g. why views failed to render)

    @property
    def text_tokens(self) -> int:
        """The part of `prompt_tokens` that is text (system and user text, chat template)."""
        return self.prompt_tokens - self.image_tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ClientStats:
    """Live counters of one client (not thread-safe; one event loop).

    `invalid_answers` counts every answer that failed the schema, including ones a retry recovered;
    `failed_tasks` counts final outcomes per reason; `answers` counts completed HTTP responses (the
    number the server's `vllm:request_success_total` should rise by).
    """

    answers: int = 0
    valid_verdicts: int = 0
    invalid_answers: Counter[str] = field(default_factory=Counter)
    failed_tasks: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "answers": self.answers,
            "valid_verdicts": self.valid_verdicts,
            "invalid_answers": dict(self.invalid_answers),
            "failed_tasks": dict(self.failed_tasks),
        }
