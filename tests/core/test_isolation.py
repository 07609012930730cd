"""The test harness itself: private HOME and the loopback guard."""

import os
import socket

import pytest


def test_home_is_private(test_home):
    assert os.environ["HOME"] == str(test_home)
    assert os.path.expanduser("~") == str(test_home)


def test_non_loopback_connect_is_blocked():
    blocked = pytest.raises(RuntimeError, match="non-loopback")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, blocked:
        s.connect(("10.255.255.1", 9))


def test_loopback_connect_is_allowed():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.socket() as client:
            client.connect(server.getsockname())
