"""UnityVectorEnv: a CleanRL-style loop, SAME_STEP autoreset as SyncVectorEnv lays it out."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.vector import RecordEpisodeStatistics

from tests.conftest import free_port, process_gone
from tests.test_gym_env import HybridPlayer
from unity_gym import UnityGymEnv, UnityVectorEnv
from unity_gym.exception import UnityEnvironmentException


@pytest.fixture
def make_vec_env() -> Iterator[Callable[..., UnityVectorEnv]]:
    """Opens UnityVectorEnvs on free ports and always closes them, checking their players end."""
    opened: list[UnityVectorEnv] = []

    def make(name: str, n_envs: int = 1, **kwargs: Any) -> UnityVectorEnv:
        env = UnityVectorEnv(f"builtin:{name}", n_envs, base_port=free_port(), **kwargs)
        opened.append(env)
        return env

    yield make
    for env in opened:
        pids = env.player_pids
        env.close()
        assert all(pid is None or process_gone(pid) for pid in pids), pids


def test_cleanrl_style_loop_on_two_3dball_players(make_vec_env) -> None:
    env = make_vec_env("3DBall", 2)
    assert env.num_envs == 24 and env.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert env.single_observation_space.shape == (8,) and env.observation_space.shape == (24, 8)
    assert env.single_action_space.shape == (2,) and env.action_space.shape == (24, 2)
    envs = RecordEpisodeStatistics(env)
    obs, infos = envs.reset(seed=0)
    assert obs.shape == (24, 8) and obs.dtype == np.float32 and infos == {}
    rng = np.random.default_rng(0)
    returns = np.zeros(24)
    lengths = np.zeros(24, int)
    finished = 0
    for _ in range(200):
        # A tiny hand-written policy: tilt against the ball's offset, with some noise.
        actions = np.clip(-obs[:, 2:4] + rng.normal(0, 0.5, (24, 2)), -1, 1).astype(np.float32)
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        assert obs.shape == (24, 8) and obs.dtype == np.float32
        assert rewards.shape == (24,) and rewards.dtype == np.float32
        assert terminated.dtype == bool and truncated.dtype == bool
        returns += rewards
        lengths += 1
        dones = terminated | truncated
        if not dones.any():
            assert "final_obs" not in infos and "episode" not in infos
            continue
        assert np.array_equal(infos["_final_obs"], dones)
        assert np.array_equal(infos["_final_info"], dones)
        assert np.array_equal(infos["_episode"], dones)
        for i in range(24):
            final = infos["final_obs"][i]
            if not dones[i]:
                assert final is None
                continue
            assert final.shape == (8,) and final.dtype == np.float32
            assert not np.array_equal(final, obs[i])  # obs[i] already starts the next episode
            assert infos["episode"]["r"][i] == pytest.approx(returns[i], abs=1e-4)
            assert infos["episode"]["l"][i] == lengths[i]
            assert returns[i] == pytest.approx(0.1 * (lengths[i] - 1) - 1.0, abs=0.11)
            finished += 1
        returns[dones] = 0.0
        lengths[dones] = 0
    assert finished >= 24


def test_autoreset_infos_match_sync_vector_env_same_step(make_vec_env) -> None:
    """Same actions, same results and info layout as SyncVectorEnv over UnityGymEnvs."""
    unity = make_vec_env("Basic", 2)
    sync = SyncVectorEnv(
        [lambda: UnityGymEnv("builtin:Basic", base_port=free_port()) for _ in range(2)],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )
    pids = [e.unwrapped.player_pid for e in sync.envs]  # type: ignore[attr-defined]
    try:
        assert np.array_equal(unity.reset()[0], sync.reset()[0])
        ends = 0
        for _ in range(9):  # both walk right: the episode ends at step 7
            actions = np.array([2, 2])
            a, b = unity.step(actions), sync.step(actions)
            for x, y in zip(a[:4], b[:4], strict=True):
                np.testing.assert_allclose(x, y, atol=1e-6)
            infos = {k: v for k, v in a[4].items() if not k.endswith("action_mask")}
            assert infos.keys() == b[4].keys()
            if "final_obs" in infos:
                ends += 1
                assert infos["final_info"] == b[4]["final_info"] == {}
                for key in ("_final_obs", "_final_info"):
                    assert np.array_equal(infos[key], b[4][key])
                for x, y in zip(infos["final_obs"], b[4]["final_obs"], strict=True):
                    np.testing.assert_array_equal(x, y)
        assert ends == 1
    finally:
        sync.close()
    assert all(process_gone(pid) for pid in pids)


def test_step_limit_truncates_with_the_final_observation(make_vec_env) -> None:
    env = make_vec_env("Basic", 1, additional_args=["--max-step", "5"])
    env.reset()
    for _ in range(10):
        obs, _, terminated, truncated, infos = env.step(np.array([0]))  # stay put
        if truncated[0]:
            break
    assert truncated.tolist() == [True] and terminated.tolist() == [False]
    assert infos["final_obs"][0].argmax() == 10 and obs[0].argmax() == 10


def _rollout(env: UnityVectorEnv, seed: int) -> list[np.ndarray]:
    obs, _ = env.reset(seed=seed)
    actions = np.full((env.num_envs, 2), 0.3, np.float32)
    return [obs] + [env.step(actions)[0] for _ in range(5)]


def test_reset_seed_reproduces_episodes(make_vec_env) -> None:
    env = make_vec_env("3DBall", 1)
    first = _rollout(env, 3)
    assert all(np.array_equal(a, b) for a, b in zip(first, _rollout(env, 3), strict=True))
    assert not np.array_equal(first[0], _rollout(env, 4)[0])


def test_masks_through_infos_call_and_attributes(make_vec_env) -> None:
    env = make_vec_env("GridWorld", 2)
    obs, infos = env.reset()
    assert obs.shape == (2, 3, 64, 84) and obs.dtype == np.uint8
    masks = infos["action_mask"]
    assert masks.shape == (2, 5) and masks.dtype == bool and infos["_action_mask"].all()
    assert np.array_equal(np.stack(env.call("action_masks")), masks)
    assert np.array_equal(env.action_masks(), masks)
    _, _, _, _, infos = env.step(np.array([0, 0]))
    assert np.array_equal(infos["action_mask"], env.action_masks())
    assert env.get_attr("port") == tuple(e.port for e in env.envs)
    env.set_attr("label", ["a", "b"])
    assert env.get_attr("label") == ("a", "b")


def test_killed_player_gives_a_clear_error_and_close_cleans_up(make_vec_env) -> None:
    env = make_vec_env("3DBall", 2)
    env.reset()
    pids = env.player_pids
    os.kill(pids[1], signal.SIGKILL)
    with pytest.raises(UnityEnvironmentException, match="SIGKILL"):
        for _ in range(3):
            env.step(np.zeros((24, 2), np.float32))
    env.close()
    assert all(process_gone(pid) for pid in pids)


def test_dict_spaces_batch_per_key(monkeypatch) -> None:
    monkeypatch.setattr(
        "unity_gym.player_set.open_environments",
        lambda settings, count: [HybridPlayer() for _ in range(count)],
    )
    env = UnityVectorEnv("hybrid", 2)
    assert env.num_envs == 2
    assert env.observation_space["camera"].shape == (2, 1, 2, 2)  # type: ignore[index]
    obs, infos = env.reset()
    assert obs["position"].shape == (2, 2) and infos["action_mask"].shape == (2, 3)
    action = {"continuous": np.array([[0.5], [-0.5]], np.float32), "discrete": np.array([1, 2])}
    obs, *_ = env.step(action)
    assert obs["position"][:, 1].tolist() == [0.5, -0.5]
    assert obs["camera"][:, 0, 0, 0].tolist() == [128, 255]
    for _ in range(2):
        obs, rewards, terminated, _, infos = env.step(env.action_space.sample())
    assert terminated.all() and rewards.tolist() == [10.0, 10.0]
    assert [f["position"][0] for f in infos["final_obs"]] == [3.0, 3.0]
    assert obs["position"][:, 0].tolist() == [0.0, 0.0]
    env.close()
