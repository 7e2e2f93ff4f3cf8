"""Observation protos from numpy batches, as Unity's sensors write them.

Vector observations go out uncompressed (``float_data``); visual ones as one PNG per agent
with shape ``(channels, height, width)``, which is what current Unity packages send. Writers
produce serialized ``observations`` entries of an AgentInfoProto (see :mod:`.wire`): the
constant part of each message (shape, dimension properties, type, name) is encoded once,
and an agent's entry is that header around its data.
"""

from __future__ import annotations

import struct
import zlib
from abc import ABC, abstractmethod

import numpy as np

from unity_gym.base_env import ObservationSpec
from unity_gym.communicator_objects.observation_pb2 import PNG
from unity_gym.players import wire

# Fast zlib setting: observations are encoded every step and decoded right away.
PNG_COMPRESS_LEVEL = 1
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type by channel count: grey, grey + alpha, RGB, RGBA.
_PNG_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}


def encode_png(image: np.ndarray, compress_level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """PNG bytes of a uint8 ``(height, width, channels)`` image, 1 to 4 channels.

    Written directly with zlib (no row filters): several times faster than Pillow for the
    small frames players render, and decoded by any PNG reader.
    """
    height, width, channels = image.shape
    color_type = _PNG_COLOR_TYPES.get(channels)
    if color_type is None:
        raise ValueError(f"PNG observations have 1 to 4 channels, not {channels}.")
    rows = np.zeros((height, width * channels + 1), dtype=np.uint8)  # filter byte 0 per row
    rows[:, 1:] = image.reshape(height, width * channels)
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    data = zlib.compress(rows.tobytes(), compress_level)
    return b"".join(
        (_PNG_SIGNATURE, _png_chunk(b"IHDR", header), _png_chunk(b"IDAT", data))
    ) + _png_chunk(b"IEND", b"")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


class ObservationWriter(ABC):
    """Encodes one observation spec's batches as ``observations`` entries, one per agent.

    Writers whose entries all have one size describe them with ``fixed_entry`` and return
    only each agent's variable bytes; the others return complete entries.
    """

    fixed_entry: wire.FixedEntry | None = None

    def __init__(self, spec: ObservationSpec) -> None:
        self.spec = spec

    def _fields(self, shape: tuple[int, ...]) -> tuple[bytes, bytes]:
        """Serialized ObservationProto fields before and after the data fields."""
        spec = self.spec
        before = wire.packed_varints(wire.OBS_SHAPE, shape)
        after = wire.packed_varints(
            wire.OBS_DIMENSION_PROPERTIES, [int(d) for d in spec.dimension_property]
        )
        if spec.observation_type.value:
            after += wire.varint_field(wire.OBS_OBSERVATION_TYPE, spec.observation_type.value)
        if spec.name:
            after += wire.bytes_field(wire.OBS_NAME, spec.name.encode())
        return before, after

    @abstractmethod
    def encode(self, batch: np.ndarray) -> wire.ObservationEntries:
        """The batch's entries, agent by agent (data rows for a ``fixed_entry`` writer)."""


class VectorWriter(ObservationWriter):
    """Uncompressed float observations: each agent's floats between a fixed head and tail."""

    def __init__(self, spec: ObservationSpec) -> None:
        super().__init__(spec)
        self._size = int(np.prod(spec.shape))
        before, tail = self._fields(spec.shape)
        data_size = 4 * self._size
        data_field = wire.length_prefix(wire.FLOAT_DATA_DATA, data_size) if data_size else b""
        float_data = wire.length_prefix(wire.OBS_FLOAT_DATA, len(data_field) + data_size)
        head = before + float_data + data_field
        entry_head = wire.length_prefix(wire.INFO_OBSERVATIONS, len(head) + data_size + len(tail))
        self.fixed_entry = wire.FixedEntry(entry_head + head, data_size, tail)

    def encode(self, batch: np.ndarray) -> np.ndarray:
        k = len(batch)
        values = np.ascontiguousarray(batch, dtype="<f4").reshape(k, -1)
        if values.shape[1] != self._size:
            raise ValueError(
                f"Observation {self.spec.name!r} has {self._size} values per agent, "
                f"not {values.shape[1]}."
            )
        return values.view(np.uint8)


class PngWriter(ObservationWriter):
    """Visual observations as PNG; identical images are encoded once (bounded cache)."""

    CACHE_SIZE = 1024

    def __init__(self, spec: ObservationSpec) -> None:
        super().__init__(spec)
        before, self._after = self._fields(spec.shape)
        self._before = before + wire.varint_field(wire.OBS_COMPRESSION_TYPE, PNG)
        self._cache: dict[bytes, bytes] = {}

    def entry(self, image: np.ndarray) -> bytes:
        """The ``observations`` entry of a uint8 ``(height, width, channels)`` image."""
        key = image.tobytes()
        entry = self._cache.get(key)
        if entry is None:
            png = wire.bytes_field(wire.OBS_COMPRESSED_DATA, encode_png(image))
            entry = wire.observation_entry(self._before + png + self._after)
            if len(self._cache) >= self.CACHE_SIZE:
                del self._cache[next(iter(self._cache))]
            self._cache[key] = entry
        return entry

    def encode(self, batch: np.ndarray) -> list[bytes]:
        return [self.entry(image) for image in np.asarray(batch, dtype=np.uint8)]


def writer_for(spec: ObservationSpec) -> ObservationWriter:
    """PNG for visual (3-D) specs, floats for everything else."""
    return PngWriter(spec) if spec.is_visual else VectorWriter(spec)
