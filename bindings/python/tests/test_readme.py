"""The Python examples of the READMEs run as written (no network: the SDK clients are only
built, not used)."""

from __future__ import annotations

import re
from typing import Any, Dict, List

from support import ROOT


def python_blocks(text: str) -> List[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def run(blocks: List[str]) -> Dict[str, Any]:
    scope: Dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, "README", "exec"), scope)  # noqa: S102 - our own documentation
    return scope


def test_package_readme_examples_run() -> None:
    scope = run(python_blocks((ROOT / "bindings/python/README.md").read_text()))
    assert scope["cred"].key == "sk-key1"
    assert scope["nxt"].key == "sk-key2"
    assert {"client", "ant", "gem"} <= scope.keys()


def test_project_readme_python_section_runs() -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python: `pip install ./bindings/python`") : text.index("## Testing")]
    scope = run(python_blocks(section))
    assert scope["cred"].key == "sk-key1"
    assert scope["rotator"].get_providers() == ["openai", "google", "anthropic", "gemini"]
