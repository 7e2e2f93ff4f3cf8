"""GAIL and behavioral cloning in ``unity-sb3 learn``: translation, stats, checkpoints, errors,
and GAIL alone learning built-in Basic from Unity's ExpertBasic.demo."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

import torch
import yaml

from cli.sb3_translation import translate_behavior
from cli.training_config import parse_run_options
from sb3_ext.imitation import BehavioralCloningSettings
from sb3_ext.reward_signals import GAILSettings
from tests.conftest import FIXTURES, REPO
from tests.test_learn_reward_signals import _learn
from unity_gym.players.basic import BasicTask

pytestmark = pytest.mark.protocol

EXPERT_BASIC = FIXTURES / "demos/ExpertBasic.demo"

BASIC: dict[str, Any] = {
    "behaviors": {
        "Basic": {
            "trainer_type": "ppo",
            "hyperparameters": {"batch_size": 32, "buffer_size": 256, "num_epoch": 2},
            "network_settings": {"hidden_units": 20, "num_layers": 1},
            "reward_signals": {
                "extrinsic": {"gamma": 0.9},
                "gail": {
                    "strength": 0.5,
                    "use_vail": True,
                    "network_settings": {"hidden_units": 16},
                    "demo_path": str(EXPERT_BASIC),
                },
            },
            "behavioral_cloning": {"demo_path": str(EXPERT_BASIC), "steps": 400},
            "max_steps": 512,
            "summary_freq": 256,
            "checkpoint_interval": 256,
            "time_horizon": 3,
        }
    },
    "env_settings": {"env_path": "builtin:Basic", "seed": 1},
}

GAIL_STATS = {
    "Policy/Gail Reward",
    "Policy/Gail Value Estimate",
    "Losses/GAIL Loss",
    "Policy/GAIL Policy Estimate",
    "Policy/GAIL Expert Estimate",
    "Policy/GAIL Grad Mag Loss",
    "Policy/GAIL Beta",
    "Losses/GAIL KL Loss",
    "Losses/Pretraining Loss",
}


def _plan(config: dict[str, Any]):
    options = parse_run_options(config)
    return translate_behavior("Basic", options.settings_for("Basic"), BasicTask.behavior_spec, 1)


def _scalars(folder: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [s.value for s in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_gail_and_behavioral_cloning_translate() -> None:
    plan = _plan(BASIC)
    gail = plan.reward_signals["gail"]
    assert isinstance(gail, GAILSettings)
    assert (gail.strength, gail.use_vail, gail.use_actions) == (0.5, True, False)
    assert Path(gail.demo_path) == EXPERT_BASIC
    cloning = plan.behavioral_cloning
    assert isinstance(cloning, BehavioralCloningSettings)
    assert (cloning.steps, cloning.strength, cloning.num_epoch) == (400, 1.0, None)
    assert not any("not available yet" in note for note in plan.notes)
    described = plan.describe()
    assert described["reward_signals"]["gail"]["use_vail"] is True
    assert described["behavioral_cloning"]["steps"] == 400
    # Without an extrinsic signal the environment reward is left out, as in ML-Agents.
    alone = copy.deepcopy(BASIC)
    del alone["behaviors"]["Basic"]["reward_signals"]["extrinsic"]
    plan = _plan(alone)
    assert plan.reward_scale == 0.0 and not plan.extrinsic
    assert any("no extrinsic signal; the environment reward is left out" in n for n in plan.notes)


def test_gail_vail_and_bc_train_log_mlagents_names_and_checkpoint(tmp_path: Path) -> None:
    assert _learn(tmp_path, BASIC) == 0
    folder = tmp_path / "results/run/Basic"
    scalars = _scalars(folder)
    assert set(scalars) >= GAIL_STATS
    assert all(value > 0 for value in scalars["Losses/Pretraining Loss"])
    pointer = yaml.safe_load((folder / "checkpoint.json").read_text())
    saved = torch.load(folder / pointer["reward_signals"], weights_only=True)
    assert set(saved) == {"gail", "value_heads"}
    assert "beta" in saved["gail"]["modules"]["discriminator"]


def test_a_demo_that_does_not_fit_the_behavior_is_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = copy.deepcopy(BASIC)
    behavior = config["behaviors"]["Basic"]
    behavior["reward_signals"]["gail"]["demo_path"] = str(FIXTURES / "demos/Expert3DBall.demo")
    assert _learn(tmp_path, config) != 0
    message = capsys.readouterr().err
    assert "reward_signals.gail of behavior Basic" in message
    assert "Expert3DBall.demo" in message and "(8,)" in message and "(20,)" in message
    del behavior["reward_signals"]["gail"]
    behavior["behavioral_cloning"]["demo_path"] = str(tmp_path)  # a folder with no .demo
    assert _learn(tmp_path, config, run_id="empty") != 0
    message = capsys.readouterr().err
    assert "behavioral_cloning of behavior Basic" in message and str(tmp_path) in message


def test_gail_alone_learns_basic_from_the_expert_demo(tmp_path: Path) -> None:
    """configs/Basic_gail.yaml: no extrinsic reward, only the discriminator's. The greedy
    policy reaches at least 90% of the recording's mean episode return (0.93)."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecMonitor

    from unity_gym.sb3_vec_env import UnityVecEnv

    config = yaml.safe_load((REPO / "configs/Basic_gail.yaml").read_text())
    config["behaviors"]["Basic"]["reward_signals"]["gail"]["demo_path"] = str(EXPERT_BASIC)
    config["env_settings"]["seed"] = 1
    assert _learn(tmp_path, config, "--torch-threads=1") == 0
    folder = tmp_path / "results/run/Basic"
    model_path = folder / yaml.safe_load((folder / "checkpoint.json").read_text())["model"]
    env = VecMonitor(UnityVecEnv("builtin:Basic", num_areas=1, seed=5))
    try:
        model = MaskablePPO.load(model_path, env=env)
        mean, _ = evaluate_policy(model, env, n_eval_episodes=5, deterministic=True)
    finally:
        env.close()
    assert mean >= 0.9 * 0.93
