"""A fresh clone is enough: the tests that read ML-Agents' reference files pass in a bare copy.

The repository's files (what git tracks, plus new files it does not ignore) are copied to a
temporary folder with nothing beside it, and the fixture-reading test modules run there with this
interpreter. The copy's own packages must be the ones imported, not this checkout's (the
development install is an editable one that points here).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

# The fixture-reading modules that run in seconds; the ones that train or export policies are
# left out to keep this test short.
MODULES = [
    "tests/test_legacy_config.py",
    "tests/test_training_config.py",
    "tests/test_demo.py",
    "tests/test_sb3_translation.py",
    "tests/test_learn_arguments.py",
]
SUMMARY = re.compile(r"^\d+ passed(, \d+ warnings?)? in [\d.]+s( \(\d+:\d+:\d+\))?$")

PROBE = """
import json, cli, sb3_ext, unity_gym
from tests import conftest
print(json.dumps({
    "cli": cli.__file__, "sb3_ext": sb3_ext.__file__, "unity_gym": unity_gym.__file__,
    "conftest": conftest.__file__, "FIXTURES": str(conftest.FIXTURES),
}))
"""


def _repository_files() -> list[str]:
    """Paths (relative to REPO) of the files a commit of the working tree would hold."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip(f"{REPO} is not a git working tree: cannot tell its files from the rest")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    # A tracked file deleted in the working tree is still listed; a commit would not hold it.
    return sorted({p for p in listed.split("\0") if p and (REPO / p).is_file()})


def _copy_repository(destination: Path) -> None:
    for relative in _repository_files():
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, target, follow_symlinks=False)


def _clean_env(copy: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env["PYTHONPATH"] = str(copy)  # the copy first, before the editable install's path hooks
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.mark.timeout(600)  # about 20 s on two cores; the copy runs ~150 tests
def test_fixture_tests_pass_in_a_bare_copy(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    copy = clone / "repo"
    _copy_repository(copy)
    assert sorted(p.name for p in clone.iterdir()) == ["repo"]  # nothing beside the copy
    assert (copy / "tests/fixtures/mlagents-r21/NOTICE").is_file()
    assert (copy / "tests/fixtures/mlagents-r21/demos/ExpertBasic.demo").is_file()
    env = _clean_env(copy)

    probe = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    imported = {k: Path(v).resolve() for k, v in json.loads(probe.stdout).items()}
    outside = {k: str(v) for k, v in imported.items() if not v.is_relative_to(copy.resolve())}
    assert outside == {}, f"imported from outside the copy {copy}: {outside}"

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", *MODULES],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    summary = lines[-1].strip("= ") if lines else ""
    assert SUMMARY.match(summary), f"not a clean pass: {summary!r}\n{output[-6000:]}"
    assert "skipped" not in summary and "error" not in summary
    assert not [line for line in lines if line.startswith(("SKIPPED", "ERROR", "FAILED"))], output
