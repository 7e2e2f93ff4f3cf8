"""Observation protos from numpy batches, as Unity's sensors write them.

Vector observations go out uncompressed (``float_data``); visual ones as one PNG per agent
with shape ``(channels, height, width)``, which is what current Unity packages send. Writers
set the proto fields directly: that is about twice as fast as building messages from keyword
arguments, and this runs for every agent at every decision.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from unity_gym.base_env import ObservationSpec
from unity_gym.communicator_objects.observation_pb2 import PNG, ObservationProto

# Fast zlib setting: observations are encoded every step and decoded right away.
PNG_COMPRESS_LEVEL = 1


class ObservationWriter(ABC):
    """Writes one observation spec's values into ``ObservationProto`` messages."""

    def __init__(self, spec: ObservationSpec) -> None:
        self.spec = spec
        self._shape = list(spec.shape)
        self._dimension_properties = [int(d) for d in spec.dimension_property]
        self._observation_type = spec.observation_type.value

    def _write_header(self, target: ObservationProto) -> None:
        target.shape.extend(self._shape)
        target.dimension_properties.extend(self._dimension_properties)
        if self._observation_type:
            target.observation_type = self._observation_type  # type: ignore[assignment]
        target.name = self.spec.name

    @abstractmethod
    def payloads(self, batch: np.ndarray) -> Sequence[Any]:
        """Per-agent payloads of a batch (done once per batch, so it can be vectorised)."""

    @abstractmethod
    def write(self, target: ObservationProto, payload: Any) -> None:
        """Fill an empty ``target`` with one agent's payload."""


class VectorWriter(ObservationWriter):
    """Uncompressed float observations."""

    def payloads(self, batch: np.ndarray) -> Sequence[Any]:
        return np.asarray(batch, dtype=np.float32).reshape(len(batch), -1).tolist()

    def write(self, target: ObservationProto, payload: Any) -> None:
        self._write_header(target)
        target.float_data.data.extend(payload)


class PngWriter(ObservationWriter):
    """Visual observations as PNG; identical images are encoded once (bounded cache)."""

    CACHE_SIZE = 1024

    def __init__(self, spec: ObservationSpec) -> None:
        super().__init__(spec)
        self._cache: dict[bytes, bytes] = {}

    def encode(self, image: np.ndarray) -> bytes:
        """PNG bytes of a uint8 ``(height, width, channels)`` image."""
        key = image.tobytes()
        png = self._cache.get(key)
        if png is None:
            buffer = io.BytesIO()
            pixels = image[:, :, 0] if image.shape[2] == 1 else image
            Image.fromarray(np.ascontiguousarray(pixels)).save(
                buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL
            )
            png = buffer.getvalue()
            if len(self._cache) >= self.CACHE_SIZE:
                del self._cache[next(iter(self._cache))]
            self._cache[key] = png
        return png

    def payloads(self, batch: np.ndarray) -> Sequence[Any]:
        return [self.encode(image) for image in np.asarray(batch, dtype=np.uint8)]

    def write(self, target: ObservationProto, payload: Any) -> None:
        self._write_header(target)
        target.compression_type = PNG
        target.compressed_data = payload


def writer_for(spec: ObservationSpec) -> ObservationWriter:
    """PNG for visual (3-D) specs, floats for everything else."""
    return PngWriter(spec) if spec.is_visual else VectorWriter(spec)
