"""Side channels: golden bytes pin ML-Agents' binary format in both directions."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from unity_gym.exception import UnityCommunicationException, UnitySideChannelException
from unity_gym.side_channel import (
    EngineConfig,
    EngineConfigurationChannel,
    EnvironmentParametersChannel,
    FloatPropertiesChannel,
    IncomingMessage,
    OutgoingMessage,
    RawBytesChannel,
    SideChannelManager,
    StatsAggregationMethod,
    StatsSideChannel,
)
from unity_gym.side_channel.engine_configuration_channel import apply_engine_configuration_message
from unity_gym.side_channel.environment_parameters_channel import (
    SamplerTypes,
    read_environment_parameter_message,
)
from unity_gym.side_channel.side_channel_manager import (
    pack_side_channel_messages,
    unpack_side_channel_messages,
)
from unity_gym.side_channel.stats_side_channel import encode_stat

pytestmark = pytest.mark.protocol

# C#'s Guid.ToByteArray(): first three groups little-endian, the rest as written.
ENGINE_ID_BYTES = bytes.fromhex("2c3451e97e4fea11b238784f4387d1f7")


def test_framing_uses_csharp_guid_byte_order_and_int32_length() -> None:
    channel = EngineConfigurationChannel()
    channel.set_configuration_parameters(time_scale=20.0)
    data = SideChannelManager([channel]).generate_side_channel_messages()
    assert data == ENGINE_ID_BYTES + bytes.fromhex("08000000") + bytes.fromhex("020000000000a041")
    assert channel.message_queue == []  # sent once


def test_engine_configuration_golden_bytes_and_player_side_roundtrip() -> None:
    channel = EngineConfigurationChannel()
    channel.set_configuration(EngineConfig.default_config())
    payloads = channel.message_queue
    assert payloads == [
        bytes.fromhex("000000005000000050000000"),  # resolution 80x80
        bytes.fromhex("0100000001000000"),  # quality 1
        bytes.fromhex("020000000000a041"),  # time scale 20.0
        bytes.fromhex("03000000ffffffff"),  # target frame rate -1
        bytes.fromhex("040000003c000000"),  # capture frame rate 60
    ]
    config = EngineConfig()
    for payload in payloads:
        config = apply_engine_configuration_message(config, IncomingMessage(payload))
    assert config == EngineConfig.default_config()


def test_engine_configuration_rejects_half_a_resolution() -> None:
    with pytest.raises(UnitySideChannelException, match="width/height"):
        EngineConfigurationChannel().set_configuration_parameters(width=100)


def test_environment_parameters_golden_bytes() -> None:
    channel = EnvironmentParametersChannel()
    channel.set_float_parameter("mass", 2.5)
    channel.set_uniform_sampler_parameters("scale", 0.5, 1.5, seed=7)
    channel.set_gaussian_sampler_parameters("g", 1.0, 0.25, seed=-1)
    channel.set_multirangeuniform_sampler_parameters("m", [(1.0, 2.0), (4.0, 5.0)], seed=3)
    mass, scale, gauss, multi = channel.message_queue
    assert mass == bytes.fromhex("04000000") + b"mass" + bytes.fromhex("0000000000002040")
    assert scale == (
        bytes.fromhex("05000000")
        + b"scale"
        + bytes.fromhex("0100000007000000000000000000003f0000c03f")
    )
    assert gauss == (
        bytes.fromhex("01000000") + b"g" + bytes.fromhex("01000000ffffffff010000000000803f0000803e")
    )
    assert multi == (
        bytes.fromhex("01000000")
        + b"m"
        + bytes.fromhex("01000000030000000200000004000000")
        + bytes.fromhex("0000803f00000040000080400000a040")
    )


def test_environment_parameter_samplers_on_the_player_side() -> None:
    channel = EnvironmentParametersChannel()
    channel.set_float_parameter("mass", 2.5)
    channel.set_uniform_sampler_parameters("scale", 0.5, 1.5, seed=7)
    channel.set_gaussian_sampler_parameters("g", 10.0, 0.5, seed=1)
    channel.set_multirangeuniform_sampler_parameters("m", [(1.0, 2.0), (4.0, 5.0)], seed=3)
    samplers = dict(
        read_environment_parameter_message(IncomingMessage(p)) for p in channel.message_queue
    )
    assert samplers["mass"].sample() == 2.5
    assert samplers["scale"].kind == SamplerTypes.UNIFORM
    uniform = np.array([samplers["scale"].sample() for _ in range(2000)])
    assert uniform.min() >= 0.5 and uniform.max() <= 1.5 and abs(uniform.mean() - 1.0) < 0.05
    gauss = np.array([samplers["g"].sample() for _ in range(2000)])
    assert abs(gauss.mean() - 10.0) < 0.05 and abs(gauss.std() - 0.5) < 0.05
    multi = np.array([samplers["m"].sample() for _ in range(2000)])
    inside = ((multi >= 1) & (multi <= 2)) | ((multi >= 4) & (multi <= 5))
    assert inside.all() and 0.4 < (multi < 3).mean() < 0.6


def test_stats_channel_reads_player_messages_with_aggregation() -> None:
    data = pack_side_channel_messages(
        [
            (
                uuid.UUID("a1d8f7b7-cec8-50f9-b78b-d3e165a78520"),
                bytes(encode_stat("Ball/Drops", 1.0, StatsAggregationMethod.SUM).buffer),
            ),
            (
                uuid.UUID("a1d8f7b7-cec8-50f9-b78b-d3e165a78520"),
                bytes(encode_stat("Ball/Drops", 2.0, StatsAggregationMethod.SUM).buffer),
            ),
        ]
    )
    stats = StatsSideChannel()
    SideChannelManager([stats]).process_side_channel_message(data)
    assert bytes(encode_stat("k", 1.0, StatsAggregationMethod.HISTOGRAM).buffer) == bytes.fromhex(
        "010000006b0000803f03000000"
    )
    assert stats.get_and_reset_stats() == {
        "Ball/Drops": [(1.0, StatsAggregationMethod.SUM), (2.0, StatsAggregationMethod.SUM)]
    }
    assert stats.get_and_reset_stats() == {}


def test_float_properties_roundtrip_and_raw_bytes() -> None:
    props = FloatPropertiesChannel()
    props.set_property("speed", 3.0)
    assert props.message_queue == [bytes.fromhex("05000000") + b"speed" + bytes.fromhex("00004040")]
    props.on_message_received(
        IncomingMessage(bytes.fromhex("01000000") + b"x" + bytes.fromhex("0000803f"))
    )
    assert props.get_property("x") == 1.0 and props.get_property("missing") is None
    raw = RawBytesChannel(uuid.UUID("12345678-1234-5678-1234-567812345678"))
    raw.send_raw_data(b"\x00\x01")
    raw.on_message_received(IncomingMessage(b"hi"))
    assert raw.message_queue == [b"\x00\x01"] and raw.get_and_clear_received_messages() == [b"hi"]


def test_user_defined_channel_message_types_roundtrip() -> None:
    out = OutgoingMessage()
    out.write_bool(True)
    out.write_int32(-5)
    out.write_float32(1.5)
    out.write_float32_list([1.0, 2.0])
    out.write_string("hello")
    assert (
        bytes(out.buffer)
        == bytes.fromhex("01fbffffff0000c03f020000000000803f0000004005000000") + b"hello"
    )
    msg = IncomingMessage(bytes(out.buffer))
    assert msg.read_bool() is True
    assert msg.read_int32() == -5
    assert msg.read_float32() == 1.5
    assert msg.read_float32_list() == [1.0, 2.0]
    assert msg.read_string() == "hello"
    assert msg.read_int32(default_value=42) == 42  # past the end: default


def test_non_ascii_strings_are_refused_with_a_reason() -> None:
    with pytest.raises(UnitySideChannelException, match="ASCII"):
        OutgoingMessage().write_string("größe")


def test_corrupted_framing_is_reported() -> None:
    good = pack_side_channel_messages([(uuid.uuid4(), b"abc")])
    with pytest.raises(UnityCommunicationException, match="claims 3 bytes"):
        unpack_side_channel_messages(good[:-1])
    with pytest.raises(UnityCommunicationException, match="header"):
        unpack_side_channel_messages(good + b"\x01\x02")


def test_duplicate_channel_ids_are_refused() -> None:
    from unity_gym.exception import UnityEnvironmentException

    with pytest.raises(UnityEnvironmentException, match="same channel id"):
        SideChannelManager([StatsSideChannel(), StatsSideChannel()])
