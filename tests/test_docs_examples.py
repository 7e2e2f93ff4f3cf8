"""Every Python example in the adapter, export, reward-signal, imitation, self-play,
curriculum and Ray docs runs (small budgets)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("pettingzoo")

from tests.conftest import REPO, live_children

# Budgets shrunk for the test (every environment takes a free port, so examples run as written).
SHRINK = [
    (re.compile(r"\.learn\((\d[\d_]*)"), ".learn(256"),
    (re.compile(r"range\((\d{3,})\)"), "range(40)"),
    (re.compile(r"max_iter=\d+"), "max_iter=40"),
    (re.compile(r"n_steps=\d+"), "n_steps=32"),
    (re.compile(r"batch_size=\d+"), "batch_size=32"),  # divides n_steps * n_envs
    (re.compile(r"verbose=1"), "verbose=0"),
    # docs/ray.md: a Ray instance for the example instead of the machine's cluster.
    (re.compile(r'address="auto"'), "address=None"),
]


def _examples() -> list[tuple[str, int, str]]:
    found = []
    for page in (
        "sb3.md",
        "gymnasium.md",
        "pettingzoo.md",
        "export.md",
        "reward-signals.md",
        "imitation.md",
        "self-play.md",
        "match.md",
        "curriculum.md",
        "ray.md",
    ):
        text = (REPO / "docs" / page).read_text()
        for index, block in enumerate(re.findall(r"```python\n(.*?)```", text, re.S)):
            found.append((page, index, block))
    return found


def _prepare(code: str) -> str:
    for pattern, replacement in SHRINK:
        code = pattern.sub(replacement, code)
    return code


@pytest.mark.parametrize(("page", "index", "code"), _examples(), ids=lambda v: str(v)[:20])
def test_docs_example_runs_and_cleans_up(
    page: str, index: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if page == "export.md":
        pytest.importorskip("onnxruntime")
    if page == "ray.md":
        pytest.importorskip("ray", reason='Ray is not installed: pip install "unity-sb3[ray]"')
        if "rllib" in code:
            pytest.importorskip("ray.rllib", reason='pip install "unity-sb3[rllib]"')
    monkeypatch.chdir(tmp_path)  # examples may write files (results/...)
    before = live_children()
    try:
        exec(compile(_prepare(code), f"docs/{page}#{index}", "exec"), {"__name__": "__docs__"})
    finally:
        if page == "ray.md":  # an example that failed half way must not leave Ray running
            import ray

            ray.shutdown()
    assert live_children() <= before, f"docs/{page} example {index} left a player running"
