"""UnityGymEnv: Gymnasium's and SB3's checkers, episode ends, seeding, masks, failures."""

from __future__ import annotations

import os
import signal
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from tests.conftest import free_port, live_children, process_gone
from unity_gym import UnityGymEnv
from unity_gym.base_env import (
    ActionSpec,
    ActionTuple,
    BehaviorSpec,
    DecisionSteps,
    DimensionProperty,
    ObservationSpec,
    ObservationType,
    TerminalSteps,
)
from unity_gym.exception import UnityEnvironmentException


@pytest.fixture
def make_env() -> Iterator[Callable[..., UnityGymEnv]]:
    """Opens UnityGymEnvs on free ports and always closes them, checking their players end."""
    opened: list[UnityGymEnv] = []

    def make(name: str, **kwargs: Any) -> UnityGymEnv:
        env = UnityGymEnv(f"builtin:{name}", base_port=free_port(), timeout_wait=30, **kwargs)
        opened.append(env)
        return env

    yield make
    for env in opened:
        pid = env.player_pid
        env.close()
        assert pid is None or process_gone(pid), f"player {pid} survived close()"


def _checked(check: Callable[[Any], None], env: UnityGymEnv) -> None:
    with warnings.catch_warnings():
        # spaces.py gives vector observations infinite bounds, as ML-Agents does.
        warnings.filterwarnings("ignore", message=".*infinity")
        warnings.filterwarnings("ignore", message=".*not having a spec")
        check(env)


@pytest.mark.parametrize("name", ["Basic", "GridWorld"])
def test_gymnasium_and_sb3_checkers_pass(make_env, name: str) -> None:
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = make_env(name)
    _checked(check_env, env)
    _checked(sb3_check_env, env)


def test_spaces_and_step_types(make_env) -> None:
    env = make_env("GridWorld")
    assert env.observation_space == spaces.Box(0, 255, (3, 64, 84), np.uint8)
    assert env.action_space == spaces.Discrete(5)
    obs, info = env.reset()
    assert obs.shape == (3, 64, 84) and obs.dtype == np.uint8 and info == {}
    obs, reward, terminated, truncated, info = env.step(0)
    assert obs in env.observation_space
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
    masks = env.action_masks()
    assert masks.shape == (5,) and masks.dtype == bool and masks.any()


