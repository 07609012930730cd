"""User-facing errors: the CLI prints these as one line and exits non-zero, never with a traceback."""


class ProofpilotError(Exception):
    """A problem the user can fix (bad input, unreachable server, ...). Its message is one line."""

    exit_code = 2


class DataError(ProofpilotError):
    """A datastack, table, root id or server that does not exist or cannot be reached."""


class ConfigError(ProofpilotError):
    """Options that contradict each other or are out of range."""
