"""``unity-sb3 learn`` with a curriculum: lessons advance at the right steps, reach the players,
are logged, survive a kill -9, and come from legacy ``--curriculum`` files alike."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("stable_baselines3")

import yaml

from tests.conftest import REPO
from tests.test_learn_reward_signals import _learn

# 3DBall's 12 platforms: without gravity no ball ever falls, so no episode ends (the built-in's
# step limit is far away); with gravity, balls fall within a few hundred steps.
BALL = {
    "trainer_type": "ppo",
    "hyperparameters": {"batch_size": 60, "buffer_size": 240, "num_epoch": 1},
    "network_settings": {"hidden_units": 16, "num_layers": 1},
    "max_steps": 4800,
    "summary_freq": 960,
    "checkpoint_interval": 1200,
    "time_horizon": 64,
}
GRAVITY_LESSONS = {
    "curriculum": [
        {
            "name": "Weightless",
            "completion_criteria": {
                "behavior": "3DBall",
                "measure": "progress",
                "threshold": 0.5,
                "require_reset": True,
            },
            "value": 0.0,
        },
        {"name": "Earth", "value": 9.81},
    ]
}


def _config(**parameters: Any) -> dict[str, Any]:
    return {
        "behaviors": {"3DBall": BALL},
        "environment_parameters": parameters,
        "env_settings": {"env_path": "builtin:3DBall", "seed": 3},
    }


def _status(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "results/run/run_logs/training_status.json").read_text())


def _lesson_numbers(folder: Path, parameter: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(f"Environment/Lesson Number/{parameter}")]


def _summaries(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("[INFO] 3DBall. Step:")]


def test_progress_lessons_advance_reach_the_players_and_are_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(
        gravity=GRAVITY_LESSONS,
        mass={"sampler_type": "uniform", "sampler_parameters": {"min_value": 0.5, "max_value": 2}},
    )
    assert _learn(tmp_path, config) == 0
    out = capsys.readouterr().out
    assert "Parameter 'gravity' starts in lesson 0 of 2 ('Weightless')." in out
    change = "Parameter 'gravity' is in lesson 'Earth' and has value 'Float: value=9.81'."
    assert out.count(change) == 1
    summaries = _summaries(out)
    assert len(summaries) == 5
    # Steps 960 and 1920: no ball fell. The change comes past half of max_steps (2400) with
    # a reset, and the players drop balls from then on.
    assert all("No episode was completed" in line for line in summaries[:2])
    assert all("Mean Reward" in line for line in summaries[3:])
    run = tmp_path / "results/run"
    assert _lesson_numbers(run / "3DBall", "gravity") == [
        (960, 0.0),
        (1920, 0.0),
        (2880, 1.0),
        (3840, 1.0),
        (4800, 1.0),
    ]
    assert {value for _, value in _lesson_numbers(run / "3DBall", "mass")} == {0.0}
    status = _status(tmp_path)
    assert status["gravity"] == {"lesson_num": 1} and status["mass"] == {"lesson_num": 0}


def test_legacy_curriculum_file_advances_the_same_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    legacy = tmp_path / "curriculum.yaml"
    legacy.write_text(
        yaml.safe_dump(
            {
                "3DBall": {
                    "measure": "progress",
                    "thresholds": [0.5],
                    "min_lesson_length": 0,
                    "signal_smoothing": False,
                    "parameters": {"gravity": [0.0, 9.81]},
                }
            }
        )
    )
    config = {**_config(), "behaviors": {"3DBall": {**BALL, "max_steps": 2400}}}
    del config["environment_parameters"]
    assert _learn(tmp_path, config, f"--curriculum={legacy}") == 0
    out = capsys.readouterr().out
    assert "Parameter 'gravity' is in lesson 'Lesson1' and has value 'Float: value=9.81'." in out
    assert [v for _, v in _lesson_numbers(tmp_path / "results/run/3DBall", "gravity")] == [
        0.0,
        1.0,
    ]  # summaries at 960 and 1920; the change comes past step 1200
    assert _status(tmp_path)["gravity"] == {"lesson_num": 1}
    # No require_reset in old curricula: the platforms read the new gravity only when their
    # weightless episodes end, which they never do.
    assert all("No episode was completed" in line for line in _summaries(out))


def test_killed_after_a_lesson_change_resume_continues_in_that_lesson(tmp_path: Path) -> None:
    config = _config(gravity=GRAVITY_LESSONS)
    long = json.loads(json.dumps(config))
    long["behaviors"]["3DBall"].update(max_steps=1_000_000, checkpoint_interval=600)
    long["environment_parameters"]["gravity"]["curriculum"][0]["completion_criteria"][
        "threshold"
    ] = 0.001  # past step 1000
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(long))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli.main",
            "learn",
            str(path),
            "--run-id=run",
            f"--results-dir={tmp_path / 'results'}",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    status_file = tmp_path / "results/run/run_logs/training_status.json"
    try:
        deadline = time.monotonic() + 180
        while True:  # the lesson is written with the first checkpoint after the change
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "no checkpoint after the lesson change in 180 s"
            if status_file.exists():
                try:
                    if json.loads(status_file.read_text()).get("gravity") == {"lesson_num": 1}:
                        break
                except json.JSONDecodeError:
                    pass
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)  # the trainer and its player
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    pointer = json.loads((tmp_path / "results/run/3DBall/checkpoint.json").read_text())
    resumed = json.loads(json.dumps(long))
    resumed["behaviors"]["3DBall"].update(max_steps=pointer["steps"] + 960, summary_freq=480)
    out = _run_resumed(tmp_path, resumed)
    # Resumed in the saved lesson (not back at 'Weightless' and moving on again), with
    # gravity sent to the new players from the start: balls fall in the first summary.
    assert "Parameter 'gravity' starts in lesson 1 of 2 ('Earth')." in out
    assert "is in lesson" not in out
    assert "Mean Reward" in _summaries(out)[0]
    assert _status(tmp_path)["gravity"] == {"lesson_num": 1}


def _run_resumed(tmp_path: Path, config: dict[str, Any]) -> str:
    from contextlib import redirect_stdout
    from io import StringIO

    buffer = StringIO()
    with redirect_stdout(buffer):
        assert _learn(tmp_path, config, "--resume") == 0
    return buffer.getvalue()


def test_criteria_naming_a_behavior_the_scene_lacks_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lessons = json.loads(json.dumps(GRAVITY_LESSONS))
    lessons["curriculum"][0]["completion_criteria"]["behavior"] = "3DBal"
    assert _learn(tmp_path, _config(gravity=lessons)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1  # one paragraph
    assert (
        "environment_parameters.gravity.curriculum[0].completion_criteria.behavior: '3DBal' "
        "is not a behavior of this scene, so lesson 'Weightless' could never end. The "
        "scene's behaviors are: 3DBall." in err
    )


def test_elo_measure_is_refused_with_the_measures_that_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lessons = json.loads(json.dumps(GRAVITY_LESSONS))
    lessons["curriculum"][0]["completion_criteria"].update(measure="Elo", threshold=1300)
    assert _learn(tmp_path, _config(gravity=lessons)) == 1
    err = capsys.readouterr().err
    assert "environment_parameters.gravity.curriculum[0].completion_criteria.measure: 'Elo'" in err
    assert "Use 'reward'" in err and "'progress'" in err


def test_translate_shows_the_lessons_of_mlagents_walljump_curriculum(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cli.main import main
    from tests.conftest import FIXTURES

    config = FIXTURES / "configs/ppo/WallJump_curriculum.yaml"
    assert main(["translate", str(config), "--env=builtin:WallJump"]) == 0
    out = capsys.readouterr().out
    assert (
        "  big_wall_height: 4 lessons\n"
        "    Lesson0: Uniform sampler: min=0.0, max=4.0 until progress of BigWallJump > 0.1, "
        "after at least 100 episodes\n"
        "    Lesson1: Uniform sampler: min=4.0, max=7.0 until progress of BigWallJump > 0.3, "
        "after at least 100 episodes\n"
        "    Lesson2: Uniform sampler: min=6.0, max=8.0 until progress of BigWallJump > 0.5, "
        "after at least 100 episodes\n"
        "    Lesson3: Float: value=8.0\n"
    ) in out
    assert "    Lesson3: Float: value=4.0" in out  # small_wall_height's last lesson
