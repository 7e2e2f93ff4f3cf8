"""The stand-in academy's Unity semantics, driven directly (no gRPC): decisions, dones, rewards."""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
import pytest

from unity_gym.base_env import (
    ActionSpec,
    BehaviorSpec,
    DimensionProperty,
    ObservationSpec,
    ObservationType,
)
from unity_gym.communicator_objects.unity_rl_input_pb2 import UnityRLInputProto
from unity_gym.communicator_objects.unity_rl_output_pb2 import UnityRLOutputProto
from unity_gym.players.academy import Academy
from unity_gym.players.channels import PlayerChannels
from unity_gym.players.task import Task, TaskContext
from unity_gym.side_channel.engine_configuration_channel import (
    ENGINE_CONFIGURATION_CHANNEL_ID,
    ConfigurationType,
)
from unity_gym.side_channel.environment_parameters_channel import (
    ENVIRONMENT_PARAMETERS_CHANNEL_ID,
    EnvironmentDataTypes,
)
from unity_gym.side_channel.messages import IncomingMessage, OutgoingMessage
from unity_gym.side_channel.side_channel_manager import (
    pack_side_channel_messages,
    unpack_side_channel_messages,
)
from unity_gym.side_channel.stats_side_channel import STATS_CHANNEL_ID

pytestmark = pytest.mark.protocol


