"""Agent infos and actions in protobuf's wire format, for speed.

Setting fields on ``AgentInfoProto`` messages one by one costs about 2 µs per agent in
Python, more than the simulation itself; joining precomputed byte strings and parsing the
result once (``ListAgentInfoProto.MergeFromString``) costs about a quarter of that. The
bytes are what protobuf itself would write, except that fields equal to their default (a
zero reward, id 0) may be present: every parser reads those as if absent.

Reading actions field by field is as slow; :class:`ActionDecoder` reads a whole
``ListAgentActionProto`` from its serialized bytes with numpy when every action has the
layout that Python trainers write (see there), and says so when not.

Field numbers come from ``agent_info.proto``, ``observation.proto`` and
``agent_action.proto``; the tests check both directions against the protobuf API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

_VARINT, _FIXED32, _LENGTH_DELIMITED = 0, 5, 2

# ListAgentInfoProto
LIST_VALUE = 1
# AgentInfoProto
INFO_REWARD, INFO_DONE, INFO_MAX_STEP_REACHED, INFO_ID = 7, 8, 9, 10
INFO_ACTION_MASK, INFO_OBSERVATIONS = 11, 13
# ObservationProto
OBS_SHAPE, OBS_COMPRESSION_TYPE, OBS_COMPRESSED_DATA, OBS_FLOAT_DATA = 1, 2, 3, 4
OBS_DIMENSION_PROPERTIES, OBS_OBSERVATION_TYPE, OBS_NAME = 6, 7, 8
# ObservationProto.FloatData
FLOAT_DATA_DATA = 1
# AgentActionProto
ACTION_CONTINUOUS, ACTION_DISCRETE = 6, 7

_SMALL = [bytes((n,)) for n in range(128)]


def varint(value: int) -> bytes:
    """Base-128 varint of an int32/int64/uint value (negatives as 10-byte two's complement)."""
    if 0 <= value < 128:
        return _SMALL[value]
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def varint_field(field: int, value: int) -> bytes:
    return tag(field, _VARINT) + varint(value)


def length_prefix(field: int, length: int) -> bytes:
    """Tag and length of a length-delimited field whose payload is ``length`` bytes."""
    return tag(field, _LENGTH_DELIMITED) + varint(length)


def bytes_field(field: int, payload: bytes) -> bytes:
    return length_prefix(field, len(payload)) + payload


def packed_varints(field: int, values: Sequence[int]) -> bytes:
    """A packed repeated integer field; nothing at all when ``values`` is empty."""
    return bytes_field(field, b"".join(varint(v) for v in values)) if values else b""


def observation_entry(observation: bytes) -> bytes:
    """One ``observations`` entry of an AgentInfoProto from a serialized ObservationProto."""
    return bytes_field(INFO_OBSERVATIONS, observation)


@dataclass(frozen=True)
class FixedEntry:
    """How an observation writes equal-size entries: ``head + data + tail``.

    ``data`` is the agent's ``size`` variable bytes (its floats, for vector observations).
    """

    head: bytes
    size: int
    tail: bytes

    def entries(self, data: np.ndarray) -> list[bytes]:
        """One entry per row of uint8 ``data`` ``(k, size)``."""
        flat, size, head, tail = data.tobytes(), self.size, self.head, self.tail
        return [head + flat[i : i + size] + tail for i in range(0, len(flat), size)]


# An observation spec's entries for a batch: uint8 data rows (k, size) when the spec has a
# FixedEntry, else one complete entry per agent.
ObservationEntries = np.ndarray | list[bytes]

_REWARD_TAG = tag(INFO_REWARD, _FIXED32)
_VALUE_TAG = tag(LIST_VALUE, _LENGTH_DELIMITED)
# Done infos always carry max_step_reached (false or true), so that they have one size.
_DONE_FIELDS = (
    varint_field(INFO_DONE, 1) + varint_field(INFO_MAX_STEP_REACHED, 0),
    varint_field(INFO_DONE, 1) + varint_field(INFO_MAX_STEP_REACHED, 1),
)
_DONE_SIZE = len(_DONE_FIELDS[0])


@dataclass(frozen=True)
class _Layout:
    """Where the variable bytes sit in equal-size infos, and every agent's other bytes."""

    base: np.ndarray  # uint8 (n, size): agent i's info with zero rewards, flags and data
    reward: slice
    flag: int  # the max_step_reached value byte of done infos
    mask: slice
    observations: tuple[slice, ...]


class AgentInfoEncoder:
    """Encodes one behavior's agent infos as ``ListAgentInfoProto`` wire bytes.

    ``ids`` are the behavior's agent ids by agent index, ``mask_size`` the sum of its
    discrete branch sizes, ``observations`` each observation spec's FixedEntry, or None if
    its entries vary in size (PNG). Infos are joined agent by agent, except in the common
    case of many agents with fixed-size observations only (and ids of one varint size):
    then all infos have one size, and numpy writes the variable bytes into a copy of the
    agents' rows of a precomputed byte matrix.
    """

    # Below this many agents, joining bytes agent by agent is faster than numpy.
    MATRIX_MIN_AGENTS = 4

    def __init__(
        self, ids: np.ndarray, mask_size: int, observations: Sequence[FixedEntry | None]
    ) -> None:
        self._id_fields = [varint_field(INFO_ID, agent_id) for agent_id in ids.tolist()]
        self._mask_size = mask_size
        self._mask_prefix = length_prefix(INFO_ACTION_MASK, mask_size)
        self._fixed = list(observations)
        one_id_size = len({len(f) for f in self._id_fields}) <= 1
        self._matrix = bool(ids.size) and one_id_size and None not in self._fixed
        self._layouts: dict[tuple[bool, bool], _Layout] = {}

    def encode(
        self,
        agents: np.ndarray,
        rewards: np.ndarray,
        observations: Sequence[ObservationEntries],
        action_mask: np.ndarray | None,
        max_step_reached: np.ndarray | None,
    ) -> bytes:
        """Wire bytes of the ``value`` entries for ``agents``, in order.

        ``rewards`` holds one value per agent, ``observations`` the entries of each
        observation spec, ``action_mask`` is bool ``(k, mask_size)`` or None (all allowed),
        and ``max_step_reached`` given marks done infos.
        """
        if self._mask_size == 0:
            action_mask = None
        if self._matrix and len(agents) >= self.MATRIX_MIN_AGENTS:
            data = cast(Sequence[np.ndarray], observations)
            return self._encode_matrix(agents, rewards, data, action_mask, max_step_reached)
        return self._encode_each(agents, rewards, observations, action_mask, max_step_reached)

    def _encode_each(
        self,
        agents: np.ndarray,
        rewards: np.ndarray,
        observations: Sequence[ObservationEntries],
        action_mask: np.ndarray | None,
        max_step_reached: np.ndarray | None,
    ) -> bytes:
        k = len(agents)
        reward_bytes = np.asarray(rewards, dtype="<f4").tobytes()
        if max_step_reached is None:
            status: Sequence[bytes] = [b""] * k
        else:
            status = [_DONE_FIELDS[flag] for flag in max_step_reached.tolist()]
        if action_mask is None:
            masks: Sequence[bytes] = [b""] * k
        else:
            width, prefix = self._mask_size, self._mask_prefix
            flat = np.ascontiguousarray(action_mask, dtype=bool).tobytes()
            masks = [prefix + flat[i : i + width] for i in range(0, k * width, width)]
        entries = [
            cast(list[bytes], e) if fixed is None else fixed.entries(cast(np.ndarray, e))
            for fixed, e in zip(self._fixed, observations, strict=True)
        ]
        id_fields = self._id_fields
        per_agent = zip(agents.tolist(), status, masks, *entries, strict=True)
        parts: list[bytes] = []
        for j, (agent, done, mask, *agent_entries) in enumerate(per_agent):
            body = b"".join(
                (
                    _REWARD_TAG,
                    reward_bytes[4 * j : 4 * j + 4],
                    done,
                    id_fields[agent],
                    mask,
                    *agent_entries,
                )
            )
            parts += (_VALUE_TAG, varint(len(body)), body)
        return b"".join(parts)

    def _encode_matrix(
        self,
        agents: np.ndarray,
        rewards: np.ndarray,
        observations: Sequence[np.ndarray],
        action_mask: np.ndarray | None,
        max_step_reached: np.ndarray | None,
    ) -> bytes:
        k = len(agents)
        key = (max_step_reached is not None, action_mask is not None)
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._layouts[key] = self._layout(*key)
        out = layout.base.copy() if k == len(layout.base) else layout.base[agents]
        out[:, layout.reward] = np.asarray(rewards, dtype="<f4").view(np.uint8).reshape(k, 4)
        if max_step_reached is not None:
            out[:, layout.flag] = max_step_reached
        if action_mask is not None:
            out[:, layout.mask] = np.reshape(action_mask, (k, self._mask_size))
        for columns, data in zip(layout.observations, observations, strict=True):
            out[:, columns] = data
        return out.tobytes()

    def _layout(self, done: bool, masked: bool) -> _Layout:
        """Every agent's info with zeros in the variable bytes, and where those are."""
        fixed = cast(list[FixedEntry], self._fixed)
        n = len(self._id_fields)
        everyone = np.arange(n)
        base = self._encode_each(
            everyone,
            np.zeros(n),
            [np.zeros((n, f.size), dtype=np.uint8) for f in fixed],
            np.zeros((n, self._mask_size), dtype=bool) if masked else None,
            np.zeros(n, dtype=bool) if done else None,
        )
        matrix = np.frombuffer(base, dtype=np.uint8).reshape(n, -1).copy()
        size = matrix.shape[1]
        # Offsets in an info: value tag and length, reward tag and value, done fields, id,
        # mask, observations.
        at = len(_VALUE_TAG) + 1
        while len(varint(size - at)) != at - len(_VALUE_TAG):  # the body length's varint
            at += 1
        at += len(_REWARD_TAG)
        reward = slice(at, at + 4)
        at += 4
        flag = at + _DONE_SIZE - 1
        at += _DONE_SIZE if done else 0
        at += len(self._id_fields[0])
        mask = slice(at + len(self._mask_prefix), at + len(self._mask_prefix) + self._mask_size)
        at = mask.stop if masked else at
        columns = []
        for f in fixed:
            at += len(f.head)
            columns.append(slice(at, at + f.size))
            at += f.size + len(f.tail)
        assert at == size, "info layout mismatch"
        return _Layout(matrix, reward, flag, mask, tuple(columns))


class ActionDecoder:
    """Reads a behavior's ``ListAgentActionProto`` into arrays, when its layout allows.

    The fast layout: every ``AgentActionProto`` holds exactly ``continuous_size`` floats and
    ``discrete_size`` discrete actions, each in 0..127 (one varint byte), and nothing else.
    Then every entry has the same bytes but the values, and one reshape of the serialized
    list exposes them. Anything else (legacy fields, other sizes, large or negative discrete
    values) makes :meth:`decode` return None: read those field by field.
    """

    def __init__(self, continuous_size: int, discrete_size: int) -> None:
        float_size = 4 * continuous_size
        floats = length_prefix(ACTION_CONTINUOUS, float_size) if continuous_size else b""
        ints = length_prefix(ACTION_DISCRETE, discrete_size) if discrete_size else b""
        body_size = len(floats) + float_size + len(ints) + discrete_size
        prefix = length_prefix(LIST_VALUE, body_size)
        start = len(prefix) + len(floats)
        self._floats = slice(start, start + float_size)
        start = self._floats.stop + len(ints)
        self._ints = slice(start, start + discrete_size)
        self._entry_size = len(prefix) + body_size
        # Bits that must match in every entry: all of the field tags and lengths, and the
        # continuation bit of the one-byte discrete varints.
        self._check_bits = np.full(self._entry_size, 0xFF, dtype=np.uint8)
        self._check_bits[self._floats] = 0
        self._check_bits[self._ints] = 0x80
        expected = np.frombuffer(prefix + floats + bytes(float_size) + ints, dtype=np.uint8)
        self._expected_entry = np.zeros(self._entry_size, dtype=np.uint8)
        self._expected_entry[: len(expected)] = expected
        self._checks: dict[int, tuple[np.ndarray, bytes]] = {}  # by action count
        self._continuous_size = continuous_size
        self._discrete_size = discrete_size

    def decode(self, serialized: bytes, count: int) -> tuple[np.ndarray, np.ndarray] | None:
        """``(continuous float32 (count, c), discrete int32 (count, d))``, or None.

        ``serialized`` is the ``SerializeToString()`` of a list of ``count`` actions.
        """
        if len(serialized) != count * self._entry_size:
            return None
        rows = np.frombuffer(serialized, dtype=np.uint8).reshape(count, self._entry_size)
        checks = self._checks.get(count)
        if checks is None:  # whole-matrix operands: numpy broadcasting is slow on small data
            checks = self._checks[count] = (
                np.tile(self._check_bits, (count, 1)),
                self._expected_entry.tobytes() * count,
            )
        if np.bitwise_and(rows, checks[0]).tobytes() != checks[1]:
            return None
        continuous = np.frombuffer(rows[:, self._floats].tobytes(), dtype="<f4")
        if self._discrete_size:
            discrete = rows[:, self._ints].astype(np.int32)
        else:
            discrete = np.zeros((count, 0), dtype=np.int32)
        return continuous.reshape(count, self._continuous_size), discrete
