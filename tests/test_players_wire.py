"""The players' hand-written protobuf wire format, checked against the protobuf API."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from unity_gym.base_env import DimensionProperty, ObservationSpec, ObservationType
from unity_gym.communicator_objects.agent_info_pb2 import AgentInfoProto
from unity_gym.communicator_objects.observation_pb2 import PNG, ObservationProto
from unity_gym.communicator_objects.unity_rl_input_pb2 import UnityRLInputProto
from unity_gym.communicator_objects.unity_rl_output_pb2 import UnityRLOutputProto
from unity_gym.players.sensors import PngWriter, VectorWriter, encode_png
from unity_gym.players.wire import ActionDecoder, AgentInfoEncoder, varint

pytestmark = pytest.mark.protocol

VECTOR = ObservationSpec((3,), (DimensionProperty.NONE,), ObservationType.DEFAULT, "Vec")
GOAL = ObservationSpec((2,), (DimensionProperty.NONE,), ObservationType.GOAL_SIGNAL, "")
CAMERA = ObservationSpec(
    (3, 4, 5),
    (
        DimensionProperty.NONE,
        DimensionProperty.TRANSLATIONAL_EQUIVARIANCE,
        DimensionProperty.TRANSLATIONAL_EQUIVARIANCE,
    ),
    ObservationType.DEFAULT,
    "Cam",
)


def _expected_info(
    agent_id: int,
    reward: float,
    observations: list[ObservationProto],
    mask: list[bool] | None,
    max_step: bool | None,
) -> AgentInfoProto:
    """The info as the protobuf API builds it."""
    info = AgentInfoProto(reward=reward, id=agent_id)
    if max_step is not None:
        info.done = True
        info.max_step_reached = max_step
    if mask is not None:
        info.action_mask.extend(mask)
    info.observations.extend(observations)
    return info


def _vector_proto(spec: ObservationSpec, values: np.ndarray) -> ObservationProto:
    proto = ObservationProto(
        shape=spec.shape,
        dimension_properties=[int(d) for d in spec.dimension_property],
        name=spec.name,
    )
    proto.observation_type = spec.observation_type.value  # type: ignore[assignment]
    proto.float_data.data.extend(values.astype(np.float32).tolist())
    return proto


@pytest.mark.parametrize("count", [1, 3, 12, 40])  # joined agent by agent, and as a matrix
@pytest.mark.parametrize("done", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_agent_infos_match_the_protobuf_api(count: int, done: bool, masked: bool) -> None:
    rng = np.random.default_rng(count)
    n = 300  # ids 0..299: one- and two-byte varints
    ids = np.arange(n) * 7 % 1000
    agents = np.sort(rng.choice(n, count, replace=False))
    rewards = rng.normal(size=count).astype(np.float32)
    rewards[0] = 0.0  # a default value, written anyway
    specs = [VECTOR, GOAL]
    writers = [VectorWriter(spec) for spec in specs]
    batches = [rng.normal(size=(count, *spec.shape)) for spec in specs]
    mask = rng.random((count, 5)) < 0.5 if masked else None
    max_step = rng.random(count) < 0.5 if done else None
    for subset_ids in (ids, ids[:100]):  # mixed and uniform id sizes
        encoder = AgentInfoEncoder(subset_ids, 5, [w.fixed_entry for w in writers])
        chosen = agents[agents < len(subset_ids)]
        if len(chosen) == 0:
            continue
        k = len(chosen)
        entries = [w.encode(b[:k]) for w, b in zip(writers, batches, strict=True)]
        out = UnityRLOutputProto()
        out.agentInfos["B"].MergeFromString(
            encoder.encode(
                chosen,
                rewards[:k],
                entries,
                None if mask is None else mask[:k],
                None if max_step is None else max_step[:k],
            )
        )
        expected = [
            _expected_info(
                int(subset_ids[agent]),
                float(rewards[j]),
                [_vector_proto(s, b[j].ravel()) for s, b in zip(specs, batches, strict=True)],
                None if mask is None else mask[j].tolist(),
                None if max_step is None else bool(max_step[j]),
            )
            for j, agent in enumerate(chosen.tolist())
        ]
        assert list(out.agentInfos["B"].value) == expected


def test_png_entries_match_the_protobuf_api_and_decode() -> None:
    rng = np.random.default_rng(0)
    writer = PngWriter(CAMERA)
    images = rng.integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    encoder = AgentInfoEncoder(np.array([5, 9]), 0, [writer.fixed_entry])
    data = encoder.encode(np.arange(2), np.ones(2), [writer.encode(images)], None, None)
    out = UnityRLOutputProto()
    out.agentInfos["C"].MergeFromString(data)
    for image, info in zip(images, out.agentInfos["C"].value, strict=True):
        observation = info.observations[0]
        assert list(observation.shape) == [3, 4, 5] and observation.compression_type == PNG
        assert list(observation.dimension_properties) == [1, 2, 2]
        assert observation.name == "Cam" and info.reward == 1.0
        decoded = np.asarray(Image.open(io.BytesIO(observation.compressed_data)))
        assert np.array_equal(decoded, image)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_encoder_round_trips(channels: int) -> None:
    image = np.random.default_rng(channels).integers(0, 256, (7, 9, channels), dtype=np.uint8)
    decoded = np.asarray(Image.open(io.BytesIO(encode_png(image))))
    assert np.array_equal(decoded.reshape(image.shape), image)


def test_png_encoder_rejects_five_channels() -> None:
    with pytest.raises(ValueError, match="1 to 4 channels"):
        encode_png(np.zeros((2, 2, 5), dtype=np.uint8))


def test_vector_writer_checks_the_size() -> None:
    with pytest.raises(ValueError, match="3 values per agent"):
        VectorWriter(VECTOR).encode(np.zeros((2, 4)))


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**31 - 1, -1, -(2**31)])
def test_varint_matches_protobuf(value: int) -> None:
    encoded = varint(value)
    assert ObservationProto(shape=[value]).SerializeToString() == (
        b"\x0a" + bytes([len(encoded)]) + encoded
    )


def _actions(rows: list[dict[str, list]]) -> UnityRLInputProto.ListAgentActionProto:
    actions = UnityRLInputProto.ListAgentActionProto()
    for row in rows:
        actions.value.add(**row)
    return actions


@pytest.mark.parametrize(("continuous", "discrete"), [(2, 0), (0, 1), (3, 2), (0, 0)])
def test_action_decoder_reads_the_common_layout(continuous: int, discrete: int) -> None:
    rng = np.random.default_rng(continuous * 10 + discrete)
    c = rng.normal(size=(5, continuous)).astype(np.float32)
    d = rng.integers(0, 128, (5, discrete)).astype(np.int32)
    actions = _actions(
        [
            {"continuous_actions": cr.tolist(), "discrete_actions": dr.tolist()}
            for cr, dr in zip(c, d, strict=True)
        ]
    )
    decoded = ActionDecoder(continuous, discrete).decode(actions.SerializeToString(), 5)
    assert decoded is not None
    assert np.array_equal(decoded[0], c) and np.array_equal(decoded[1], d)
    assert decoded[0].shape == (5, continuous) and decoded[1].shape == (5, discrete)


@pytest.mark.parametrize(
    "rows",
    [
        [{"continuous_actions": [0.5], "discrete_actions": [1]}] * 2,  # too few floats
        [{"continuous_actions": [0.5, 1], "discrete_actions": [128]}] * 2,  # two-byte varint
        [{"continuous_actions": [0.5, 1], "discrete_actions": [-1]}] * 2,  # negative
        [
            {"continuous_actions": [0.5, 1], "discrete_actions": [1]},
            {"continuous_actions": [0.5, 1], "discrete_actions": [1], "value": 2.0},
        ],
        [
            {
                "continuous_actions": [0.5, 1],
                "discrete_actions": [1],
                "vector_actions_deprecated": [0.5],
            }
        ]
        * 2,
        [{"continuous_actions": [0.5, 1, 2]}, {"discrete_actions": [1, 2, 3, 4, 5]}],
    ],
)
def test_action_decoder_declines_other_layouts(rows: list[dict[str, list]]) -> None:
    decoder = ActionDecoder(2, 1)
    assert decoder.decode(_actions(rows).SerializeToString(), len(rows)) is None
