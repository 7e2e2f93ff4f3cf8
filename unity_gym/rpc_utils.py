"""Protobuf -> numpy: behavior specs, observations (float and PNG), and batched steps.

This is on the hot path of every exchange, so it batches over agents with numpy and decodes
each PNG exactly once.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from itertools import chain

import numpy as np
from PIL import Image

from unity_gym.base_env import (
    ActionSpec,
    BehaviorSpec,
    DecisionSteps,
    DimensionProperty,
    ObservationSpec,
    ObservationType,
    TerminalSteps,
)
from unity_gym.communicator_objects.agent_info_pb2 import AgentInfoProto
from unity_gym.communicator_objects.brain_parameters_pb2 import BrainParametersProto
from unity_gym.communicator_objects.observation_pb2 import NONE as COMPRESSION_NONE
from unity_gym.communicator_objects.observation_pb2 import ObservationProto
from unity_gym.exception import UnityObservationException

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHUNK_HEADER = struct.Struct(">I4s")


def observation_spec_from_proto(obs: ObservationProto) -> ObservationSpec:
    shape = tuple(int(d) for d in obs.shape)
    if len(obs.dimension_properties) > 0:
        props = tuple(DimensionProperty(d) for d in obs.dimension_properties)
    else:
        props = (DimensionProperty.UNSPECIFIED,) * len(shape)
    return ObservationSpec(
        shape=shape,
        dimension_property=props,
        observation_type=ObservationType(obs.observation_type),
        name=obs.name,
    )


def action_spec_from_proto(brain: BrainParametersProto) -> ActionSpec:
    spec = brain.action_spec
    if spec.num_continuous_actions == 0 and spec.num_discrete_actions == 0:
        # Players older than API 1.3 only fill the deprecated fields.
        if brain.vector_action_space_type_deprecated == 1:
            return ActionSpec(int(brain.vector_action_size_deprecated[0]), ())
        return ActionSpec(0, tuple(brain.vector_action_size_deprecated))
    return ActionSpec(spec.num_continuous_actions, tuple(spec.discrete_branch_sizes))


def behavior_spec_from_proto(
    brain: BrainParametersProto, agent_info: AgentInfoProto
) -> BehaviorSpec:
    """Observation specs come from an agent's first observations, actions from the brain."""
    return BehaviorSpec(
        observation_specs=[observation_spec_from_proto(o) for o in agent_info.observations],
        action_spec=action_spec_from_proto(brain),
    )


def split_png_stream(data: bytes) -> list[bytes]:
    """Split concatenated PNG files by walking their chunks up to each IEND."""
    images = []
    offset = 0
    total = len(data)
    while offset < total:
        if data[offset : offset + 8] != PNG_SIGNATURE:
            raise UnityObservationException(
                f"Compressed observation is not a PNG stream (no PNG signature at byte {offset})."
            )
        pos = offset + 8
        while True:
            if pos + 12 > total:
                raise UnityObservationException("Compressed observation ends inside a PNG chunk.")
            length, kind = _CHUNK_HEADER.unpack_from(data, pos)
            pos += 12 + length
            if kind == b"IEND":
                break
        images.append(data[offset:pos])
        offset = pos
    return images


def decode_png_observation(
    data: bytes, shape: Sequence[int], channel_mapping: Sequence[int] = ()
) -> np.ndarray:
    """Decode PNG bytes into a channel-first float32 array in [0, 1] of ``shape`` (C, H, W)."""
    planes = []
    for png in split_png_stream(data):
        try:
            with Image.open(io.BytesIO(png)) as image:
                array = np.asarray(image)
        except Exception as err:  # Pillow raises several types for corrupt data
            raise UnityObservationException(f"Could not decode a PNG observation: {err}") from None
        if array.ndim == 2:
            array = array[:, :, None]
        planes.append(array)
    stacked = np.concatenate(planes, axis=2) if len(planes) > 1 else planes[0]
    channels = int(shape[0])
    if len(channel_mapping) > 0:
        stacked = _apply_channel_mapping(stacked, list(channel_mapping))
    elif channels == 1 and stacked.shape[2] != 1:
        stacked = stacked.astype(np.float32).mean(axis=2, keepdims=True)
    else:
        stacked = stacked[:, :, :channels]
    result = np.moveaxis(stacked, 2, 0).astype(np.float32) / 255.0
    if result.shape != tuple(shape):
        raise UnityObservationException(
            f"Decompressed observation did not have the expected shape - decompressed had "
            f"{result.shape} but expected {tuple(shape)}."
        )
    return result


def _apply_channel_mapping(stacked: np.ndarray, mapping: list[int]) -> np.ndarray:
    """Average decoded channels into output channels; -1 drops padding channels."""
    if len(mapping) != stacked.shape[2]:
        raise UnityObservationException(
            f"Compressed observation and its mapping had different number of channels - "
            f"observation had {stacked.shape[2]} channels but its mapping had {len(mapping)}."
        )
    used = sorted({m for m in mapping if m > -1})
    if used != list(range(len(used))):
        raise UnityObservationException(
            f"Invalid Compressed Channel Mapping: the mapping {mapping} does not have the "
            "correct format."
        )
    out = np.zeros((*stacked.shape[:2], len(used)), dtype=np.float32)
    counts = np.zeros(len(used), dtype=np.float32)
    for source, target in enumerate(mapping):
        if target > -1:
            out[:, :, target] += stacked[:, :, source]
            counts[target] += 1
    return out / counts


