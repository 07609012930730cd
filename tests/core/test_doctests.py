"""The docstring examples of the entry points run (embedded datastack, the suite's private HOME)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["proofpilot.core.vocab", "proofpilot.core.records", "proofpilot.datastack.ingest"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
