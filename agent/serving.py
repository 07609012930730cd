"""Start and stop the real vLLM CPU server (tiny Qwen2, or tiny Qwen2.5-VL) as a subprocess on 127.0.0.1.

The flags live in one place, deploy/vllm/serve_cpu.sh (run by this module); this module picks a free
port, keeps every cache out of $HOME, waits on `/health` with a deadline and stops the whole process
group by PID. Used by the tests (one server per run) and the offline demo:

    with VllmCpuServer(CpuServerConfig()) as server:
        client = AgentClient(server.base_url, server.model)
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from proofpilot.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVE_SCRIPT = REPO_ROOT / "deploy" / "vllm" / "serve_cpu.sh"
SETUP_HINT = "run deploy/vllm/setup.sh (or `make deps`)"
SERVED_MODEL_NAME = "tinyqwen"
SERVED_VL_MODEL_NAME = "tinyqwen-vl"


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value) if value else default


@dataclass(frozen=True)
class CpuServerConfig:
    """Where the vLLM venv, model and caches are; `port=None` picks a free port at start."""

    venv: Path = field(default_factory=lambda: _env_path("PROOFPILOT_VLLM_VENV", REPO_ROOT / ".venv-vllm"))
    model_dir: Path = field(
        default_factory=lambda: _env_path("PROOFPILOT_VLLM_MODEL", REPO_ROOT / ".cache" / "tiny-qwen2")
    )
    cache_dir: Path = field(default_factory=lambda: _env_path("PROOFPILOT_CACHE_DIR", REPO_ROOT / ".cache"))
    host: str = "127.0.0.1"
    port: int | None = None
    startup_timeout_s: float = 180.0
    stop_timeout_s: float = 10.0
    log_path: Path | None = None
    extra_args: tuple[str, ...] = ()
    vision: bool = False  # serve_cpu.sh's vision mode (PROOFPILOT_VLLM_VISION=1); set by `vision_config()`

    @property
    def served_model(self) -> str:
        return SERVED_VL_MODEL_NAME if self.vision else SERVED_MODEL_NAME


def vision_config(**overrides) -> CpuServerConfig:
    """The tiny Qwen2.5-VL (PROOFPILOT_VLLM_VL_MODEL, default .cache/tiny-qwen2.5-vl) in vision mode."""
    model_dir = _env_path("PROOFPILOT_VLLM_VL_MODEL", REPO_ROOT / ".cache" / "tiny-qwen2.5-vl")
    return CpuServerConfig(**{"model_dir": model_dir, "vision": True, **overrides})


def unavailable_reason(config: CpuServerConfig) -> str | None:
    """Why the CPU server cannot start here (missing venv or model), or None if it can."""
    if not (config.venv / "bin" / "python").exists():
        return f"no vLLM venv at {config.venv}; {SETUP_HINT}"
    if not (config.model_dir / "config.json").exists():
        return f"no tiny model at {config.model_dir}; {SETUP_HINT}"
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _server_env(config: CpuServerConfig, port: int) -> dict[str, str]:
    """The launcher's environment: offline, no usage stats, every cache under cache_dir (not $HOME)."""
    cache = config.cache_dir.resolve()
    env = dict(os.environ)
    env.update(
        PROOFPILOT_VLLM_VENV=str(config.venv.resolve()),
        PROOFPILOT_VLLM_MODEL=str(config.model_dir.resolve()),
        PROOFPILOT_CACHE_DIR=str(cache),
        PROOFPILOT_VLLM_VISION="1" if config.vision else "0",
        LLM_HOST=config.host,
        LLM_PORT=str(port),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
    )
    env.setdefault("VLLM_CACHE_ROOT", str(cache / "vllm"))
    env.setdefault("VLLM_CONFIG_ROOT", str(cache / "vllm-config"))
    env.setdefault("HF_HOME", str(cache / "huggingface"))
    env.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache / "torchinductor"))
    env.setdefault("TRITON_CACHE_DIR", str(cache / "triton"))
    env.setdefault("XDG_CACHE_HOME", str(cache / "xdg"))
    return env


class VllmCpuServer:
    """A real vLLM OpenAI-compatible server on the CPU; a context manager (start on enter, stop on exit)."""

    def __init__(self, config: CpuServerConfig | None = None) -> None:
        self.config = config or CpuServerConfig()
        self.model = self.config.served_model
        self.port: int | None = self.config.port
        self.startup_s: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise ConfigError("the vLLM server has not been started")
        return f"http://{self.config.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (…/v1)."""
        return f"{self.url}/v1"

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> VllmCpuServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> VllmCpuServer:
        """Launch the server (same port as before on a restart) and wait until `/health` answers 200."""
        if self.is_running():
            return self
        reason = unavailable_reason(self.config)
        if reason:
            raise ConfigError(reason)
        if self.port is None:
            self.port = free_port(self.config.host)
        self._log_path = self.config.log_path or self.config.cache_dir / "logs" / f"vllm-cpu-{self.port}.log"
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        args = ["bash", str(SERVE_SCRIPT), *self.config.extra_args]
        log.info("starting vLLM CPU server on %s (log %s)", self.url, self._log_path)
        started = time.perf_counter()
        with open(self._log_path, "ab") as log_file:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=_server_env(self.config, self.port),
                start_new_session=True,  # own process group: stop() reaches the engine core too
            )
        try:
            self._wait_healthy(started + self.config.startup_timeout_s)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - started
        log.info("vLLM CPU server healthy after %.1f s (pid %d)", self.startup_s, self._proc.pid)
        return self

    def _wait_healthy(self, deadline: float) -> None:
        assert self._proc is not None
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
        while True:
            code = self._proc.poll()
            if code is not None:
                last = self._last_log_line()
                raise DataError(f"vLLM exited with code {code} during start-up; last log line: {last}")
            with contextlib.suppress(OSError), opener.open(f"{self.url}/health", timeout=2.0) as response:
                if response.status == 200:
                    return
            if time.perf_counter() > deadline:
                raise DataError(
                    f"vLLM not healthy after {self.config.startup_timeout_s:.0f} s; see {self._log_path}"
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=0.5)  # the pause between probes; returns early if it dies

    def _last_log_line(self) -> str:
        if self._log_path is None or not self._log_path.exists():
            return "(no log)"
        lines = [line for line in self._log_path.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1][:300] if lines else "(empty log)"

    def stop(self, timeout_s: float | None = None) -> None:
        """SIGTERM the process group, SIGKILL it after `timeout_s` (default: the config's `stop_timeout_s`).

        The port is kept, so `start()` afterwards restarts the server at the same URL.

        vLLM's graceful shutdown waits for open connections, and requests caught mid-flight by an engine
        stop can hang until the client's timeout, hence the short deadline.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        grace_s = self.config.stop_timeout_s if timeout_s is None else timeout_s
        if proc.poll() is None:
            self._signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("vLLM did not stop within %.0f s; killing it", grace_s)
                self._signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        # the engine core may outlive the API server for a moment; make sure the group is gone
        self._signal_group(proc.pid, signal.SIGKILL)
        if not self._wait_group_gone(proc.pid, deadline=time.perf_counter() + 5.0):
            log.warning("process group %d still has members after SIGKILL", proc.pid)
        log.info("vLLM CPU server on port %s stopped", self.port)

    @staticmethod
    def _wait_group_gone(pgid: int, deadline: float) -> bool:
        while time.perf_counter() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
            time.sleep(0.05)
        return False

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def restart(self) -> VllmCpuServer:
        self.stop()
        return self.start()