class ScriptedTask(Task):
    """Two agents per area that add 1 reward per step and end when the script says.

    Observation: (agent index, act calls since the episode began, last continuous action).
    """

    behavior_name = "Scripted"
    behavior_spec = BehaviorSpec(
        [ObservationSpec((3,), (DimensionProperty.NONE,), ObservationType.DEFAULT, "Scripted")],
        ActionSpec.create_hybrid(1, (3,)),
    )
    agents_per_area = 2
    decision_period = 3
    max_step = 0
    # act call number (1-based, over the task's life) -> agents whose episode ends then
    script: ClassVar[dict[int, list[int]]] = {}

    def __init__(self, num_agents: int, context: TaskContext) -> None:
        super().__init__(num_agents, context)
        self.acts = 0
        self.age = np.zeros(num_agents)
        self.last_action = np.zeros(num_agents)
        self.episodes_begun = np.zeros(num_agents, dtype=int)

    def begin_episode(self, agents: np.ndarray) -> None:
        self.age[agents] = 0
        self.episodes_begun[agents] += 1

    def act(self, continuous: np.ndarray, discrete: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        self.acts += 1
        self.age += 1
        self.last_action = continuous[:, 0].copy()
        rewards += 1.0
        ended = np.zeros(self.num_agents, dtype=bool)
        ended[self.script.get(self.acts, [])] = True
        return ended

    def observe(self, agents: np.ndarray) -> list[np.ndarray]:
        return [np.column_stack([agents, self.age[agents], self.last_action[agents]])]


def _academy(script: dict[int, list[int]] | None = None, areas: int = 1, **kwargs) -> Academy:
    task = type("Task", (ScriptedTask,), {"script": script or {}})
    academy = Academy([task], **kwargs)
    academy.initialize(seed=0, num_areas=areas)
    return academy


def _infos(out: UnityRLOutputProto, behavior: str = "Scripted") -> list[tuple]:
    """(agent index, done, max_step_reached, reward) per info, in message order."""
    if behavior not in out.agentInfos:
        return []
    return [
        (int(i.observations[0].float_data.data[0]), i.done, i.max_step_reached, i.reward)
        for i in out.agentInfos[behavior].value
    ]


def _reset(academy: Academy) -> UnityRLOutputProto:
    out = UnityRLOutputProto()
    academy.reset(out)
    return out


def _step(academy: Academy, continuous: list[float] | None = None) -> UnityRLOutputProto:
    rl_input = UnityRLInputProto()
    if continuous is not None:
        actions = rl_input.agent_actions["Scripted"].value
        for value in continuous:
            actions.add(continuous_actions=[value], discrete_actions=[1])
    out = UnityRLOutputProto()
    academy.step(rl_input.agent_actions, out)
    return out


def test_reset_reports_every_agent_once_with_zero_reward() -> None:
    academy = _academy(areas=2)
    assert _infos(_reset(academy)) == [(i, False, False, 0.0) for i in range(4)]


def test_decisions_come_every_decision_period_with_the_accumulated_reward() -> None:
    academy = _academy()
    _reset(academy)
    out = _step(academy, [0.5, -0.5])
    assert academy.academy_step == 4  # the reset's step 0, then steps 1..3
    assert _infos(out) == [(0, False, False, 3.0), (1, False, False, 3.0)]


def test_actions_go_to_agents_in_report_order_and_repeat_between_decisions() -> None:
    academy = _academy()
    _reset(academy)
    out = _step(academy, [0.25, -0.75])
    last_action = [
        list(i.observations[0].float_data.data)[2] for i in out.agentInfos["Scripted"].value
    ]
    assert last_action == [0.25, -0.75]  # still acting with it on the third step


def test_agents_without_actions_act_with_zeros() -> None:
    academy = _academy()
    _reset(academy)
    _step(academy, [0.25, -0.75])
    out = _step(academy)  # no ListAgentActionProto for the behavior at all
    assert [
        list(i.observations[0].float_data.data)[2] for i in out.agentInfos["Scripted"].value
    ] == [0, 0]


def test_done_between_decisions_goes_out_alone_then_the_agent_rejoins_at_the_boundary() -> None:
    # Act calls 1-3 follow the first decision; agent 1 ends on the 2nd.
    academy = _academy({2: [1]})
    _reset(academy)
    out = _step(academy, [0.0, 0.0])
    assert _infos(out) == [(1, True, False, 2.0)]  # at the next academy step, on its own
    out = _step(academy)  # Python has no agent to act for
    # Agent 1 restarted and gained 1 reward on the 3rd act; agent 0 has all three.
    assert _infos(out) == [(0, False, False, 3.0), (1, False, False, 1.0)]


def test_done_right_before_a_boundary_shares_the_message_done_first() -> None:
    academy = _academy({3: [0]})
    _reset(academy)
    out = _step(academy, [0.0, 0.0])
    assert _infos(out) == [(0, True, False, 3.0), (0, False, False, 0.0), (1, False, False, 3.0)]


def test_max_step_interrupts_but_a_task_end_on_the_same_step_is_not_interrupted() -> None:
    academy = _academy({4: [1]}, max_step=4, decision_period=2)
    _reset(academy)  # step count 1
    assert _infos(_step(academy, [0, 0])) == [(0, False, False, 2.0), (1, False, False, 2.0)]
    out = _step(academy, [0, 0])  # acts 3 and 4; episode steps reach 4 on the 4th act
    assert _infos(out) == [
        (0, True, True, 2.0),
        (1, True, False, 2.0),
        (0, False, False, 0.0),  # both restarted; step 4 is a decision boundary
        (1, False, False, 0.0),
    ]


def test_zero_max_step_means_no_limit() -> None:
    academy = _academy(max_step=0, decision_period=1)
    _reset(academy)
    for _ in range(50):
        assert not any(done for _, done, _, _ in _infos(_step(academy, [0, 0])))


def test_reset_mid_episode_sends_no_done_infos() -> None:
    academy = _academy()
    _reset(academy)
    _step(academy, [0, 0])
    assert _infos(_reset(academy)) == [(0, False, False, 0.0), (1, False, False, 0.0)]
    assert academy.academy_step == 1


def test_step_before_any_reset_resets_first() -> None:
    academy = _academy()
    assert _infos(_step(academy, [])) == [(0, False, False, 0.0), (1, False, False, 0.0)]


def test_areas_multiply_agents_with_unique_stable_ids() -> None:
    academy = _academy({1: [2]}, areas=3, decision_period=1)
    first = [i.id for i in _reset(academy).agentInfos["Scripted"].value]
    assert sorted(first) == list(range(6))
    out = _step(academy, [0] * 6)
    ids = [(i.id, i.done) for i in out.agentInfos["Scripted"].value]
    assert ids[0] == (first[2], True)
    assert [i for i, done in ids if not done] == first


def test_invalid_discrete_actions_become_zero() -> None:
    academy = _academy(decision_period=1)
    _reset(academy)
    rl_input = UnityRLInputProto()
    actions = rl_input.agent_actions["Scripted"].value
    actions.add(continuous_actions=[0.0], discrete_actions=[7])
    actions.add(continuous_actions=[0.0], discrete_actions=[2])
    academy.step(rl_input.agent_actions, UnityRLOutputProto())
    assert academy._behaviors[0].discrete[:, 0].tolist() == [0, 2]


def _channel_bytes(channel_id, *messages: OutgoingMessage) -> bytes:
    return pack_side_channel_messages((channel_id, bytes(m.buffer)) for m in messages)


def test_environment_parameters_are_read_with_defaults() -> None:
    channels = PlayerChannels()
    msg = OutgoingMessage()
    msg.write_string("gravity")
    msg.write_int32(EnvironmentDataTypes.FLOAT)
    msg.write_float32(1.5)
    channels.receive(_channel_bytes(ENVIRONMENT_PARAMETERS_CHANNEL_ID, msg))
    assert channels.parameters.get("gravity", 9.81) == 1.5
    assert channels.parameters.get("mass", 1.0) == 1.0
    assert channels.parameters.sample("gravity", 0.0, 3).tolist() == [1.5] * 3


def test_unknown_and_malformed_side_channel_data_is_logged_not_fatal(caplog) -> None:
    import uuid

    channels = PlayerChannels()
    unknown = OutgoingMessage()
    unknown.write_int32(1)
    channels.receive(_channel_bytes(uuid.uuid4(), unknown))
    channels.receive(b"\x01\x02")  # not even a frame header
    truncated = OutgoingMessage()
    truncated.write_string("key")  # an environment parameter without its type and value
    truncated.write_int32(EnvironmentDataTypes.SAMPLER)
    channels.receive(_channel_bytes(ENVIRONMENT_PARAMETERS_CHANNEL_ID, truncated))
    assert "unknown side channel" in caplog.text


def test_stats_go_out_with_the_next_output() -> None:
    academy = _academy()
    academy.channels.stats.add("Scripted/Thing", 2.0)
    out = _reset(academy)
    [(channel_id, payload)] = unpack_side_channel_messages(out.side_channel)
    assert channel_id == STATS_CHANNEL_ID
    msg = IncomingMessage(payload)
    assert (msg.read_string(), msg.read_float32(), msg.read_int32()) == ("Scripted/Thing", 2.0, 0)
    assert _reset(academy).side_channel == b""


def test_time_scale_paces_academy_steps() -> None:
    academy = _academy(decision_period=1)
    _reset(academy)
    start = time.perf_counter()
    for _ in range(10):
        _step(academy, [0, 0])
    assert time.perf_counter() - start < 0.1  # unpaced until a time scale is set
    msg = OutgoingMessage()
    msg.write_int32(ConfigurationType.TIME_SCALE)
    msg.write_float32(1.0)  # real time: 0.02 s per academy step
    academy.receive_side_channel(_channel_bytes(ENGINE_CONFIGURATION_CHANNEL_ID, msg))
    start = time.perf_counter()
    for _ in range(10):
        _step(academy, [0, 0])
    assert time.perf_counter() - start >= 0.18
