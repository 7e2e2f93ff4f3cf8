"""Protobuf -> numpy: behavior specs, observations (float and PNG), and batched steps.

This is on the hot path of every exchange, so it batches over agents with numpy and decodes
each PNG exactly once.
"""

from __future__ import annotations

import io
import itertools
import math
import struct
from collections.abc import Sequence

import numpy as np
import pyspng
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
from unity_gym.exception import UnityCommunicationException, UnityObservationException

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHUNK_HEADER = struct.Struct(">I4s")
# PNG colour types libspng decodes to the same arrays as Pillow at 8 bits per sample:
# greyscale, RGB and RGBA (what Unity's EncodeToPNG writes).
_SPNG_COLOR_TYPES = frozenset((0, 2, 6))
_OBSERVATION_TYPES = frozenset(t.value for t in ObservationType)
_ALL_DIMENSION_PROPERTIES = sum(DimensionProperty)


def observation_spec_from_proto(obs: ObservationProto) -> ObservationSpec:
    """The spec of one observation; a shape, dimension property or observation type that no
    ML-Agents player sends raises :class:`UnityObservationException`."""
    shape = tuple(int(d) for d in obs.shape)
    problem = ""
    if any(d < 0 for d in shape):
        problem = f"has a negative size in its shape {shape}"
    elif obs.observation_type not in _OBSERVATION_TYPES:
        problem = f"has the unknown observation type {obs.observation_type}"
    elif len(obs.dimension_properties) not in (0, len(shape)):
        problem = f"has {len(obs.dimension_properties)} dimension properties for shape {shape}"
    elif not all(0 <= d <= _ALL_DIMENSION_PROPERTIES for d in obs.dimension_properties):
        problem = f"has unknown dimension properties {list(obs.dimension_properties)}"
    if problem:
        raise UnityObservationException(
            f"The player's observation {obs.name!r} {problem}; the player does not follow the "
            "ML-Agents protocol (check its ML-Agents package version)."
        )
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
    """The action spec of a behavior; negative sizes or branches without actions raise
    :class:`UnityCommunicationException`."""
    spec = brain.action_spec
    if spec.num_continuous_actions == 0 and spec.num_discrete_actions == 0:
        # Players older than API 1.3 only fill the deprecated fields.
        sizes = tuple(brain.vector_action_size_deprecated)
        if brain.vector_action_space_type_deprecated == 1:
            result = ActionSpec(sizes[0] if sizes else -1, ())
        else:
            result = ActionSpec(0, sizes)
    else:
        result = ActionSpec(spec.num_continuous_actions, tuple(spec.discrete_branch_sizes))
    if result.continuous_size < 0 or any(b < 1 for b in result.discrete_branches):
        raise UnityCommunicationException(
            f"The player's behavior {brain.brain_name!r} declares an impossible action spec "
            f"({result}): a negative number of continuous actions or a discrete branch without "
            "actions. The player does not follow the ML-Agents protocol (check its ML-Agents "
            "package version)."
        )
    return result


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


def decode_png(png: bytes) -> np.ndarray:
    """One PNG file as an (H, W) or (H, W, C) array of its stored samples.

    8-bit greyscale, RGB and RGBA images (all Unity writes) go through libspng (pyspng), about
    five times faster than Pillow on small observations; anything else (palette, 16-bit,
    grey+alpha, 1-bit) through Pillow, whose arrays define the result for those.
    """
    try:
        # IHDR is the first chunk: bit depth and colour type follow width and height.
        if png[12:16] == b"IHDR" and png[24] == 8 and png[25] in _SPNG_COLOR_TYPES:
            array: np.ndarray = pyspng.load(png)
            return array
        with Image.open(io.BytesIO(png)) as image:
            return np.asarray(image)
    except Exception as err:  # both decoders raise several types for corrupt data
        raise UnityObservationException(f"Could not decode a PNG observation: {err}") from None


