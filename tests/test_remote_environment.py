"""RemoteEnvironment over a PlayerHost in this process (no Ray): a host that makes AgentSlots'
action-less follow-up exchanges itself changes nothing the learner sees, and saves the calls."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from unity_gym.agent_slots import AgentSlots, SlotStep
from unity_gym.base_env import ActionTuple
from unity_gym.environment import UnityEnvironment
from unity_gym.remote_environment import (
    HostLink,
    HostReply,
    PendingReply,
    PlayerHost,
    RemoteEnvironment,
    pack,
    unpack,
)

pytestmark = pytest.mark.protocol

BEHAVIOR = "3DBall?team=0"


class _Answered(PendingReply):
    def __init__(self, result: Any) -> None:
        self._result = result

    def wait(self, timeout: float) -> Any:
        if isinstance(result := self._result, BaseException):
            raise result
        return result


class InProcessLink(HostLink):
    """A player on a :class:`PlayerHost` in this process; counts the exchanges it carries."""

    where = "this process"

    def __init__(self, host: PlayerHost, key: str) -> None:
        self.host = host
        self.key = key
        self.calls = 0
        self.made_ahead = 0

    def reset(self, side_channel: bytes) -> PendingReply:
        return _Answered(self.host.reset(self.key, side_channel))

    def step(
        self, actions: dict[str, ActionTuple], side_channel: bytes, ahead: int
    ) -> PendingReply:
        self.calls += 1
        reply = unpack(self.host.step(pack({self.key: (actions, side_channel, ahead)})))[self.key]
        if isinstance(reply, HostReply):
            self.made_ahead += len(reply.ahead)
        return _Answered(reply)

    def close(self, terminate: bool) -> PendingReply:
        (self.host.terminate if terminate else self.host.close)(self.key)
        return _Answered(None)

    def release(self) -> None:
        pass


def _open_remote(seed: int) -> tuple[RemoteEnvironment, InProcessLink]:
    host, key = PlayerHost(), uuid.uuid4().hex
    info = host.open(key, {"file_name": "builtin:3DBall", "seed": seed, "num_areas": 2}, [])
    link = InProcessLink(host, key)
    return RemoteEnvironment(link, info), link


def _rollout(envs: Sequence[UnityEnvironment], steps: int) -> list[SlotStep]:
    """AgentSlots over ``envs``: random actions (fixed seed) for ``steps`` steps."""
    slots = AgentSlots(envs, [BEHAVIOR])
    trace = [slots.reset()[BEHAVIOR]]
    rng = np.random.default_rng(7)
    for _ in range(steps):
        actions = rng.uniform(-1, 1, (slots.num_slots(BEHAVIOR), 2)).astype(np.float32)
        trace.append(slots.step({BEHAVIOR: ActionTuple(continuous=actions)})[BEHAVIOR])
    return trace


def test_host_follow_ups_change_nothing_and_save_calls() -> None:
    """3DBall's balls fall between decisions, so exchanges of episode ends alone come up: the
    host makes the follow-ups, and every observation, reward, done and final observation is
    the local player's."""
    local = UnityEnvironment("builtin:3DBall", seed=3, num_areas=2)
    try:
        expected = _rollout([local], 200)
    finally:
        local.close()
    remote, link = _open_remote(seed=3)
    try:
        got = _rollout([remote], 200)
        exchanges = link.calls + link.made_ahead
    finally:
        remote.close()
    assert sum(int(step.dones.sum()) for step in expected) > 10
    for index, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        for a, b in zip(mine.obs, theirs.obs, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"step {index}")
        np.testing.assert_array_equal(mine.rewards, theirs.rewards, err_msg=f"step {index}")
        np.testing.assert_array_equal(mine.terminated, theirs.terminated)
        np.testing.assert_array_equal(mine.truncated, theirs.truncated)
        assert mine.final_obs.keys() == theirs.final_obs.keys()
        for slot, final in mine.final_obs.items():
            for a, b in zip(final, theirs.final_obs[slot], strict=True):
                np.testing.assert_array_equal(a, b)
    assert link.made_ahead > 10, "no follow-up was made on the host"
    assert link.calls == 200  # one call per step
    assert exchanges > link.calls


def test_a_plain_remote_environment_makes_exactly_the_exchanges_asked_for() -> None:
    """Without ``run_ahead`` (the low-level API's default) the host never runs ahead."""
    remote, link = _open_remote(seed=3)
    try:
        remote.reset()
        for _ in range(60):
            decisions, _ = remote.get_steps(BEHAVIOR)
            remote.set_actions(
                BEHAVIOR, ActionTuple(continuous=np.zeros((len(decisions), 2), np.float32))
            )
            remote.step()
    finally:
        remote.close()
    assert link.calls == 60 and link.made_ahead == 0
