"""Fuzzing of what a player or a recording controls: .demo files, side-channel traffic both
ways, and protocol messages (a fixed-seed slice of ``bench/fuzz.py``; see tests/fuzzing.py)."""

from __future__ import annotations

import math
import socket
from typing import Any

import pytest
from hypothesis import given

from tests import fuzzing
from tests.conftest import live_children
from tests.fuzzing import ci_settings
from tests.scripted_player import ScriptedPlayer, empty_message, init_message
from unity_gym import UnityEnvironment
from unity_gym.communicator_objects.agent_info_pb2 import AgentInfoProto
from unity_gym.communicator_objects.brain_parameters_pb2 import BrainParametersProto
from unity_gym.communicator_objects.header_pb2 import HeaderProto
from unity_gym.communicator_objects.observation_pb2 import ObservationProto
from unity_gym.communicator_objects.unity_message_pb2 import UnityMessageProto
from unity_gym.communicator_objects.unity_output_pb2 import UnityOutputProto
from unity_gym.exception import UnityException

pytestmark = pytest.mark.protocol


@ci_settings(120)
@given(fuzzing.demo_files(fuzzing.SMALL_DEMOS))
def test_mutated_demo_files_load_or_raise_demo_errors(mutated: fuzzing.MutatedFile) -> None:
    fuzzing.check_demo(mutated)


@ci_settings(150)
@given(fuzzing.side_channel_traffic())
def test_player_side_channel_traffic_is_read_or_refused(
    traffic: fuzzing.SideChannelTraffic,
) -> None:
    fuzzing.check_side_channel_python(traffic)


@ci_settings(150)
@given(fuzzing.side_channel_traffic())
def test_python_side_channel_traffic_is_applied_or_dropped_by_players(
    traffic: fuzzing.SideChannelTraffic,
) -> None:
    fuzzing.check_side_channel_player(traffic)


@ci_settings(100)
@given(fuzzing.unity_outputs())
def test_misbehaving_player_outputs_decode_or_raise_unity_errors(outputs: list[Any]) -> None:
    fuzzing.check_unity_outputs(outputs)


def _output(observation: ObservationProto, continuous: int = 2) -> UnityMessageProto:
    output = UnityOutputProto()
    brain = BrainParametersProto(brain_name="Bad", is_training=True)
    brain.action_spec.num_continuous_actions = continuous
    output.rl_initialization_output.brain_parameters.append(brain)
    info = AgentInfoProto(id=0)
    info.observations.append(observation)
    output.rl_output.agentInfos["Bad"].value.append(info)
    return UnityMessageProto(header=HeaderProto(status=200), unity_output=output)


def _vector(*values: float) -> ObservationProto:
    obs = ObservationProto(shape=[len(values)])
    obs.float_data.data.extend(values)
    return obs


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (_output(_vector(1.0, math.nan)), "NaN or infinite"),
        (_output(_vector(1.0), continuous=-1), "impossible action spec"),
        (
            _output(ObservationProto(shape=[1, 2, 2], compression_type=1, compressed_data=b"x")),
            "not a PNG stream",
        ),
    ],
    ids=["nan-observation", "negative-action-size", "garbage-png"],
)
def test_misbehaving_player_end_to_end(
    port: int, message: UnityMessageProto, expected: str
) -> None:
    """A scripted player's bad output: a clear UnityException, then a clean shutdown."""
    children = live_children()
    player = ScriptedPlayer(port, [init_message(), empty_message(), message])
    player.start()
    env = UnityEnvironment(base_port=port, timeout_wait=10)
    try:
        with pytest.raises(UnityException, match=expected) as err:
            env.reset()
        fuzzing.check_message(str(err.value))
    finally:
        env.close()
    player.join(10)
    assert not player.is_alive()
    assert live_children() <= children
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        probe.bind(("127.0.0.1", port))  # the port is free again
