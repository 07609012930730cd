"""Redaction of secrets from text that a server (or an exception) supplied, before it is logged or stored.

`redact(text, secrets)` replaces every known secret value and anything shaped like a credential
(``Bearer …``, ``Authorization: …``, ``middle_auth_token=…``, ``token=…`` query or JSON fields) with
``[redacted]``. `known_secrets()` gathers the values in use: the CAVE token variables, caveclient's secret
files under ~/.cloudvolume/secrets, and values registered at run time (`register_secret`). `RedactingFilter`
is the logging filter the CLI installs on its handlers as a last line of defence.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path

MASK = "[redacted]"
SECRET_ENV_VARS = ("PROOFPILOT_CAVE_TOKEN", "CAVE_TOKEN", "OPENAI_API_KEY")
SECRET_DIR = "~/.cloudvolume/secrets"
MIN_SECRET_LEN = 6  # shorter values ("EMPTY", "") are placeholders, and masking them would mangle text

_PATTERNS = (
    re.compile(r"(?i)(\bbearer\s+)(?!\[redacted\])[^\s\"',;}\]]+"),
    re.compile(r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?)(?!bearer\b|\[redacted\])[^\s\"',;}\]]+"),
    re.compile(r"(?i)(\b(?:middle_auth_token|access_token|auth_token|api_key|token)[\"']?\s*[=:]\s*[\"']?)"
               r"(?!\[redacted\])[^\s\"'&,;}\]]+"),
)  # fmt: skip

_registered: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret used by this process (e.g. an explicit token) so that every later redact masks it."""
    if value and len(value) >= MIN_SECRET_LEN:
        with _lock:
            _registered.add(value)


def _secret_file_values() -> list[str]:
    folder = Path(os.path.expanduser(SECRET_DIR))
    values: list[str] = []
    try:
        files = sorted(folder.glob("*secret.json"))
    except OSError:
        return values
    for path in files:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            values.extend(v for v in data.values() if isinstance(v, str))
    return values


def known_secrets() -> list[str]:
    """Every secret value this process may hold: env variables, caveclient's secret files, registered."""
    values = [os.environ.get(var, "").strip() for var in SECRET_ENV_VARS]
    values += _secret_file_values()
    with _lock:
        values += _registered
    return sorted({v for v in values if len(v) >= MIN_SECRET_LEN}, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with every secret value (default: `known_secrets()`) and credential-shaped part masked."""
    if not text:
        return text
    values = known_secrets() if secrets is None else sorted(secrets, key=len, reverse=True)
    for value in values:
        if value and len(value) >= MIN_SECRET_LEN and value in text:
            text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message, arguments and traceback text (attach it to handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = known_secrets()
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the formatter's own error path
            return True
        record.msg, record.args = redact(message, secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, secrets)
        return True


def install_log_filter(logger: logging.Logger | None = None) -> RedactingFilter:
    """Attach one RedactingFilter to every handler of `logger` (default: the root logger)."""
    target = logger or logging.getLogger()
    flt = RedactingFilter()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(flt)
    return flt
