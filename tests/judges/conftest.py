"""Fixtures of the judge tests: a chat-completions server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chat_api import ChatServer


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    server = ChatServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
