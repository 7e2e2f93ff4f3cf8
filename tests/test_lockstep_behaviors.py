"""Several learners, one per behavior, stepping the same players together."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from unity_gym.env_group import WorkerSettings
from unity_gym.exception import UnityEnvironmentException
from unity_gym.lockstep_behaviors import LockstepBehaviors
from unity_gym.sb3_vec_env import UnityVecEnv


@pytest.fixture
def tennis(port: int):
    lockstep = LockstepBehaviors(
        WorkerSettings(file_name="builtin:Tennis", base_port=port, seed=3), n_players=1
    )
    try:
        yield lockstep
    finally:
        lockstep.close()


def _run_threads(targets: dict[str, object]) -> dict[str, BaseException]:
    errors: dict[str, BaseException] = {}

    def guard(name: str, target) -> None:  # type: ignore[no-untyped-def]
        try:
            target()
        except BaseException as err:
            errors[name] = err

    threads = [
        threading.Thread(target=guard, args=(name, target)) for name, target in targets.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a learner thread is stuck"
    return errors


def test_every_behavior_steps_together(tennis: LockstepBehaviors) -> None:
    assert sorted(tennis.behavior_names) == ["Tennis?team=0", "Tennis?team=1"]
    steps = {name: 0 for name in tennis.behavior_names}
    rewards = {name: 0.0 for name in tennis.behavior_names}

    def learner(name: str):  # type: ignore[no-untyped-def]
        venv = UnityVecEnv.from_batches(tennis.behavior(name))
        rng = np.random.default_rng(len(name))

        def run() -> None:
            venv.reset()
            for _ in range(300):
                actions = np.stack([venv.action_space.sample() for _ in range(venv.num_envs)])
                actions = np.clip(actions + rng.normal(0, 0.1, actions.shape), -1, 1)
                _, reward, _, _ = venv.step(actions)
                steps[name] += 1
                rewards[name] += float(reward.sum())

        return run

    errors = _run_threads({name: learner(name) for name in tennis.behavior_names})
    assert errors == {}
    assert steps == {name: 300 for name in tennis.behavior_names}
    # Zero-sum scene: what one team wins the other loses, so both saw the same exchanges.
    assert rewards["Tennis?team=0"] == pytest.approx(-rewards["Tennis?team=1"], abs=1e-3)


def test_a_retired_behavior_keeps_acting_through_its_autopilot(tennis: LockstepBehaviors) -> None:
    done = threading.Event()
    autopilot_calls = 0

    def autopilot(step):  # type: ignore[no-untyped-def]
        nonlocal autopilot_calls
        autopilot_calls += 1
        spec = tennis.specs["Tennis?team=1"].action_spec
        return spec.empty_action(len(step.rewards))

    def quitter() -> None:
        venv = UnityVecEnv.from_batches(tennis.behavior("Tennis?team=1"))
        venv.reset()
        for _ in range(5):
            venv.step(np.zeros((venv.num_envs, *venv.action_space.shape), np.float32))
        tennis.retire("Tennis?team=1", autopilot)
        done.set()

    def stayer() -> None:
        venv = UnityVecEnv.from_batches(tennis.behavior("Tennis?team=0"))
        venv.reset()
        for _ in range(50):
            venv.step(np.zeros((venv.num_envs, *venv.action_space.shape), np.float32))

    errors = _run_threads({"quitter": quitter, "stayer": stayer})
    assert errors == {}
    assert done.is_set()
    assert autopilot_calls == 45


def test_a_failing_learner_wakes_the_others(tennis: LockstepBehaviors) -> None:
    def failing() -> None:
        venv = UnityVecEnv.from_batches(tennis.behavior("Tennis?team=1"))
        venv.reset()
        venv.step(np.zeros((venv.num_envs, *venv.action_space.shape), np.float32))
        tennis.fail(RuntimeError("out of memory in the optimizer"))

    def waiting() -> None:
        venv = UnityVecEnv.from_batches(tennis.behavior("Tennis?team=0"))
        venv.reset()
        for _ in range(10):
            venv.step(np.zeros((venv.num_envs, *venv.action_space.shape), np.float32))

    errors = _run_threads({"failing": failing, "waiting": waiting})
    assert list(errors) == ["waiting"]
    assert isinstance(errors["waiting"], UnityEnvironmentException)
    assert "out of memory in the optimizer" in str(errors["waiting"])


def _zeros(venv: UnityVecEnv) -> np.ndarray:
    return np.zeros((venv.num_envs, *venv.action_space.shape), np.float32)


def test_a_raising_autopilot_fails_every_learner_within_seconds(tennis: LockstepBehaviors) -> None:
    def autopilot(step):  # type: ignore[no-untyped-def]
        raise ValueError("the saved policy cannot read this observation")

    def quitter() -> None:
        venv = UnityVecEnv.from_batches(tennis.behavior("Tennis?team=1"))
        venv.reset()
        tennis.retire("Tennis?team=1", autopilot)

    waiting_started = threading.Event()

    def waiting() -> None:
        venv = UnityVecEnv.from_batches(tennis.behavior("Tennis?team=0"))
        venv.reset()
        waiting_started.set()
        for _ in range(1000):
            venv.step(_zeros(venv))

    start = time.monotonic()
    errors = _run_threads({"quitter": quitter, "waiting": waiting})
    assert time.monotonic() - start < 10
    assert list(errors) == ["waiting"]
    assert "the saved policy cannot read this observation" in str(errors["waiting"])


def test_a_raising_step_listener_fails_every_learner(tennis: LockstepBehaviors) -> None:
    calls = 0

    def listener() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError("disk full while writing stats")

    tennis.step_listeners.append(listener)

    def learner(name: str):  # type: ignore[no-untyped-def]
        def run() -> None:
            venv = UnityVecEnv.from_batches(tennis.behavior(name))
            venv.reset()
            for _ in range(1000):
                venv.step(_zeros(venv))

        return run

    errors = _run_threads({name: learner(name) for name in tennis.behavior_names})
    assert sorted(errors) == sorted(tennis.behavior_names)
    assert all("disk full while writing stats" in str(e) for e in errors.values())


def test_unknown_behavior_is_refused_and_players_closed(port: int) -> None:
    with pytest.raises(UnityEnvironmentException, match="Striker"):
        LockstepBehaviors(
            WorkerSettings(file_name="builtin:Tennis", base_port=port),
            n_players=1,
            behavior_names=["Striker"],
        )
