"""Open an HTML file in real headless Chromium (Debian's package) and inspect it over the DevTools protocol.

`inspect_page(path)` starts Chromium on an ephemeral 127.0.0.1 DevTools port, opens the file in a fresh
target, and collects what a person's browser would show in its console: console.error/warn calls
(Runtime.consoleAPICalled), uncaught exceptions (Runtime.exceptionThrown), browser log entries such as CSP
violations and failed loads (Log.entryAdded) and failed network requests (Network.loadingFailed). After the
load event it decodes every <img> and reports its natural size, lists the tables by id, and can capture a
full-page screenshot. The websocket client is aiohttp's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

CHROMIUM_BIN = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
    "--disable-extensions", "--mute-audio", "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)  # fmt: skip
WIDTH, HEIGHT = 1280, 900
DEVTOOLS_LINE = re.compile(r"DevTools listening on (ws://\S+)")

requires_chromium = pytest.mark.skipif(
    not Path(CHROMIUM_BIN).exists(), reason="Debian's chromium is not installed (make deps installs it)"
)

# Runs in the page after the load event: decode every image, list tables and any non-inline resource.
CHECK_JS = """
(async () => {
  const imgs = Array.from(document.images);
  const decoded = await Promise.all(imgs.map(i => i.decode().then(() => true, () => false)));
  return {
    title: document.title,
    images: imgs.map((i, k) => ({alt: i.alt, scheme: i.src.split(':')[0], complete: i.complete,
                                 naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight,
                                 decoded: decoded[k]})),
    tables: Array.from(document.querySelectorAll('table')).map(t => ({
      id: t.id, rows: t.tBodies.length ? t.tBodies[0].rows.length : 0,
      text: t.innerText.slice(0, 4000)})),
    external: Array.from(document.querySelectorAll('[src],[href]'))
      .map(e => e.getAttribute('src') || e.getAttribute('href'))
      .filter(u => !u.startsWith('data:') && !u.startsWith('#')),
    resources: performance.getEntriesByType('resource').map(e => e.name),
    scripts: document.scripts.length,
    height: document.documentElement.scrollHeight,
  };
})()
"""


@dataclass(frozen=True)
class PageReport:
    console: list[dict[str, Any]]  # console.* calls at level error or warning
    exceptions: list[str]
    log_errors: list[dict[str, Any]]  # browser log entries (CSP, network, ...) at level error or warning
    failed_requests: list[str]
    page: dict[str, Any]  # the CHECK_JS result
    screenshot: bytes | None

    @property
    def problems(self) -> list[str]:
        """Everything a person would see as an error in the DevTools console."""
        out = [f"console.{c['type']}: {c['text']}" for c in self.console]
        out += [f"exception: {e}" for e in self.exceptions]
        out += [f"log {e['level']} ({e['source']}): {e['text']}" for e in self.log_errors]
        out += [f"request failed: {r}" for r in self.failed_requests]
        return out


class _Cdp:
    """Minimal DevTools client: numbered calls, events kept in arrival order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws, self.ids = ws, itertools.count(1)
        self.pending: dict[int, asyncio.Future] = {}
        self.events: list[dict[str, Any]] = []
        self.changed = asyncio.Condition()

    async def pump(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                fut = self.pending.pop(data["id"])
                if "error" in data:
                    fut.set_exception(RuntimeError(f"CDP error: {data['error']}"))
                else:
                    fut.set_result(data.get("result", {}))
            else:
                async with self.changed:
                    self.events.append(data)
                    self.changed.notify_all()

    async def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        fut = asyncio.get_running_loop().create_future()
        self.pending[msg_id] = fut
        payload = {"id": msg_id, "method": method, "params": params}
        if session:
            payload["sessionId"] = session
        await self.ws.send_str(json.dumps(payload))
        return await fut

    async def wait_event(self, method: str, session: str) -> dict[str, Any]:
        async with self.changed:
            await self.changed.wait_for(
                lambda: any(e.get("method") == method and e.get("sessionId") == session for e in self.events)
            )
        return next(e for e in self.events if e.get("method") == method and e.get("sessionId") == session)


def _collect(events: list[dict[str, Any]], session: str) -> tuple[list, list, list, list]:
    console, exceptions, log_errors, failed = [], [], [], []
    for e in events:
        if e.get("sessionId") != session:
            continue
        p = e.get("params", {})
        if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            console.append({"type": p["type"], "text": text})
        elif e["method"] == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            exceptions.append(d.get("exception", {}).get("description") or d.get("text", "?"))
        elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error", "warning"):
            entry = p["entry"]
            log_errors.append(
                {"level": entry["level"], "source": entry.get("source"), "text": entry.get("text")}
            )
        elif e["method"] == "Network.loadingFailed":
            failed.append(f"{p.get('type')} {p.get('errorText')} {p.get('blockedReason') or ''}".strip())
    return console, exceptions, log_errors, failed


async def _inspect(ws_url: str, url: str, screenshot: bool, timeout_s: float) -> PageReport:
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=0) as ws:
        cdp = _Cdp(ws)
        pump = asyncio.create_task(cdp.pump())
        try:
            target = await cdp.call("Target.createTarget", url="about:blank")
            attached = await cdp.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
            sid = attached["sessionId"]
            for domain in ("Runtime", "Log", "Page", "Network"):
                await cdp.call(f"{domain}.enable", session=sid)
            await cdp.call("Emulation.setDeviceMetricsOverride", session=sid, width=WIDTH, height=HEIGHT,
                           deviceScaleFactor=1, mobile=False)  # fmt: skip
            await cdp.call("Page.navigate", session=sid, url=url)
            await asyncio.wait_for(cdp.wait_event("Page.loadEventFired", sid), timeout_s)
            result = await cdp.call("Runtime.evaluate", session=sid, expression=CHECK_JS, awaitPromise=True,
                                    returnByValue=True)  # fmt: skip
            if "exceptionDetails" in result:
                raise RuntimeError(f"the page check failed: {result['exceptionDetails']}")
            page = result["result"]["value"]
            shot = None
            if screenshot:
                height = int(page["height"])
                clip = {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1}
                data = await cdp.call(
                    "Page.captureScreenshot", session=sid, format="png", captureBeyondViewport=True, clip=clip
                )
                shot = base64.b64decode(data["data"])
            await cdp.call("Runtime.evaluate", session=sid, expression="0")  # flush pending console events
            console, exceptions, log_errors, failed = _collect(cdp.events, sid)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(cdp.call("Browser.close"), 5)
            return PageReport(console, exceptions, log_errors, failed, page, shot)
        finally:
            pump.cancel()


