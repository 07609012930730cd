"""A minimal OpenAI-compatible endpoint (aiohttp, 127.0.0.1) for dispatch benchmarks and pilot tests.

Answers every chat completion with a schema-valid verdict (the first decision of the request's
`response_format` enum) after `--delay` seconds, at most `--slots` at a time (0 = unlimited), and serves
`/v1/models` and vLLM-0.32-style `/metrics` (running, waiting, request and token counters) so the pilot's
scraper works against it. Run it in its own process; it prints its base URL on the first line of stdout:

    .venv/bin/python bench/openai_stub.py --port 0 --delay 0 --model stub
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from aiohttp import web

PROMPT_TOKENS, COMPLETION_TOKENS = 120, 12
METRICS = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="{m}"}} {running}
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="{m}"}} {waiting}
# TYPE vllm:request_success_total counter
vllm:request_success_total{{engine="0",finished_reason="stop",model_name="{m}"}} {success}
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{{engine="0",model_name="{m}"}} {prompt}
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{engine="0",model_name="{m}"}} {generation}
# TYPE stub:max_running gauge
stub:max_running {max_running}
"""


_MODEL = re.compile(rb'"model"\s*:\s*"([^"]*)"')
_ENUM = re.compile(rb'"enum"\s*:\s*\[\s*"([^"]*)"')


def make_app(model: str, delay_s: float, slots: int) -> web.Application:
    state = {"running": 0, "waiting": 0, "success": 0, "prompt": 0, "generation": 0, "max_running": 0}
    gate = asyncio.Semaphore(slots) if slots > 0 else None
    answers: dict[str, bytes] = {}

    def completion(decision: str) -> bytes:
        if decision not in answers:
            content = json.dumps({"decision": decision, "confidence": 0.5})
            answers[decision] = json.dumps(
                {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion",
                    "created": 0,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": content},
                        }
                    ],
                    "usage": {
                        "prompt_tokens": PROMPT_TOKENS,
                        "completion_tokens": COMPLETION_TOKENS,
                        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                    },
                }
            ).encode()
        return answers[decision]

    async def serve(decision: str) -> web.Response:
        state["running"] += 1
        state["max_running"] = max(state["max_running"], state["running"])
        try:
            if delay_s > 0:
                await asyncio.sleep(delay_s)
        finally:
            state["running"] -= 1
        state["success"] += 1
        state["prompt"] += PROMPT_TOKENS
        state["generation"] += COMPLETION_TOKENS
        return web.Response(body=completion(decision), content_type="application/json")

    async def chat(request: web.Request) -> web.Response:
        body = await request.read()  # regexes, not a JSON parse: the stub must cost little per answer
        asked = _MODEL.search(body)
        if asked is None or asked.group(1).decode() != model:
            name = asked.group(1).decode() if asked else None
            error = {"error": {"message": f"The model `{name}` does not exist.", "code": 404}}
            return web.json_response(error, status=404)
        enum = _ENUM.search(body)
        decision = enum.group(1).decode() if enum else "merge"
        if gate is None:
            return await serve(decision)
        state["waiting"] += 1
        async with gate:
            state["waiting"] -= 1
            return await serve(decision)

    async def models(request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "stub"}]}
        )

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=METRICS.format(m=model, **state), content_type="text/plain")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/metrics", metrics)
    return app


async def _main(args: argparse.Namespace) -> None:
    runner = web.AppRunner(make_app(args.model, args.delay, args.slots), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"http://127.0.0.1:{port}/v1", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


class StubServer:
    """Run this stub in a child process: `with StubServer(delay_s=0.2) as stub: stub.base_url`."""

    def __init__(
        self, model: str = "stub", delay_s: float = 0.0, slots: int = 0, cpus: set[int] | None = None
    ) -> None:
        self.model, self.delay_s, self.slots, self.cpus = model, delay_s, slots, cpus
        self.base_url = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> StubServer:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--model",
            self.model,
            "--delay",
            str(self.delay_s),
            "--slots",
            str(self.slots),
        ]
        preexec = (lambda: os.sched_setaffinity(0, self.cpus)) if self.cpus else None
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=preexec)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()  # blocks until the stub prints its URL (or dies)
        if not line.startswith("http://"):
            self.__exit__()
            raise RuntimeError(f"the OpenAI stub did not start (exit {self._proc.poll()})")
        self.base_url = line
        return self

    @property
    def metrics_url(self) -> str:
        return self.base_url.removesuffix("/v1") + "/metrics"

    def __exit__(self, *exc_info: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model", default="stub")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per answer")
    parser.add_argument("--slots", type=int, default=0, help="answers served at once (0 = unlimited)")
    args = parser.parse_args()
    try:
        asyncio.run(_main(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
