"""Payload codec of side-channel messages: little-endian values, read back in write order.

Strings are an int32 byte length followed by ASCII bytes (what the C# side reads and writes);
float lists are an int32 count followed by float32 values.
"""

from __future__ import annotations

import struct

from unity_gym.exception import UnitySideChannelException

_BOOL = struct.Struct("<?")
_INT32 = struct.Struct("<i")
_FLOAT32 = struct.Struct("<f")
_FLOAT32_MAX = 3.4028234663852886e38


class OutgoingMessage:
    """A message being written for the other side."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def write_bool(self, b: bool) -> None:
        self.buffer += _BOOL.pack(bool(b))

    def write_int32(self, i: int) -> None:
        try:
            self.buffer += _INT32.pack(int(i))
        except struct.error as err:
            raise UnitySideChannelException(f"{i} does not fit in an int32: {err}") from None

    def write_float32(self, f: float) -> None:
        self._write_floats([float(f)])

    def write_float32_list(self, float_list: list[float]) -> None:
        self.write_int32(len(float_list))
        self._write_floats(float_list)

    def _write_floats(self, values: list[float]) -> None:
        """The values as float32, without a count; one too large for a float32 raises."""
        try:
            self.buffer += struct.pack(f"<{len(values)}f", *values)
        except OverflowError:
            big = next(v for v in values if abs(v) > _FLOAT32_MAX)
            raise UnitySideChannelException(
                f"{big} is too large for a float32 (at most {_FLOAT32_MAX:.4g}); side-channel "
                "values travel as float32, so use a smaller value."
            ) from None

    def write_string(self, s: str) -> None:
        try:
            encoded = s.encode("ascii")
        except UnicodeEncodeError:
            raise UnitySideChannelException(
                f"Side-channel strings must be ASCII (Unity decodes them as ASCII); got {s!r}."
            ) from None
        self.write_int32(len(encoded))
        self.buffer += encoded

    def set_raw_bytes(self, buffer: bytes | bytearray) -> None:
        """Replace the whole payload (for channels with their own format)."""
        self.buffer = bytearray(buffer)


class IncomingMessage:
    """A message received from the other side. Reads past the end return the default."""

    def __init__(self, buffer: bytes, offset: int = 0) -> None:
        self.buffer = bytes(buffer)
        self.offset = offset

    def _unpack(self, fmt: struct.Struct) -> object:
        try:
            (value,) = fmt.unpack_from(self.buffer, self.offset)
        except struct.error:
            raise UnitySideChannelException(
                f"Side-channel message ended after {len(self.buffer) - self.offset} of "
                f"{fmt.size} bytes of a value; the two sides disagree on the message format."
            ) from None
        self.offset += fmt.size
        return value

    def _at_end(self) -> bool:
        return self.offset >= len(self.buffer)

    def read_bool(self, default_value: bool = False) -> bool:
        return default_value if self._at_end() else bool(self._unpack(_BOOL))

    def read_int32(self, default_value: int = 0) -> int:
        return default_value if self._at_end() else int(self._unpack(_INT32))  # type: ignore[call-overload]

    def read_float32(self, default_value: float = 0.0) -> float:
        return default_value if self._at_end() else float(self._unpack(_FLOAT32))  # type: ignore[arg-type]

    def read_float32_list(self, default_value: list[float] | None = None) -> list[float]:
        if self._at_end():
            return [] if default_value is None else default_value
        count = self.read_int32()
        end = self.offset + 4 * count
        if count < 0 or end > len(self.buffer):
            raise UnitySideChannelException(
                f"Side-channel float list claims {count} values but the message is too short."
            )
        values = list(struct.unpack_from(f"<{count}f", self.buffer, self.offset))
        self.offset = end
        return values

    def read_string(self, default_value: str = "") -> str:
        if self._at_end():
            return default_value
        length = self.read_int32()
        end = self.offset + length
        if length < 0 or end > len(self.buffer):
            raise UnitySideChannelException(
                f"Side-channel string claims {length} bytes but the message is too short."
            )
        value = self.buffer[self.offset : end].decode("ascii", errors="replace")
        self.offset = end
        return value

    def get_raw_bytes(self) -> bytes:
        return self.buffer
