"""The CLI shell: help for every command, one-line errors."""

import subprocess
import sys

from proofpilot.cli.main import main


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage" in out


def test_unknown_command_is_one_line_error(capsys):
    code = main(["no-such-command"])
    err = capsys.readouterr().err
    assert code != 0
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "proofpilot.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "proofpilot" in out.stdout
