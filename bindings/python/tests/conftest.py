"""Fixtures: a fake clock and the mock upstream (see support.py)."""

from __future__ import annotations

from typing import Iterator

import pytest

from ai_key_rotator import FakeClock
from support import Mock


@pytest.fixture(scope="session")
def mock_process() -> Iterator[Mock]:
    m = Mock()
    yield m
    m.close()


@pytest.fixture
def mock(mock_process: Mock) -> Mock:
    mock_process.cmd(op="clear")
    return mock_process


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


