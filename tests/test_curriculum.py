"""Curriculum (sb3_ext.curriculum): ML-Agents' lesson rules, and the callback for plain SB3
scripts on a Gymnasium environment and on a built-in Unity player."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

import gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

from sb3_ext.curriculum import (
    CompletionCriteria,
    Curriculum,
    CurriculumCallback,
    Lesson,
    ParameterValue,
    channel_sink,
    describe_value,
)
from unity_gym.side_channel.environment_parameters_channel import (
    EnvironmentParametersChannel,
    ParameterSampler,
    SamplerTypes,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- need_increment: ML-Agents' rule ----------------------------------------------------------


def test_progress_measure_moves_on_past_the_threshold_only() -> None:
    criteria = CompletionCriteria("B", measure="progress", threshold=0.3)
    assert criteria.need_increment(0.3, [], 0.0) == (False, 0.0)  # strictly greater
    assert criteria.need_increment(0.31, [], 0.0) == (True, 0.0)


def test_min_lesson_length_counts_episodes_for_both_measures() -> None:
    progress = CompletionCriteria("B", measure="progress", threshold=0.1, min_lesson_length=3)
    assert progress.need_increment(0.9, [1.0, 1.0], 0.0)[0] is False
    assert progress.need_increment(0.9, [1.0, 1.0, 1.0], 0.0)[0] is True
    reward = CompletionCriteria("B", threshold=0.5, min_lesson_length=2, signal_smoothing=False)
    assert reward.need_increment(0.0, [9.0], 0.0)[0] is False
    assert reward.need_increment(0.0, [9.0, 9.0], 0.0)[0] is True


def test_reward_measure_smooths_a_quarter_old_three_quarters_new() -> None:
    criteria = CompletionCriteria("B", threshold=0.7)
    done, smoothed = criteria.need_increment(0.0, [0.8, 1.0], 0.0)
    assert smoothed == pytest.approx(0.675) and not done  # 0.25 * 0 + 0.75 * 0.9
    done, smoothed = criteria.need_increment(0.0, [0.8, 1.0], smoothed)
    assert smoothed == pytest.approx(0.25 * 0.675 + 0.75 * 0.9) and done
    plain = CompletionCriteria("B", threshold=0.7, signal_smoothing=False)
    assert plain.need_increment(0.0, [0.8, 1.0], 0.123) == (True, 0.123)
    # No episode yet, or NaN returns: no change, smoothing untouched.
    assert criteria.need_increment(1.0, [], 0.5) == (False, 0.5)
    assert criteria.need_increment(1.0, [float("nan")], 0.5) == (False, 0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"measure": "progress", "threshold": 1.5}, "between 0 and 1"),
        ({"measure": "progress", "threshold": -0.1}, "between 0 and 1"),
        ({"measure": "Elo"}, "'reward' or 'progress'"),
        ({"min_lesson_length": -1}, "cannot be negative"),
    ],
)
def test_bad_criteria_say_what_to_fix(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CompletionCriteria("B", **kwargs)


# -- Curriculum -----------------------------------------------------------------------------------


def _progress_chain(behavior: str, *thresholds: float) -> list[Lesson]:
    lessons = [
        Lesson(f"L{i}", float(i), CompletionCriteria(behavior, measure="progress", threshold=t))
        for i, t in enumerate(thresholds)
    ]
    return [*lessons, Lesson(f"L{len(thresholds)}", float(len(thresholds)))]


def test_at_most_one_lesson_per_parameter_per_update() -> None:
    curriculum = Curriculum({"wall": _progress_chain("B", 0.1, 0.2, 0.3)})
    seen = []
    for _ in range(5):  # progress is past every threshold at once
        update = curriculum.update({"B": 0.9})
        seen.append(curriculum.lesson_numbers["wall"])
        assert len(update.changes) <= 1
    assert seen == [1, 2, 3, 3, 3]  # the last lesson never ends


def test_criteria_of_a_behavior_that_does_not_train_wait() -> None:
    curriculum = Curriculum({"wall": _progress_chain("Other", 0.1)})
    assert not curriculum.update({"B": 1.0})
    assert curriculum.lesson_numbers == {"wall": 0}


def test_a_change_clears_every_return_buffer_and_says_whether_to_reset() -> None:
    reward = CompletionCriteria("A", threshold=0.5, signal_smoothing=False, require_reset=True)
    curriculum = Curriculum(
        {
            "a": [Lesson("a0", 0.0, reward), Lesson("a1", 1.0)],
            "b": [
                Lesson("b0", 0.0, CompletionCriteria("B", threshold=100.0, min_lesson_length=4)),
                Lesson("b1", 1.0),
            ],
        }
    )
    assert curriculum.reward_buffer_size("A") == 1 and curriculum.reward_buffer_size("B") == 4
    for value in (1.0, 2.0, 3.0, 4.0, 5.0):
        curriculum.record_episode("B", value)
    assert curriculum.returns.of("B") == [2.0, 3.0, 4.0, 5.0]  # the last four
    curriculum.record_episode("A", 0.2)
    assert not curriculum.update({"A": 0.0, "B": 0.0})
    curriculum.record_episode("A", 0.9)
    update = curriculum.update({"A": 0.0, "B": 0.0})
    assert [c.parameter for c in update.changes] == ["a"] and update.require_reset
    assert update.changes[0].message() == (
        "Parameter 'a' is in lesson 'a1' and has value 'Float: value=1.0'."
    )
    assert curriculum.returns.of("A") == [] and curriculum.returns.of("B") == []
    assert curriculum.values() == {"a": 1.0, "b": 0.0}


def test_state_dict_is_training_status_layout_and_restores() -> None:
    chain = _progress_chain("B", 0.1, 0.2)
    curriculum = Curriculum({"wall": chain, "gravity": [Lesson("gravity", 9.81)]})
    curriculum.update({"B": 0.15})
    assert curriculum.state_dict() == {"wall": {"lesson_num": 1}, "gravity": {"lesson_num": 0}}
    again = Curriculum({"wall": chain, "gravity": [Lesson("gravity", 9.81)]})
    again.load_state_dict(curriculum.state_dict())
    assert again.lesson("wall").name == "L1" and again.values()["wall"] == 1.0
    again.load_state_dict({"wall": {"lesson_num": 7}})  # a shorter curriculum than saved
    assert again.lesson_numbers["wall"] == 2
    with pytest.raises(ValueError, match="negative"):
        again.load_state_dict({"wall": {"lesson_num": -1}})


def test_a_lesson_before_the_last_needs_criteria() -> None:
    with pytest.raises(ValueError, match=r"Lesson 0 \('easy'\) of environment parameter 'wall'"):
        Curriculum({"wall": [Lesson("easy", 1.0), Lesson("hard", 2.0)]})


def test_values_are_described_as_mlagents_prints_them() -> None:
    assert describe_value(2.0) == "Float: value=2.0"
    uniform = ParameterSampler(SamplerTypes.UNIFORM, (4.0, 7.0), 1)
    assert describe_value(uniform) == "Uniform sampler: min=4.0, max=7.0"
    gaussian = ParameterSampler(SamplerTypes.GAUSSIAN, (1.0, 0.5), 1)
    assert describe_value(gaussian) == "Gaussian sampler: mean=1.0, stddev=0.5"
    ranges = ParameterSampler(SamplerTypes.MULTIRANGEUNIFORM, (0.0, 1.0, 2.0, 3.0), 1)
    assert describe_value(ranges) == (
        "MultiRangeUniform sampler: intervals=[[0.0, 1.0], [2.0, 3.0]]"
    )


# -- the callback on a plain Gymnasium environment ------------------------------------------------


class _Reach(gym.Env[np.ndarray, int]):
    """Walk right to a goal at distance ``distance`` (a parameter); reward 1 there."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self.distance = 1
        self.position = 0
        self.t = 0
        self.applied: list[float] = []

    def set_distance(self, value: float) -> None:
        self.applied.append(value)
        self.distance = int(value)

    def _obs(self) -> np.ndarray:
        return np.array([self.position / 10.0], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.position, self.t = 0, 0
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.position += 1 if action == 1 else -1
        self.t += 1
        reached = self.position >= self.distance
        return self._obs(), float(reached), reached, self.t >= 20, {}


def _sink(venv: DummyVecEnv) -> Any:
    def apply(values: dict[str, ParameterValue]) -> None:
        value = values["distance"]
        assert not isinstance(value, ParameterSampler)
        venv.env_method("set_distance", value)

    return apply


def test_callback_advances_on_reward_and_applies_every_lesson_on_a_gymnasium_env() -> None:
    venv = DummyVecEnv([_Reach, _Reach])
    # Mean return over 0.8 (smoothed) in the last 20 episodes: beyond a random walk from
    # distance 5 on, so each later lesson starts once the policy learned to head right.
    criteria = CompletionCriteria("Reach", threshold=0.8, min_lesson_length=20)
    curriculum = Curriculum(
        {
            "distance": [
                Lesson("near", 2.0, criteria),
                Lesson("middle", 5.0, criteria),
                Lesson("far", 9.0),
            ]
        }
    )
    callback = CurriculumCallback(curriculum, _sink(venv), behavior="Reach")
    model = PPO("MlpPolicy", VecMonitor(venv), n_steps=64, batch_size=64, seed=0, verbose=0)
    logs: list[dict[str, Any]] = []
    logger = configure(None, [])
    logger.dump = lambda step=0: logs.append(dict(logger.name_to_value))  # type: ignore[method-assign]
    model.set_logger(logger)
    model.learn(3000, callback=callback)
    assert curriculum.lesson_numbers["distance"] == 2
    assert venv.get_attr("applied") == [[2.0, 5.0, 9.0]] * 2  # at the start, then per change
    # The last lesson is solved: a random walk of 20 steps almost never gets 9 to the right.
    recent = [episode["r"] for episode in list(model.ep_info_buffer)[-20:]]
    assert np.mean(recent) > 0.8
    assert logs and logs[-1]["Environment/Lesson Number/distance"] == 2


def test_progress_is_measured_against_the_learn_budget_or_max_steps() -> None:
    venv = DummyVecEnv([_Reach])
    chain = _progress_chain("Reach", 0.5)
    chain = [Lesson(lesson.name, lesson.value + 1, lesson.completion_criteria) for lesson in chain]
    changed_at: list[int] = []

    class Watch(CurriculumCallback):
        def _on_step(self) -> bool:
            before = dict(self.curriculum.lesson_numbers)
            result = super()._on_step()
            if self.curriculum.lesson_numbers != before:
                changed_at.append(self.num_timesteps)
            return result

    model = PPO("MlpPolicy", VecMonitor(venv), n_steps=32, batch_size=32, seed=0)
    model.learn(320, callback=Watch(Curriculum({"distance": chain}), _sink(venv), "Reach"))
    assert changed_at == [161]  # the first step past half of 320
    changed_at.clear()
    model = PPO("MlpPolicy", VecMonitor(venv), n_steps=32, batch_size=32, seed=0)
    watch = Watch(Curriculum({"distance": chain}), _sink(venv), "Reach", max_steps=100)
    model.learn(320, callback=watch)
    assert changed_at == [51]


# -- the callback on a built-in Unity player ------------------------------------------------------


def test_require_reset_restarts_the_unity_players_with_the_new_lesson(tmp_path: Any) -> None:
    """3DBall without gravity never drops a ball; the lesson with gravity does, right after
    the reset that ``require_reset`` asks for."""
    from tests.conftest import free_port
    from unity_gym.sb3_vec_env import UnityVecEnv

    criteria = CompletionCriteria("3DBall", measure="progress", threshold=0.5, require_reset=True)
    curriculum = Curriculum(
        {"gravity": [Lesson("weightless", 0.0, criteria), Lesson("earth", 9.81)]}
    )
    # The first lesson's values go out with the players' first reset.
    venv = UnityVecEnv(
        "builtin:3DBall",
        1,
        base_port=free_port(),
        seed=1,
        environment_parameters=curriculum.values(),
    )
    ends: list[int] = []

    class Count(CurriculumCallback):
        def _on_step(self) -> bool:
            ends.extend([self.num_timesteps] * int(np.sum(self.locals["dones"])))
            return super()._on_step()

    try:
        model = PPO("MlpPolicy", VecMonitor(venv), n_steps=20, batch_size=60, seed=0)
        model.learn(2400, callback=Count(curriculum, venv.set_environment_parameters, "3DBall"))
    finally:
        with contextlib.suppress(Exception):
            venv.close()
    assert curriculum.lesson_numbers == {"gravity": 1}
    assert ends and min(ends) > 1200  # no ball fell before the lesson with gravity
    assert len(ends) >= 12  # and with it, every platform dropped its ball at least once


def test_channel_sink_queues_every_value_on_every_channel() -> None:
    channels = [EnvironmentParametersChannel(), EnvironmentParametersChannel()]
    sink = channel_sink(channels)
    sink({"wall": 2.0, "mass": ParameterSampler(SamplerTypes.UNIFORM, (0.5, 10.0), 4)})
    expected = EnvironmentParametersChannel()
    expected.set_float_parameter("wall", 2.0)
    expected.set_uniform_sampler_parameters("mass", 0.5, 10.0, 4)
    for channel in channels:
        assert channel.message_queue == expected.message_queue
