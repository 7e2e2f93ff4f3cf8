"""An exported policy running inside the built-in player scores as it does through SB3."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("onnxruntime")

from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

from sb3_ext.onnx_export import export_onnx
from tests.conftest import FIXTURES, REPO, free_port, live_children
from unity_gym.players import get_player
from unity_gym.players.model_policy import ModelPolicyError, play_episodes
from unity_gym.sb3_vec_env import UnityVecEnv

EPISODES = 24


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A 3DBall policy trained with observation normalisation, and its exports."""
    folder = tmp_path_factory.mktemp("onnx_player")
    venv = UnityVecEnv("builtin:3DBall", n_envs=1, seed=1, base_port=free_port())
    env = VecNormalize(VecMonitor(venv), norm_reward=False, clip_obs=5.0)
    try:
        model = PPO(
            "MlpPolicy",
            env,
            n_steps=256,
            batch_size=512,
            n_epochs=3,
            seed=0,
            policy_kwargs={"net_arch": [32, 32]},
        )
        model.learn(40_000)
        spec = venv.envs[0].behavior_specs[venv.behavior_name]
        good = export_onnx(model, spec, folder / "3DBall.onnx", normalization=env)
        # The same policy without its normalisation statistics: a broken export.
        broken = export_onnx(model, spec, folder / "broken.onnx")
    finally:
        env.close()
    return model, env.obs_rms, good, broken


def _sb3_returns(model: PPO, obs_rms, seed: int) -> list[float]:
    venv = UnityVecEnv("builtin:3DBall", n_envs=1, seed=seed, base_port=free_port())
    env = VecNormalize(VecMonitor(venv), training=False, norm_reward=False, clip_obs=5.0)
    env.obs_rms = obs_rms
    returns: list[float] = []
    try:
        obs = env.reset()
        while len(returns) < EPISODES:
            actions, _ = model.predict(obs, deterministic=True)
            obs, _, _, infos = env.step(actions)
            returns += [info["episode"]["r"] for info in infos if "episode" in info]
    finally:
        env.close()
    return returns[:EPISODES]


def test_exported_policy_in_the_player_scores_like_sb3(trained) -> None:
    model, obs_rms, good, broken = trained
    player = get_player("3DBall")
    for seed in (5, 6):
        through_sb3 = float(np.mean(_sb3_returns(model, obs_rms, seed)))
        in_player = play_episodes(player, {"3DBall": good}, EPISODES, seed=seed)
        (returns,) = in_player.values()
        assert len(returns) == EPISODES
        assert through_sb3 > 50, "the trained policy should balance the ball"
        assert abs(np.mean(returns) - through_sb3) <= 0.05 * through_sb3
    # Without its normalisation folded in, the same weights drop the ball: the comparison
    # above can tell a faithful export from a broken one.
    (broken_returns,) = play_episodes(player, {"3DBall": broken}, EPISODES, seed=5).values()
    assert np.mean(broken_returns) < 0.5 * through_sb3
    assert not live_children()


def test_player_command_line_runs_a_model_without_trainer(trained) -> None:
    _, _, good, _ = trained
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "unity_gym.players",
            "3DBall",
            f"--model=3DBall={good}",
            "--episodes",
            "12",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 12
    assert {row["behavior"] for row in rows} == {"3DBall?team=0"}
    assert np.mean([row["return"] for row in rows]) > 50


def test_model_errors_say_what_to_fix(tmp_path: Path, trained) -> None:
    _, _, good, _ = trained
    player = get_player("3DBall")
    with pytest.raises(ModelPolicyError, match="has no behavior 'Walker'"):
        play_episodes(player, {"Walker": good}, 1)
    with pytest.raises(ModelPolicyError, match="does not exist"):
        play_episodes(player, {"3DBall": tmp_path / "missing.onnx"}, 1)
    basic = FIXTURES / "onnx" / "Basic.onnx"
    assert basic.is_file(), f"ML-Agents reference model not found at {basic}"
    with pytest.raises(ModelPolicyError, match="continuous_actions"):
        play_episodes(player, {"3DBall": basic}, 1)
    tennis = get_player("Tennis")
    with pytest.raises(ModelPolicyError, match="every behavior needs a model"):
        play_episodes(tennis, {"Tennis?team=0": good}, 1)
