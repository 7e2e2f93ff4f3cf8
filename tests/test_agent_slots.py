"""AgentSlots on scripted message patterns: the cases real Unity scenes produce, and the
replacement of a failed player."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from unity_gym.agent_slots import AgentSlots, RecoverPlayer, SlotStep
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
from unity_gym.exception import (
    UnityEnvironmentException,
    UnityException,
    UnityPlayerExitedException,
)

pytestmark = pytest.mark.protocol

SPEC = BehaviorSpec(
    [ObservationSpec((1,), (DimensionProperty.NONE,), ObservationType.DEFAULT, "x")],
    ActionSpec(1, ()),
)


def decisions(ids: list[int], rewards: list[float] | None = None) -> DecisionSteps:
    return DecisionSteps(
        obs=[np.array([[float(i)] for i in ids], np.float32).reshape(len(ids), 1)],
        reward=np.array(rewards or [0.0] * len(ids), np.float32),
        agent_id=np.array(ids, np.int32),
        group_id=np.zeros(len(ids), np.int32),
        group_reward=np.zeros(len(ids), np.float32),
    )


def terminals(ids: list[int], rewards: list[float], interrupted: list[bool]) -> TerminalSteps:
    return TerminalSteps(
        obs=[np.array([[100.0 + i] for i in ids], np.float32).reshape(len(ids), 1)],
        reward=np.array(rewards, np.float32),
        agent_id=np.array(ids, np.int32),
        group_id=np.zeros(len(ids), np.int32),
        group_reward=np.zeros(len(ids), np.float32),
        interrupted=np.array(interrupted, bool),
    )


class FakeEnv:
    """Replays scripted (DecisionSteps, TerminalSteps) replies and records the actions sent."""

    def __init__(self, reset_ids: list[int], replies: list[tuple[DecisionSteps, TerminalSteps]]):
        self.behavior_specs = {"B": SPEC}
        self._reset = (decisions(reset_ids), terminals([], [], []))
        self._replies: Iterator[tuple[DecisionSteps, TerminalSteps]] = iter(replies)
        self.current = self._reset
        self.sent: list[tuple[list[int], list[float]]] = []
        self._pending: np.ndarray | None = None

    def reset(self) -> None:
        self.current = self._reset

    def get_steps(self, name: str) -> tuple[DecisionSteps, TerminalSteps]:
        return self.current

    def set_actions(self, name: str, action: ActionTuple) -> None:
        assert action.continuous.shape[0] == len(self.current[0])
        self._pending = action.continuous[:, 0].copy()

    def step_async(self) -> None:
        ids = self.current[0].agent_id.tolist()
        actions = self._pending.tolist() if self._pending is not None and ids else []
        self.sent.append((ids, actions))
        self._pending = None

    def step_wait(self) -> None:
        self.current = next(self._replies)


class BehaviorSlots:
    """AgentSlots over the one behavior "B" (or ``name``), with single-behavior signatures."""

    def __init__(
        self,
        envs: list[FakeEnv],
        name: str = "B",
        max_exchanges: int = 1000,
        recover: RecoverPlayer | None = None,
    ) -> None:
        self.name = name
        self.slots = AgentSlots(envs, [name], max_exchanges, recover)  # type: ignore[arg-type]

    @property
    def num_slots(self) -> int:
        return self.slots.num_slots(self.name)

    def worker_of_slot(self, slot: int) -> int:
        return self.slots.worker_of_slot(self.name, slot)

    def reset(self) -> SlotStep:
        return self.slots.reset()[self.name]

    def step(self, actions: ActionTuple) -> SlotStep:
        return self.slots.step({self.name: actions})[self.name]


def no_terminals() -> TerminalSteps:
    return terminals([], [], [])


def act(values: list[float]) -> ActionTuple:
    return ActionTuple(continuous=np.array(values, np.float32)[:, None])


def test_terminal_only_messages_are_waited_through_and_rewards_accumulate() -> None:
    env = FakeEnv(
        [1, 2],
        [
            (decisions([]), terminals([2], [-1.0], [False])),  # agent 2 falls between decisions
            (decisions([1, 2], [0.1, 0.0]), no_terminals()),  # next boundary, 2 restarted
        ],
    )
    slots = BehaviorSlots([env], "B")
    first = slots.reset()
    assert first.obs[0][:, 0].tolist() == [1.0, 2.0]
    step = slots.step(act([0.5, -0.5]))
    assert env.sent == [([1, 2], [0.5, -0.5]), ([], [])]
    assert step.rewards.tolist() == pytest.approx([0.1, -1.0])
    assert step.terminated.tolist() == [False, True] and not step.truncated.any()
    assert step.final_obs[1][0].tolist() == [102.0]
    assert step.obs[0][:, 0].tolist() == [1.0, 2.0]


def test_new_agent_ids_take_the_ended_slot_and_first_reward_waits() -> None:
    env = FakeEnv(
        [10, 20],
        [
            # Real Unity: a new episode is a new agent id, reporting in the same message.
            (decisions([10, 21], [0.1, 0.5]), terminals([20], [1.0], [True])),
            (decisions([10, 21], [0.1, 0.2]), no_terminals()),
        ],
    )
    slots = BehaviorSlots([env], "B")
    slots.reset()
    step = slots.step(act([0.0, 0.0]))
    assert step.truncated.tolist() == [False, True] and not step.terminated.any()
    assert step.rewards.tolist() == pytest.approx([0.1, 1.0])  # 0.5 belongs to the new episode
    assert step.obs[0][:, 0].tolist() == [10.0, 21.0]
    step = slots.step(act([0.3, 0.4]))
    assert step.rewards.tolist() == pytest.approx([0.1, 0.7])
    assert env.sent[-1] == ([10, 21], pytest.approx([0.3, 0.4]))


def test_early_reporters_get_their_last_action_until_every_slot_reported() -> None:
    env = FakeEnv(
        [1, 2],
        [
            (decisions([1], [0.1]), no_terminals()),  # agent 1 asks before agent 2
            (decisions([2], [0.2]), no_terminals()),
        ],
    )
    slots = BehaviorSlots([env], "B")
    slots.reset()
    step = slots.step(act([0.7, 0.9]))
    assert env.sent == [([1, 2], pytest.approx([0.7, 0.9])), ([1], pytest.approx([0.7]))]
    assert step.rewards.tolist() == pytest.approx([0.1, 0.2])


def test_two_players_fill_consecutive_slots_and_step_in_parallel() -> None:
    a = FakeEnv([1], [(decisions([1], [1.0]), no_terminals())])
    b = FakeEnv([7, 8], [(decisions([7, 8], [2.0, 3.0]), no_terminals())])
    slots = BehaviorSlots([a, b], "B")
    slots.reset()
    assert slots.num_slots == 3 and slots.worker_of_slot(2) == 1
    step = slots.step(act([0.1, 0.2, 0.3]))
    assert a.sent == [([1], pytest.approx([0.1]))]
    assert b.sent == [([7, 8], pytest.approx([0.2, 0.3]))]
    assert step.rewards.tolist() == [1.0, 2.0, 3.0]


def test_more_agents_than_at_reset_is_a_clear_error() -> None:
    env = FakeEnv([1], [(decisions([1, 2]), no_terminals())])
    slots = BehaviorSlots([env], "B")
    slots.reset()
    with pytest.raises(UnityEnvironmentException, match=r"more agents.*keep the number of agents"):
        slots.step(act([0.0]))


def test_an_agent_that_stops_reporting_is_a_clear_error() -> None:
    env = FakeEnv([1, 2], [(decisions([1]), no_terminals())] * 5)
    slots = BehaviorSlots([env], "B", max_exchanges=3)
    slots.reset()
    with pytest.raises(UnityEnvironmentException, match=r"3 exchanges from: 'B' slots \[1\]"):
        slots.step(act([0.0, 0.0]))


def test_missing_behavior_names_the_known_ones() -> None:
    env = FakeEnv([1], [])
    with pytest.raises(UnityEnvironmentException, match="has: B"):
        BehaviorSlots([env], "Other").reset()


class CrashingEnv(FakeEnv):
    """Crashes (as a killed player does) at its ``crash_at``-th step_wait."""

    def __init__(self, reset_ids: list[int], replies, crash_at: int) -> None:  # type: ignore[no-untyped-def]
        super().__init__(reset_ids, replies)
        self.waits = 0
        self.crash_at = crash_at

    def step_wait(self) -> None:
        self.waits += 1
        if self.waits == self.crash_at:
            raise UnityPlayerExitedException("The player exited with exit code -9 (SIGKILL).")
        super().step_wait()


def test_a_failed_player_is_replaced_its_episodes_truncated_and_the_others_go_on() -> None:
    steady = FakeEnv([1], [(decisions([1], [1.0]), no_terminals())] * 3)
    crashing = CrashingEnv([7, 8], [(decisions([7, 8], [2.0, 3.0]), no_terminals())], crash_at=2)
    replacement = FakeEnv([30, 31], [(decisions([30, 31], [0.5, 0.5]), no_terminals())])
    calls: list[tuple[int, str]] = []

    def recover(index: int, error: UnityException) -> FakeEnv:
        calls.append((index, str(error)))
        return replacement

    slots = BehaviorSlots([steady, crashing], recover=recover)
    slots.reset()
    step = slots.step(act([0.1, 0.2, 0.3]))
    assert not step.dones.any() and step.rewards.tolist() == [1.0, 2.0, 3.0]
    step = slots.step(act([0.1, 0.2, 0.3]))  # player 1 crashes here
    assert calls == [(1, "The player exited with exit code -9 (SIGKILL).")]
    assert slots.slots.envs[1] is replacement
    assert step.truncated.tolist() == [False, True, True] and not step.terminated.any()
    # The interrupted episodes end on the last observation seen; the slots then hold the new
    # player's first observations, and the other player's slot stepped as usual.
    assert step.final_obs[1][0].tolist() == [7.0] and step.final_obs[2][0].tolist() == [8.0]
    assert step.obs[0][:, 0].tolist() == [1.0, 30.0, 31.0]
    assert step.rewards.tolist() == [1.0, 0.0, 0.0]
    step = slots.step(act([0.4, 0.5, 0.6]))
    assert replacement.sent[-1] == ([30, 31], pytest.approx([0.5, 0.6]))
    assert step.rewards.tolist() == [1.0, 0.5, 0.5] and not step.dones.any()


def test_without_a_recover_hook_a_failed_player_raises() -> None:
    crashing = CrashingEnv([7], [], crash_at=1)
    slots = BehaviorSlots([crashing])
    slots.reset()
    with pytest.raises(UnityPlayerExitedException, match="SIGKILL"):
        slots.step(act([0.0]))


def test_a_replacement_with_other_agents_is_refused() -> None:
    crashing = CrashingEnv([7, 8], [], crash_at=1)
    slots = BehaviorSlots([crashing], recover=lambda index, error: FakeEnv([1], []))
    slots.reset()
    with pytest.raises(UnityEnvironmentException, match=r"restarted with 1 agents.*instead of 2"):
        slots.step(act([0.0, 0.0]))