def decode_observation(obs: ObservationProto, shape: Sequence[int] | None = None) -> np.ndarray:
    """One agent's observation as float32 with its declared shape."""
    target = tuple(obs.shape) if shape is None else tuple(shape)
    if obs.compression_type == COMPRESSION_NONE:
        data = np.asarray(obs.float_data.data, dtype=np.float32)
        if data.size != int(np.prod(target)):
            raise UnityObservationException(
                f"Observation {obs.name!r} has {data.size} values but its shape {target} needs "
                f"{int(np.prod(target))}."
            )
        return data.reshape(target)
    return decode_png_observation(obs.compressed_data, target, obs.compressed_channel_mapping)


def _batch_observation(
    index: int, spec: ObservationSpec, infos: Sequence[AgentInfoProto]
) -> np.ndarray:
    n = len(infos)
    if n == 0:
        return np.zeros((0, *spec.shape), dtype=np.float32)
    size = int(np.prod(spec.shape))
    try:
        observations = [info.observations[index] for info in infos]
    except IndexError:
        raise UnityObservationException(
            f"An agent sent fewer observations than the behavior spec's "
            f"{index + 1}; all agents of a behavior must send the same observations."
        ) from None
    if all(o.compression_type == COMPRESSION_NONE for o in observations):
        flat = np.fromiter(
            chain.from_iterable(o.float_data.data for o in observations),
            dtype=np.float32,
        )
        if flat.size != n * size:
            _raise_shape_mismatch(index, spec, infos)
        batch = flat.reshape((n, *spec.shape))
    else:
        batch = np.stack([decode_observation(o, spec.shape) for o in observations])
    return batch


def _raise_shape_mismatch(
    index: int, spec: ObservationSpec, infos: Sequence[AgentInfoProto]
) -> None:
    for info in infos:
        got = tuple(info.observations[index].shape)
        if got != spec.shape or len(info.observations[index].float_data.data) != int(
            np.prod(spec.shape)
        ):
            raise UnityObservationException(
                f"Observation at index={index} for agent with id={info.id} didn't match the "
                f"ObservationSpec. Expected shape {spec.shape} but got {got}."
            )
    raise UnityObservationException(f"Observation at index={index} has an unexpected size.")


def _check_finite(values: np.ndarray, what: str) -> None:
    if values.size and not np.isfinite(values).all():
        raise UnityObservationException(
            f"The {what} provided by the player had NaN or infinite values."
        )


def steps_from_proto(
    agent_infos: Sequence[AgentInfoProto], spec: BehaviorSpec
) -> tuple[DecisionSteps, TerminalSteps]:
    """Split agent infos into decision (not done) and terminal (done) batches."""
    decision = [a for a in agent_infos if not a.done]
    terminal = [a for a in agent_infos if a.done]
    steps = []
    for infos in (decision, terminal):
        obs = [_batch_observation(i, s, infos) for i, s in enumerate(spec.observation_specs)]
        for o, s in zip(obs, spec.observation_specs, strict=True):
            if not s.is_visual:
                _check_finite(o, "observations")
        reward = np.fromiter((a.reward for a in infos), dtype=np.float32, count=len(infos))
        group_reward = np.fromiter((a.group_reward for a in infos), np.float32, len(infos))
        _check_finite(reward, "rewards")
        _check_finite(group_reward, "group rewards")
        agent_id = np.fromiter((a.id for a in infos), dtype=np.int32, count=len(infos))
        group_id = np.fromiter((a.group_id for a in infos), dtype=np.int32, count=len(infos))
        steps.append((obs, reward, agent_id, group_id, group_reward))

    obs, reward, agent_id, group_id, group_reward = steps[0]
    decision_steps = DecisionSteps(
        obs=obs,
        reward=reward,
        agent_id=agent_id,
        group_id=group_id,
        group_reward=group_reward,
        action_mask=_action_masks(decision, spec.action_spec),
    )
    obs, reward, agent_id, group_id, group_reward = steps[1]
    terminal_steps = TerminalSteps(
        obs=obs,
        reward=reward,
        agent_id=agent_id,
        group_id=group_id,
        group_reward=group_reward,
        interrupted=np.fromiter((a.max_step_reached for a in terminal), bool, len(terminal)),
    )
    return decision_steps, terminal_steps


def _action_masks(
    infos: Sequence[AgentInfoProto], action_spec: ActionSpec
) -> list[np.ndarray] | None:
    """Per-branch masks (True = forbidden); agents sending no or a malformed mask allow all."""
    if action_spec.discrete_size == 0:
        return None
    width = sum(action_spec.discrete_branches)
    mask = np.zeros((len(infos), width), dtype=bool)
    for row, info in enumerate(infos):
        if len(info.action_mask) == width:
            mask[row] = info.action_mask
    splits = np.cumsum(action_spec.discrete_branches)[:-1]
    return np.split(mask, splits, axis=1)
