"""gymnasium.make / make_vec ids for the built-in players and for any build."""

from __future__ import annotations

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")

from tests.conftest import free_port, live_children, process_gone
from unity_gym import UnityGymEnv, UnityVectorEnv
from unity_gym.exception import UnityEnvironmentException
from unity_gym.players import list_players
from unity_gym.registration import GENERIC_ID, builtin_id, register_envs


def test_every_builtin_and_the_generic_id_are_registered_without_starting_anything() -> None:
    before = live_children()
    register_envs()  # again: a no-op
    ids = [builtin_id(p.name) for p in list_players()]
    assert {"unity_gym/Basic-v0", "unity_gym/3DBall-v0", "unity_gym/GridWorld-v0"} <= set(ids)
    for env_id in [*ids, GENERIC_ID]:
        spec = gymnasium.spec(env_id)
        assert spec.entry_point is not None and spec.vector_entry_point is not None
    assert live_children() <= before


def test_make_gives_a_unity_gym_env() -> None:
    env = gymnasium.make("unity_gym:unity_gym/Basic-v0", base_port=free_port())
    pid = env.unwrapped.player_pid
    try:
        assert isinstance(env.unwrapped, UnityGymEnv)
        assert env.spec is not None and env.spec.id == "unity_gym/Basic-v0"
        obs, _ = env.reset()
        assert obs.shape == (20,)
        assert env.step(2)[1] == pytest.approx(-0.01)
    finally:
        env.close()
    assert pid is not None and process_gone(pid)


def test_make_of_a_several_agent_player_points_to_make_vec() -> None:
    before = live_children()
    with pytest.raises(UnityEnvironmentException, match=r'make_vec\("unity_gym/3DBall-v0"'):
        gymnasium.make("unity_gym/3DBall-v0")
    assert live_children() <= before


def test_make_vec_starts_num_envs_players_with_all_their_agents() -> None:
    env = gymnasium.make_vec("unity_gym/3DBall-v0", num_envs=2, base_port=free_port())
    pids = env.unwrapped.player_pids
    try:
        assert isinstance(env, UnityVectorEnv) and len(pids) == 2
        assert env.num_envs == 24 and env.spec is not None
        obs, _ = env.reset(seed=1)
        assert obs.shape == (24, 8)
        assert env.step(np.zeros((24, 2), np.float32))[1].shape == (24,)
    finally:
        env.close()
    assert all(pid is not None and process_gone(pid) for pid in pids)


def test_generic_id_takes_any_build() -> None:
    env = gymnasium.make(GENERIC_ID, file_name="builtin:GridWorld", base_port=free_port())
    pid = env.unwrapped.player_pid
    try:
        assert env.reset()[0].shape == (3, 64, 84)
        assert env.unwrapped.action_masks().shape == (5,)
    finally:
        env.close()
    assert pid is not None and process_gone(pid)


def test_make_of_a_multi_behavior_player_points_to_pettingzoo() -> None:
    before = live_children()
    with pytest.raises(UnityEnvironmentException, match="PettingZoo"):
        gymnasium.make("unity_gym/Tennis-v0")
    assert live_children() == before  # refused before starting anything
