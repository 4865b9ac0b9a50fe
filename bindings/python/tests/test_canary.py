"""A canary key never appears in repr, str, status, events, exceptions or saved state."""

from __future__ import annotations

import json
import pathlib
import threading
from typing import Any, List, Optional

import pytest

from ai_key_rotator import ConfigError, FakeClock, FileStore, KeyRotator, NoKeyAvailable

from support import CANARY, drain_until

# Parts long enough to identify the key, short enough to catch a truncated or masked leak.
FRAGMENTS = [CANARY, CANARY[3:-4], CANARY[-16:], CANARY[:16]]


def assert_clean(text: str, where: str) -> None:
    for f in FRAGMENTS:
        assert f not in text, f"the key leaked into {where}: {text!r}"


class Memory:
    def __init__(self) -> None:
        self.state: Optional[str] = None

    def save(self, state: str) -> None:
        self.state = state

    def load(self) -> Optional[str]:
        return self.state


def test_canary_never_leaks(clock: FakeClock, tmp_path: pathlib.Path) -> None:
    persistence = Memory()
    path = tmp_path / "state.json"
    r = KeyRotator(
        {"openai": {"credentials": [{"key": CANARY}, {"key": "sk-other", "label": "other"}]}},
        persistence=persistence,
        store=FileStore(path),
        reset_interval_ms=0,
        clock=clock,
    )
    events: List[Any] = []
    signal = threading.Event()

    def record(e: Any) -> None:
        events.append(e)
        signal.set()

    r.on("*", record)
    outputs: List[tuple] = []
    c = r.get_key("openai")
    assert c is not None and c.key == CANARY
    outputs += [("repr(credential)", repr(c)), ("str(credential)", str(c)), ("masked", c.masked_key)]
    outputs += [("repr(rotator)", repr(r)), ("fingerprint", c.fingerprint)]
    with r.acquire("openai") as lease:
        outputs.append(("repr(lease)", repr(lease)))
    # The provider's error body echoes the key; the verdict must not.
    echo = ('{"error":{"message":"Incorrect API key provided: %s.","code":"invalid_api_key"}}' % CANARY).encode()
    verdict = r.report_response(c, 401, {"x-echo": CANARY}, echo)
    outputs.append(("verdict", json.dumps(verdict)))
    r.mark_exhausted("openai", "sk-other")
    outputs.append(("status", json.dumps(r.get_status())))
    with pytest.raises(NoKeyAvailable) as no_key:
        r.acquire("openai")
    outputs.append(("NoKeyAvailable", str(no_key.value) + repr(no_key.value)))
    for bad in ({"credentials": [{"key": CANARY}, {"key": CANARY}]}, {"credentials": [{"key": CANARY, "weight": 0}]}):
        with pytest.raises(ConfigError) as e:
            KeyRotator({"p": bad})
        outputs.append(("ConfigError", str(e.value)))
    with pytest.raises(ConfigError) as e:
        r.add_credential("openai", CANARY)
    outputs.append(("add_credential error", str(e.value)))
    r.save()
    r.flush()
    outputs += [("saved state", persistence.state or ""), ("export_state", r.export_state())]
    outputs.append(("store file", path.read_text()))
    drain_until(events, lambda: any(e["event"] == "disabled" for e in events), signal)
    outputs.append(("events", json.dumps(events)))
    for where, text in outputs:
        assert_clean(text, where)
    r.close()


def test_canary_stays_out_of_toml_errors(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "rotator.toml"
    for text in [
        f'[providers.openai]\ncredentials = [{{ key = "{CANARY}", lable = "typo" }}]\n',
        f'[providers.openai]\ncredentials = [{{ key = "{CANARY}", weight = "heavy" }}]\n',
        f'[providers.openai]\ncredentials = [{{ key = "{CANARY}" ]\n',
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError) as e:
            KeyRotator.from_toml(path)
        assert_clean(str(e.value), "a TOML error")
