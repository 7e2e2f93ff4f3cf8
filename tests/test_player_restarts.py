"""Crashed and hung players are restarted within mlagents-learn's limits; every adapter gets it
through PlayerSet, and nothing is left running."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from tests.conftest import live_children, process_gone
from unity_gym.exception import UnityPlayerExitedException, UnityRestartLimitException
from unity_gym.pettingzoo_env import UnityParallelEnv
from unity_gym.restart_policy import RestartBudget, RestartPolicy
from unity_gym.sb3_vec_env import UnityVecEnv

NO_RATE_LIMIT = RestartPolicy(max_lifetime_restarts=10, restarts_rate_limit_n=-1)


def _wait_gone(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not process_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return process_gone(pid)


def test_killed_player_is_restarted_and_its_agents_end_truncated() -> None:
    before = live_children()
    env = UnityVecEnv("builtin:3DBall", n_envs=2, seed=0, restart_policy=NO_RATE_LIMIT)
    try:
        env.reset()
        zeros = np.zeros((24, 2), np.float32)
        for _ in range(3):
            env.step(zeros)
        killed = env.envs[0].player_pid
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        ended = np.zeros(24, bool)
        for _ in range(3):
            _, _, dones, infos = env.step(zeros)
            for i in np.flatnonzero(dones):
                ended[i] = True
                if i < 12:
                    assert infos[i]["TimeLimit.truncated"] is True
                    assert infos[i]["terminal_observation"].shape == (8,)
        assert ended[:12].all() and not ended[12:].any()
        assert env.envs[0].player_pid not in (None, killed)
        assert _wait_gone(killed)
        obs, *_ = env.step(zeros)
        assert obs.shape == (24, 8) and np.isfinite(obs).all()
    finally:
        env.close()
    assert live_children() <= before


def test_hung_player_is_restarted_after_timeout_wait() -> None:
    before = live_children()
    env = UnityVecEnv("builtin:Basic", seed=0, timeout_wait=6, restart_policy=NO_RATE_LIMIT)
    try:
        env.reset()
        hung = env.envs[0].player_pid
        assert hung is not None
        os.kill(hung, signal.SIGSTOP)
        start = time.monotonic()
        _, _, dones, infos = env.step(np.array([2]))
        assert 5 <= time.monotonic() - start < 30
        assert dones[0] and infos[0]["TimeLimit.truncated"] is True
        assert env.envs[0].player_pid != hung and _wait_gone(hung)
        env.step(np.array([2]))
    finally:
        env.close()
    assert live_children() <= before


def test_the_limit_ends_with_the_count_and_leaves_nothing_running() -> None:
    before = live_children()
    policy = RestartPolicy(max_lifetime_restarts=1, restarts_rate_limit_n=-1)
    env = UnityVecEnv("builtin:Basic", seed=0, restart_policy=policy)
    try:
        env.reset()
        first = env.envs[0].player_pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        env.step(np.array([2]))
        second = env.envs[0].player_pid
        assert second is not None and second != first
        os.kill(second, signal.SIGKILL)
        with pytest.raises(
            UnityRestartLimitException, match=r"Player 0 failed again after 1 restarts.*SIGKILL"
        ):
            for _ in range(3):
                env.step(np.array([2]))
    finally:
        env.close()
    assert live_children() <= before


def test_without_a_policy_a_crash_is_raised_as_before() -> None:
    env = UnityVecEnv("builtin:Basic", seed=0)
    try:
        env.reset()
        pid = env.envs[0].player_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(UnityPlayerExitedException, match="SIGKILL"):
            for _ in range(3):
                env.step(np.array([2]))
    finally:
        env.close()


def test_pettingzoo_game_survives_a_crash_its_agents_truncated() -> None:
    env = UnityParallelEnv("builtin:Tennis", seed=1, restart_policy=NO_RATE_LIMIT)
    try:
        env.reset()
        pid = env.player_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        actions = {agent: env.action_space(agent).sample() for agent in env.agents}
        _, _, terminations, truncations, _ = env.step(actions)
        assert all(truncations.values()) and not any(terminations.values())
        assert env.agents == []
        observations, _ = env.reset()
        assert len(observations) == 2 and env.player_pid not in (None, pid)
    finally:
        env.close()


def test_rate_limit_counts_restarts_within_the_period() -> None:
    budget = RestartBudget(RestartPolicy(10, 2, 0.3))
    error = UnityPlayerExitedException("exited")
    budget.take(0, error)
    budget.take(0, error)
    budget.take(1, error)  # limits hold per player
    with pytest.raises(UnityRestartLimitException, match=r"2 restarts within 0.3 s"):
        budget.take(0, error)
    time.sleep(0.35)
    budget.take(0, error)
    assert budget.restarts_of(0) == 3 and budget.total == 4
    lifetime = RestartBudget(RestartPolicy(0, -1, 60))
    with pytest.raises(UnityRestartLimitException, match="max_lifetime_restarts=0"):
        lifetime.take(0, error)
    unlimited = RestartBudget(RestartPolicy(-1, -1, 60))
    for _ in range(50):
        unlimited.take(0, error)


def test_restarted_player_plays_the_environment_parameters_current_then() -> None:
    """A lesson change reaches a player started after it: 3DBall keeps every ball without
    gravity, and the replacement of a killed player drops them with the gravity set since."""
    before = live_children()
    env = UnityVecEnv(
        "builtin:3DBall",
        n_envs=1,
        seed=0,
        restart_policy=NO_RATE_LIMIT,
        environment_parameters={"gravity": 0.0},
    )
    rng = np.random.default_rng(0)
    try:
        env.reset()
        for _ in range(100):
            _, _, dones, _ = env.step(rng.uniform(-1, 1, (12, 2)).astype(np.float32))
            assert not dones.any()
        # Read at each episode's start, and these weightless episodes never end...
        env.set_environment_parameters({"gravity": 9.81})
        killed = env.envs[0].player_pid
        assert killed is not None
        os.kill(killed, signal.SIGKILL)  # ... but the new player's first episodes have it.
        _, _, dones, _ = env.step(np.zeros((12, 2), np.float32))
        assert dones.all()  # the killed player's episodes, cut short
        fell = 0
        for _ in range(200):
            _, _, dones, _ = env.step(rng.uniform(-1, 1, (12, 2)).astype(np.float32))
            fell += int(dones.sum())
        assert fell >= 6
    finally:
        env.close()
    assert live_children() <= before
