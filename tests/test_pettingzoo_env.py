"""PettingZoo adapters on the built-in players: API tests, two-team games, masks, failures."""

from __future__ import annotations

import os
import re
import signal
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pettingzoo")

from gymnasium import spaces
from pettingzoo.test import api_test, parallel_api_test

from tests.conftest import free_port
from tests.test_gym_env import live_children, process_gone
from unity_gym.exception import UnityEnvironmentException
from unity_gym.pettingzoo_env import UnityAECEnv, UnityParallelEnv, agent_name

TENNIS_AGENT = re.compile(r"^Tennis\?team=([01])\?agent_id=(\d+)$")
# What PettingZoo's checkers say about choices the brief makes on purpose: agent names that are
# not "player_0", unbounded vector observations (as ML-Agents), dict observations with masks.
EXPECTED_WARNINGS = (
    "infinity",
    "<descriptor>_<number>",
    "Observation is not a NumPy array",
    "probably should be gymnasium.spaces.box",
)

Env = UnityParallelEnv | UnityAECEnv


@pytest.fixture
def open_env() -> Iterator[Callable[..., Any]]:
    """Opens adapters on free ports and always closes them, checking their players end."""
    opened: list[Env] = []

    def make(kind: type[Env], name: str, **kwargs: Any) -> Any:
        env = kind(f"builtin:{name}", base_port=free_port(), timeout_wait=30, **kwargs)
        opened.append(env)
        return env

    yield make
    for env in opened:
        parallel = env.unwrapped
        assert isinstance(parallel, UnityParallelEnv)
        pid = parallel.player_pid
        env.close()
        assert pid is None or process_gone(pid), f"player {pid} survived close()"