def _devtools_url(proc: subprocess.Popen, lines: list[str], found: threading.Event) -> None:
    for raw in proc.stderr:  # drained to the end so Chromium never blocks on a full pipe
        line = raw.decode(errors="replace")
        lines.append(line)
        if not found.is_set() and DEVTOOLS_LINE.search(line):
            found.set()
    found.set()  # Chromium exited: wake the waiter


def inspect_page(path: Path, screenshot: bool = False, timeout_s: float = 60.0) -> PageReport:
    """Open `path` in headless Chromium and report console problems, images, tables (and a screenshot)."""
    profile = tempfile.mkdtemp(prefix="pp-chromium-")
    env = {**os.environ, "HOME": profile}
    proc = subprocess.Popen([CHROMIUM_BIN, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            start_new_session=True)  # fmt: skip
    lines: list[str] = []
    found = threading.Event()
    reader = threading.Thread(target=_devtools_url, args=(proc, lines, found), daemon=True)
    reader.start()
    try:
        if not found.wait(timeout_s):
            raise AssertionError(f"Chromium did not open its DevTools port in {timeout_s} s")
        match = next((m for line in lines if (m := DEVTOOLS_LINE.search(line))), None)
        if match is None:
            raise AssertionError("Chromium exited before opening DevTools:\n" + "".join(lines[-20:]))
        return asyncio.run(_inspect(match.group(1), Path(path).resolve().as_uri(), screenshot, timeout_s))
    finally:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group this call started
            proc.wait(timeout=10)
        reader.join(timeout=5)
        shutil.rmtree(profile, ignore_errors=True)