def _count_unity_resets(env: UnityGymEnv, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    unity = env.unity_env
    original = unity.reset

    def counted() -> None:
        calls[0] += 1
        original()

    monkeypatch.setattr(unity, "reset", counted)
    return calls


def test_episode_end_returns_the_final_obs_and_reset_reuses_unitys_restart(
    make_env, monkeypatch
) -> None:
    env = make_env("Basic")
    start, _ = env.reset()
    assert start.argmax() == 10
    resets = _count_unity_resets(env, monkeypatch)
    total, steps = 0.0, 0
    for _ in range(10):
        obs, reward, terminated, truncated, _ = env.step(2)  # right, towards the large goal
        total += reward
        steps += 1
        if terminated or truncated:
            break
    assert steps == 7 and terminated and not truncated
    assert obs.argmax() == 17  # the final observation, at the goal
    assert total == pytest.approx(0.93, abs=1e-5)
    obs, _ = env.reset()
    assert obs.argmax() == 10 and resets[0] == 0  # Unity had already restarted the agent
    env.step(2)
    obs, _ = env.reset()  # mid-episode: a real Unity reset
    assert obs.argmax() == 10 and resets[0] == 1


def test_step_limit_truncates(make_env) -> None:
    env = make_env("Basic", additional_args=["--max-step", "5"])
    env.reset()
    for _ in range(10):
        _, _, terminated, truncated, _ = env.step(0)  # stay: never reaches a goal
        if terminated or truncated:
            break
    assert truncated and not terminated


def _episode(env: UnityGymEnv, seed: int | None, steps: int = 6) -> list[np.ndarray]:
    obs, _ = env.reset(seed=seed)
    trajectory = [obs]
    for action in [3, 1, 4, 1, 0, 2][:steps]:
        trajectory.append(env.step(action)[0])
    return trajectory


def test_reset_seed_restarts_the_player_and_reproduces_episodes(make_env) -> None:
    env = make_env("GridWorld", seed=5)
    first_pid = env.player_pid
    unseeded = _episode(env, None)  # the constructor's seed, no restart
    assert env.player_pid == first_pid
    again = _episode(env, 5)
    assert env.player_pid != first_pid and process_gone(first_pid)
    assert all(np.array_equal(a, b) for a, b in zip(unseeded, again, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(again, _episode(env, 5), strict=True))
    starts = {_episode(env, seed, 0)[0].tobytes() for seed in (5, 6, 7)}
    assert len(starts) > 1


def test_maskable_ppo_only_picks_allowed_actions(make_env) -> None:
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    env = make_env("GridWorld")
    chosen: list[bool] = []
    step = env.step

    def recording_step(action: Any) -> Any:
        chosen.append(bool(env.action_masks()[int(action)]))
        return step(action)

    env.step = recording_step
    model = MaskablePPO(
        "CnnPolicy", DummyVecEnv([lambda: env]), n_steps=32, batch_size=32, n_epochs=1
    )
    model.learn(64)
    assert len(chosen) >= 64 and all(chosen)


def test_several_agents_are_refused_with_a_pointer_to_the_vector_envs() -> None:
    before = live_children()
    with pytest.raises(UnityEnvironmentException, match=r"12 agents.*UnityVectorEnv"):
        UnityGymEnv("builtin:3DBall", base_port=free_port())
    assert live_children() <= before


def test_unknown_behavior_is_refused_with_the_choices() -> None:
    before = live_children()
    with pytest.raises(UnityEnvironmentException, match="its behaviors are: Basic"):
        UnityGymEnv("builtin:Basic", base_port=free_port(), behavior_name="Nope")
    assert live_children() <= before


def test_behavior_name_may_leave_out_the_team(make_env) -> None:
    env = make_env("Basic", behavior_name="Basic")
    assert env.behavior_name == "Basic?team=0"  # the name Unity sends


def test_killed_player_gives_a_clear_error_and_close_cleans_up(make_env) -> None:
    env = make_env("Basic")
    env.reset()
    pid = env.player_pid
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(UnityEnvironmentException, match="SIGKILL"):
        for _ in range(3):
            env.step(0)
    env.close()
    env.close()  # closing twice is fine
    assert process_gone(pid)


def test_context_manager_ends_the_player() -> None:
    with UnityGymEnv("builtin:Basic", base_port=free_port()) as env:
        pid = env.player_pid
        env.reset()
    assert pid is not None and process_gone(pid)


# -- several observations and hybrid actions, on an in-process stand-in ---------------------

HYBRID = BehaviorSpec(
    [
        ObservationSpec((2,), (DimensionProperty.NONE,), ObservationType.DEFAULT, "position"),
        ObservationSpec(
            (1, 2, 2),
            (DimensionProperty.TRANSLATIONAL_EQUIVARIANCE,) * 2 + (DimensionProperty.NONE,),
            ObservationType.DEFAULT,
            "camera",
        ),
    ],
    ActionSpec(1, (3,)),
)


class HybridPlayer:
    """One agent, a vector and a visual observation, hybrid actions; episodes last 3 steps.

    The observation carries the step count and the last actions, so a test can see what the
    adapter sent. Replaces a player process (``open_environments`` is patched to return it).
    """

    player_pid = None

    def __init__(self) -> None:
        self.behavior_specs: dict[str, BehaviorSpec] = {}
        self.agent = 0
        self.t = 0
        self.action = ActionTuple(np.zeros((1, 1), np.float32), np.zeros((1, 1), np.int32))

    def _obs(self, t: int) -> list[np.ndarray]:
        position = [float(t), float(self.action.continuous[0, 0])]
        camera = np.full((1, 1, 2, 2), self.action.discrete[0, 0] / 2.0, np.float32)
        return [np.array([position], np.float32), camera]

    def _decision(self) -> DecisionSteps:
        return DecisionSteps(
            obs=self._obs(self.t),
            reward=np.array([1.0], np.float32),
            agent_id=np.array([self.agent], np.int32),
            group_id=np.zeros(1, np.int32),
            group_reward=np.zeros(1, np.float32),
            action_mask=[np.array([[False, False, True]])],
        )

    def reset(self) -> None:
        self.behavior_specs = {"Hybrid": HYBRID}
        self.agent += 1
        self.t = 0
        self.steps = (self._decision(), TerminalSteps.empty(HYBRID))

    def get_steps(self, name: str) -> tuple[DecisionSteps, TerminalSteps]:
        return self.steps

    def set_actions(self, name: str, action: ActionTuple) -> None:
        self.action = action

    def step_async(self) -> None:
        self.t += 1

    def step_wait(self) -> None:
        terminals = TerminalSteps.empty(HYBRID)
        if self.t == 3:
            terminals = TerminalSteps(
                obs=self._obs(3),
                reward=np.array([10.0], np.float32),
                agent_id=np.array([self.agent], np.int32),
                group_id=np.zeros(1, np.int32),
                group_reward=np.zeros(1, np.float32),
                interrupted=np.array([False]),
            )
            self.agent += 1
            self.t = 0
        self.steps = (self._decision(), terminals)

    def close(self) -> None:
        pass


@pytest.fixture
def hybrid_players(monkeypatch) -> None:
    monkeypatch.setattr(
        "unity_gym.player_set.open_environments",
        lambda settings, count: [HybridPlayer() for _ in range(count)],
    )


@pytest.mark.usefixtures("hybrid_players")
def test_several_observations_and_hybrid_actions_are_dict_spaces() -> None:
    env = UnityGymEnv("hybrid")
    assert env.observation_space == spaces.Dict(
        position=spaces.Box(-np.inf, np.inf, (2,), np.float32),
        camera=spaces.Box(0, 255, (1, 2, 2), np.uint8),
    )
    assert env.action_space == spaces.Dict(
        continuous=spaces.Box(-1, 1, (1,), np.float32), discrete=spaces.Discrete(3)
    )
    _checked(check_env, env)
    env.reset()
    obs, reward, *_ = env.step({"continuous": np.array([0.5], np.float32), "discrete": 2})
    assert obs["position"].tolist() == [1.0, 0.5] and obs["camera"].max() == 255
    assert reward == 1.0
    assert env.action_masks().tolist() == [True, True, False]
    for _ in range(2):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert terminated and not truncated and reward == 10.0 and obs["position"][0] == 3.0
    assert env.reset()[0]["position"][0] == 0.0


@pytest.mark.usefixtures("hybrid_players")
def test_sb3_refuses_dict_actions_clearly() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = UnityGymEnv("hybrid")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(env, warn=True)
    assert any("not supported by Stable Baselines 3" in str(w.message) for w in caught)
    with pytest.raises(AssertionError, match="as action spaces but Dict"):
        PPO("MultiInputPolicy", env)