def checked(test: Callable[..., None], env: Env, num_cycles: int) -> None:
    """Run a PettingZoo API test; any warning beyond the expected ones fails."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        test(env, num_cycles=num_cycles)
    unexpected = {
        str(w.message)
        for w in caught
        if not any(expected in str(w.message) for expected in EXPECTED_WARNINGS)
    }
    assert not unexpected


def count_unity_resets(env: UnityParallelEnv, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    unity = env.unity_env
    original = unity.reset

    def counted() -> None:
        calls[0] += 1
        original()

    monkeypatch.setattr(unity, "reset", counted)
    return calls


def random_actions(env: UnityParallelEnv) -> dict[str, Any]:
    return {agent: env.action_space(agent).sample() for agent in env.agents}


# -- PettingZoo's own checks ---------------------------------------------------------------


def test_parallel_api_test_passes_on_tennis(open_env) -> None:
    env = open_env(UnityParallelEnv, "Tennis", num_areas=2)
    checked(parallel_api_test, env, num_cycles=400)


def test_aec_api_test_passes_on_tennis(open_env) -> None:
    env = open_env(UnityAECEnv, "Tennis")
    checked(api_test, env, num_cycles=200)


def test_aec_api_test_passes_on_a_masked_discrete_builtin(open_env) -> None:
    env = open_env(UnityAECEnv, "GridWorld")
    checked(api_test, env, num_cycles=60)


# -- the two-team game ---------------------------------------------------------------------


def test_random_two_team_rollout_is_zero_sum_point_by_point(open_env) -> None:
    env = open_env(UnityParallelEnv, "Tennis", num_areas=2, seed=1)
    assert env.behavior_names == ["Tennis?team=0", "Tennis?team=1"]
    for agent in env.possible_agents:
        env.action_space(agent).seed(7)
    points = games = 0
    env.reset()
    for _ in range(300):
        if not env.agents:
            games += 1
            env.reset()
        agents = list(env.agents)
        assert len(env.possible_agents) == 4
        assert all(TENNIS_AGENT.match(a) for a in env.possible_agents)
        obs, rewards, terminated, truncated, infos = env.step(random_actions(env))
        assert set(obs) == set(rewards) == set(terminated) == set(infos) == set(agents)
        assert all(o.shape == (12,) and o.dtype == np.float32 for o in obs.values())
        assert sum(rewards.values()) == 0.0
        done = [a for a in agents if terminated[a] or truncated[a]]
        teams = [TENNIS_AGENT.match(a).group(1) for a in done]  # type: ignore[union-attr]
        assert teams.count("0") == teams.count("1")  # both agents of an area end together
        points += sum(1 for a in done if rewards[a] == 1.0)
        assert {abs(r) for a, r in rewards.items() if a in done} <= {0.0, 1.0}
        assert set(env.agents) == set(agents) - set(done)
    assert points >= 3 and games >= 1


def test_a_finished_game_restarts_without_a_unity_reset(open_env, monkeypatch) -> None:
    env = open_env(UnityParallelEnv, "Tennis")
    first, _ = env.reset()
    resets = count_unity_resets(env, monkeypatch)
    for _ in range(500):
        env.step({agent: np.zeros(2, np.float32) for agent in env.agents})
        if not env.agents:
            break
    assert not env.agents
    with pytest.raises(RuntimeError, match="call reset"):
        env.step({})
    obs, infos = env.reset()
    assert resets[0] == 0  # Unity had already restarted both agents
    assert set(obs) == set(env.agents) == set(env.possible_agents) == set(infos)
    # Named after the agents holding the slots: Unity gives each episode a new agent id, the
    # built-in players keep theirs.
    assert set(obs) == set(first)
    for o in obs.values():
        assert o[0] == -4.0  # each agent where a point starts
    env.step({agent: np.zeros(2, np.float32) for agent in env.agents})
    obs, _ = env.reset()  # in the middle of a game: a real Unity reset
    assert resets[0] == 1
    assert all(o[5] == 4.0 for o in obs.values())  # the serve is dropped from height 4


def test_reset_with_a_seed_restarts_the_player_and_replays_its_games(open_env) -> None:
    env = open_env(UnityParallelEnv, "Tennis", seed=0)
    pid = env.player_pid
    env.reset(seed=0)  # the seed the player was opened with: no restart
    assert env.player_pid == pid
    seeded, _ = env.reset(seed=5)
    assert env.player_pid != pid and process_gone(pid)
    again, _ = env.reset(seed=5)
    assert list(again) == list(seeded)
    for agent in seeded:
        np.testing.assert_array_equal(again[agent], seeded[agent])


def test_a_subset_of_behaviors_can_be_chosen(open_env) -> None:
    env = open_env(UnityParallelEnv, "Tennis", behavior_names=["Tennis?team=1"])
    obs, _ = env.reset()
    assert list(obs) == env.agents and len(obs) == 1
    assert env.agents[0].startswith("Tennis?team=1?agent_id=")
    obs, *_ = env.step(random_actions(env))
    assert list(obs) == env.agents


# -- discrete actions ----------------------------------------------------------------------


def test_discrete_observations_carry_the_action_mask(open_env) -> None:
    env = open_env(UnityParallelEnv, "GridWorld")
    obs, _ = env.reset()
    [agent] = env.agents
    assert agent == agent_name("GridWorld", 0) == "GridWorld?team=0?agent_id=0"
    space = env.observation_space(agent)
    assert isinstance(space, spaces.Dict) and set(space) == {"observation", "action_mask"}
    assert space["observation"] == spaces.Box(0, 255, (3, 64, 84), np.uint8)
    assert env.action_space(agent) == spaces.Discrete(5)
    blocked = 0
    for _ in range(40):
        if not env.agents:
            obs, _ = env.reset()
        [agent] = env.agents
        mask = obs[agent]["action_mask"]
        assert obs[agent] in env.observation_space(agent)
        assert mask.dtype == np.int8 and mask.shape == (5,) and mask[0] == 1
        blocked += int(mask.min() == 0)
        action = env.action_space(agent).sample(mask=mask)
        obs, *_ = env.step({agent: action})
    assert blocked  # moves into a wall were masked at some point


# -- misuse and failures -------------------------------------------------------------------


def test_misuse_gives_clear_errors(open_env) -> None:
    env = open_env(UnityParallelEnv, "Tennis")
    env.reset()
    with pytest.raises(KeyError, match="Unknown agents"):
        env.step({"Tennis?team=0?agent_id=99": np.zeros(2)})
    with pytest.raises(KeyError, match="not an agent name"):
        env.observation_space("player_0")
    with pytest.raises(NotImplementedError):
        env.state()
    assert env.render() is None and env.render_mode is None


def test_an_unknown_behavior_is_a_clear_error_and_leaves_no_process() -> None:
    before = live_children()
    with pytest.raises(UnityEnvironmentException, match=r"\['Walker'\] are not in this scene"):
        UnityParallelEnv("builtin:Tennis", ["Walker"], base_port=free_port(), timeout_wait=30)
    assert live_children() <= before


def test_a_killed_player_gives_a_clear_error_and_close_cleans_up(open_env) -> None:
    env = open_env(UnityParallelEnv, "Tennis")
    env.reset()
    pid = env.player_pid
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(UnityEnvironmentException, match="SIGKILL"):
        for _ in range(3):
            env.step(random_actions(env))
    env.close()
    env.close()  # closing twice is fine
    assert process_gone(pid) and env.player_pid is None
