"""``unity-sb3 learn`` with ``self_play``: one model per behavior, ELO, and a league that
survives ``--resume``; the asymmetric built-in with one model per side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("stable_baselines3")

import torch

from tests.conftest import live_children
from tests.test_learn_reward_signals import _learn, _scalar_tags

NETWORK = {"hidden_units": 16, "num_layers": 1}
HYPER = {"batch_size": 64, "buffer_size": 256, "num_epoch": 1}


def _tennis(max_steps: int) -> dict[str, Any]:
    return {
        "behaviors": {
            "Tennis": {
                "hyperparameters": HYPER,
                "network_settings": {**NETWORK, "normalize": True},
                "max_steps": max_steps,
                "summary_freq": 400,
                "checkpoint_interval": 800,
                "time_horizon": 64,
                "self_play": {"save_steps": 200, "team_change": 400, "swap_steps": 100},
            }
        },
        "env_settings": {"env_path": "builtin:Tennis", "num_areas": 2, "seed": 5},
    }


def _status(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "results/run/run_logs/training_status.json").read_text())


def _league(tmp_path: Path, behavior: str) -> dict[str, Any]:
    folder = tmp_path / "results/run" / behavior
    pointer = json.loads((folder / "checkpoint.json").read_text())
    return torch.load(folder / pointer["self_play"], weights_only=True)


def test_tennis_self_play_trains_one_model_and_resumes_the_league(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _learn(tmp_path, _tennis(1600)) == 0
    out = capsys.readouterr().out
    run = tmp_path / "results/run"
    assert (run / "Tennis.onnx").exists() and not list(run.glob("Tennis_team*"))
    assert "Self-play/ELO" in _scalar_tags(run / "Tennis")
    assert "Training. ELO: " in out
    status = _status(tmp_path)
    assert list(status["Tennis"]) == ["checkpoints", "elo", "final_checkpoint"]  # ML-Agents' order
    before = _league(tmp_path, "Tennis")
    ghost = before["ghost"]
    assert status["Tennis"]["elo"] == pytest.approx(ghost["elos"][-1])
    steps = status["Tennis"]["final_checkpoint"]["steps"]
    # One snapshot at the start, then one each time more than 200 steps passed.
    assert len(ghost["snapshots"]) == 1 + (steps - 1) // 202
    assert steps - ghost["last_save"] <= 200
    assert before["controller"]["changes"] >= 3  # a team change every 400 steps

    assert _learn(tmp_path, _tennis(2000), "--resume") == 0
    after = _league(tmp_path, "Tennis")["ghost"]
    assert after["last_save"] > ghost["last_save"]
    assert len(after["snapshots"]) == 10  # the ring grew on from the saved one
    # The saved snapshots stay in the ring (the oldest, slot 0, may have been replaced).
    for old, new in zip(ghost["snapshots"][1:3], after["snapshots"][1:3], strict=True):
        for key, value in old["weights"].items():
            assert torch.equal(value, new["weights"][key])
    # Their ratings go on from the saved ones (games since then move them by a point or so).
    assert ghost["elos"][1:3] != [1200.0, 1200.0]
    assert after["elos"][1:3] == pytest.approx(ghost["elos"][1:3], abs=3.0)
    assert after["elos"][-1] == pytest.approx(ghost["elos"][-1], abs=3.0)
    assert not live_children()


def test_asymmetric_game_trains_one_model_per_side_in_one_rotation(tmp_path: Path) -> None:
    side = {
        "trainer_type": "ppo",
        "hyperparameters": HYPER,
        "network_settings": NETWORK,
        "max_steps": 1024,
        "summary_freq": 512,
        "checkpoint_interval": 1024,
        "time_horizon": 64,
        "self_play": {"save_steps": 256, "team_change": 256, "swap_steps": 128},
    }
    config = {
        "behaviors": {"Striker": side, "Goalie": side},
        "env_settings": {"env_path": "builtin:StrikersVsGoalie", "num_areas": 4, "seed": 2},
    }
    assert _learn(tmp_path, config) == 0
    status = _status(tmp_path)
    for side_name in ("Striker", "Goalie"):
        assert status[side_name]["final_checkpoint"]["steps"] >= 1024
        assert "elo" in status[side_name]
    striker, goalie = _league(tmp_path, "Striker"), _league(tmp_path, "Goalie")
    # Each side's snapshots were played by the other side while it learned.
    assert striker["ghost"]["ghost_steps"] > 0 and goalie["ghost"]["ghost_steps"] > 0
    assert striker["controller"]["changes"] >= 6
    assert not live_children()


def test_self_play_needs_two_teams(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = {
        "behaviors": {"Basic": {"max_steps": 100, "self_play": {"window": 3}}},
        "env_settings": {"env_path": "builtin:Basic"},
    }
    assert _learn(tmp_path, config) == 1
    err = capsys.readouterr().err
    assert "behaviors.Basic.self_play" in err
    assert "one team (Basic?team=0)" in err and "Team Id" in err
    assert not live_children()


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [("window", 0, "window"), ("play_against_latest_model_ratio", 1.5, "ratio")],
)
def test_bad_self_play_values_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: float, text: str
) -> None:
    config = _tennis(100)
    config["behaviors"]["Tennis"]["self_play"][key] = value
    assert _learn(tmp_path, config) == 1
    err = capsys.readouterr().err
    assert f"self_play.{key}" in err and text in err