def decode_png_observation(
    data: bytes, shape: Sequence[int], channel_mapping: Sequence[int] = ()
) -> np.ndarray:
    """Decode PNG bytes into a channel-first float32 array in [0, 1] of ``shape`` (C, H, W)."""
    planes = []
    for png in split_png_stream(data):
        array = decode_png(png)
        if array.ndim == 2:
            array = array[:, :, None]
        planes.append(array)
    if not planes:
        raise UnityObservationException("Compressed observation has no data (no PNG image).")
    if len({plane.shape[:2] for plane in planes}) > 1:
        sizes = ", ".join(f"{p.shape[1]}x{p.shape[0]}" for p in planes)
        raise UnityObservationException(
            f"Compressed observation stacks PNG images of different sizes ({sizes}); all the "
            "images of one observation must have its height and width."
        )
    stacked = np.concatenate(planes, axis=2) if len(planes) > 1 else planes[0]
    # Scale before averaging channels: the same float32 rounding as ML-Agents' loader.
    scaled = stacked.astype(np.float32) / np.float32(255.0)
    channels = int(shape[0])
    if len(channel_mapping) > 0:
        scaled = _apply_channel_mapping(scaled, list(channel_mapping))
    elif channels == 1 and scaled.shape[2] != 1:
        scaled = scaled.mean(axis=2, keepdims=True)
    else:
        scaled = scaled[:, :, :channels]
    result = np.moveaxis(scaled, 2, 0)
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
    targets = np.asarray(mapping)
    return np.stack([stacked[:, :, targets == target].mean(axis=2) for target in used], axis=2)


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
    try:
        observations = [info.observations[index] for info in infos]
    except IndexError:
        raise UnityObservationException(
            f"An agent sent fewer observations than the behavior spec's "
            f"{index + 1}; all agents of a behavior must send the same observations."
        ) from None
    if spec.is_visual and any(o.compression_type != COMPRESSION_NONE for o in observations):
        return np.stack([decode_observation(o, spec.shape) for o in observations])
    flat: list[float] = []
    for o in observations:
        flat.extend(o.float_data.data)
    batch = np.array(flat, dtype=np.float32)
    if batch.size != n * spec.size:
        _raise_shape_mismatch(index, spec, infos)
    # A float32 sum is inf/NaN whenever a value is; only then pay for the element-wise check.
    if not math.isfinite(batch.sum()) and not np.isfinite(batch).all():
        raise UnityObservationException(
            f"The observations provided by the player had NaN or infinite values (observation "
            f"{index}, {spec.name or 'unnamed'})."
        )
    return batch.reshape((n, *spec.shape))


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


def _scalars(infos: Sequence[AgentInfoProto]) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) float32 reward and group reward, (n, 2) int32 agent id and group id."""
    rewards = np.array([(a.reward, a.group_reward) for a in infos], dtype=np.float32)
    if not math.isfinite(rewards.sum()) and not np.isfinite(rewards).all():
        raise UnityObservationException(
            "The rewards (or group rewards) provided by the player had NaN or infinite values."
        )
    return rewards, np.array([(a.id, a.group_id) for a in infos], dtype=np.int32)


def steps_from_proto(
    agent_infos: Sequence[AgentInfoProto], spec: BehaviorSpec
) -> tuple[DecisionSteps, TerminalSteps]:
    """Split agent infos into decision (not done) and terminal (done) batches."""
    dones = [info.done for info in agent_infos]
    if True in dones:
        decision = [info for info, done in zip(agent_infos, dones, strict=True) if not done]
        terminal = [info for info, done in zip(agent_infos, dones, strict=True) if done]
    else:
        decision, terminal = list(agent_infos), []
    obs_specs = list(enumerate(spec.observation_specs))
    if decision:
        rewards, ids = _scalars(decision)
        decision_steps = DecisionSteps(
            obs=[_batch_observation(i, s, decision) for i, s in obs_specs],
            reward=rewards[:, 0],
            agent_id=ids[:, 0],
            group_id=ids[:, 1],
            group_reward=rewards[:, 1],
            action_mask=_action_masks(decision, spec.action_spec),
        )
    else:
        decision_steps = DecisionSteps.empty(spec)
    if terminal:
        rewards, ids = _scalars(terminal)
        terminal_steps = TerminalSteps(
            obs=[_batch_observation(i, s, terminal) for i, s in obs_specs],
            reward=rewards[:, 0],
            agent_id=ids[:, 0],
            group_id=ids[:, 1],
            group_reward=rewards[:, 1],
            interrupted=np.array([a.max_step_reached for a in terminal], dtype=bool),
        )
    else:
        terminal_steps = TerminalSteps.empty(spec)
    return decision_steps, terminal_steps


def _action_masks(
    infos: Sequence[AgentInfoProto], action_spec: ActionSpec
) -> list[np.ndarray] | None:
    """Per-branch masks (True = forbidden); agents sending no or a malformed mask allow all."""
    branches = action_spec.discrete_branches
    if not branches or len(infos) == 0:
        return None  # as mlagents_envs: no mask when no agent asks for a decision
    width = sum(branches)
    rows = [info.action_mask for info in infos]
    if all(len(row) == width for row in rows):
        mask = np.array(rows, dtype=bool).reshape(len(infos), width)
    else:
        mask = np.zeros((len(infos), width), dtype=bool)
        for index, row in enumerate(rows):
            if len(row) == width:
                mask[index] = row
    if len(branches) == 1:
        return [mask]
    bounds = np.cumsum((0, *branches))
    return [mask[:, start:stop] for start, stop in itertools.pairwise(bounds)]
