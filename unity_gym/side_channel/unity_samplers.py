"""Unity's environment-parameter samplers, ported from ML-Agents' C# (release 21) bit for bit.

Each class mirrors one C# file of ``com.unity.ml-agents/Runtime``:

* :class:`UniformSampler`, :class:`GaussianSampler`, :class:`MultiRangeUniformSampler`:
  ``SamplerFactory.CreateUniformSampler`` / ``CreateGaussianSampler`` /
  ``CreateMultiRangeUniformSampler`` in ``Sampler.cs``;
* :class:`RandomNormal`: ``Inference/Utils/RandomNormal.cs`` (Marsaglia polar method, keeping the
  second value of each pair for the next call);
* :class:`Multinomial`: ``Inference/Utils/Multinomial.cs`` (walk an unnormalised CMF).

All of them draw from :class:`~unity_gym.side_channel.dotnet_random.DotNetRandom`, the port of
``System.Random(seed)``. C# ``float`` arithmetic is emulated by rounding the result of every
single-precision operation to float32 (:func:`to_float32`), i.e. IEEE single precision as IL2CPP
and CoreCLR compute it (a runtime that kept float intermediates in double precision could differ
in a value's last bit); ``double`` steps use Python floats, which are IEEE doubles.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from unity_gym.side_channel.dotnet_random import DotNetRandom, wrap_int32

_FLOAT32 = struct.Struct("<f")
_DOUBLE_EPSILON = math.ulp(0.0)  # C#'s double.Epsilon: the smallest subnormal, not 2**-52


def to_float32(value: float) -> float:
    """``value`` rounded to the nearest float32 (C#'s ``(float)`` cast; too large -> infinity)."""
    try:
        result: float = _FLOAT32.unpack(_FLOAT32.pack(value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)
    return result


def _float32_divide(numerator: float, denominator: float) -> float:
    """C#'s float division, which yields infinity or NaN where Python would raise."""
    if denominator == 0.0:
        if numerator == 0.0 or math.isnan(numerator):
            return math.nan
        return math.copysign(math.inf, numerator) * math.copysign(1.0, denominator)
    return to_float32(numerator / denominator)


class RandomNormal:
    """Normally distributed doubles from ``System.Random(seed)`` by Marsaglia's polar method.

    Each accepted pair ``(u, v)`` yields ``v`` now and keeps ``u`` for the next call, exactly as
    the C# class does, so draws alternate between fresh pairs and the cached spare.
    """

    def __init__(self, seed: int, mean: float = 0.0, stddev: float = 1.0) -> None:
        # The C# constructor takes float arguments and widens them to double.
        self._mean = to_float32(mean)
        self._stddev = to_float32(stddev)
        self._random = DotNetRandom(seed)
        self._has_spare = False
        self._spare_unscaled = 0.0

    def next_double(self) -> float:
        """The next draw, ``z * stddev + mean`` in double precision."""
        if self._has_spare:
            self._has_spare = False
            return self._spare_unscaled * self._stddev + self._mean
        while True:
            u = self._random.next_double() * 2.0 - 1.0
            v = self._random.next_double() * 2.0 - 1.0
            s = u * u + v * v
            # Rejects s >= 1 and, since double.Epsilon is the smallest subnormal, only s == 0.
            if s < 1.0 and abs(s) >= _DOUBLE_EPSILON:
                break
        s = math.sqrt(-2.0 * math.log(s) / s)
        self._spare_unscaled = u * s
        self._has_spare = True
        return v * s * self._stddev + self._mean


class Multinomial:
    """Index draws from a cumulative mass function that need not end at 1."""

    def __init__(self, seed: int) -> None:
        self._random = DotNetRandom(seed)

    def sample(self, cmf: Sequence[float]) -> int:
        """The first index whose CMF entry is at least ``NextDouble() * cmf[-1]`` (in float).

        Like the C# code this raises (IndexError here) for an empty CMF or one that the draw
        overshoots, which takes a CMF ending below zero.
        """
        if not cmf:
            raise IndexError("Multinomial.sample needs a non-empty CMF.")
        p = to_float32(to_float32(self._random.next_double()) * cmf[-1])
        index = 0
        while cmf[index] < p:
            index += 1
        return index


class UniformSampler:
    """``min + (float)NextDouble() * (max - min)`` in float, from ``System.Random(seed)``."""

    def __init__(self, min_value: float, max_value: float, seed: int) -> None:
        self._min = to_float32(min_value)
        self._span = to_float32(to_float32(max_value) - self._min)
        self._random = DotNetRandom(seed)

    def __call__(self) -> float:
        scaled = to_float32(to_float32(self._random.next_double()) * self._span)
        return to_float32(self._min + scaled)


class GaussianSampler:
    """``(float)`` of :class:`RandomNormal`'s next double."""

    def __init__(self, mean: float, stddev: float, seed: int) -> None:
        self._normal = RandomNormal(seed, mean, stddev)

    def __call__(self) -> float:
        return to_float32(self._normal.next_double())


class MultiRangeUniformSampler:
    """Uniform within one of several intervals, picked with probability proportional to length.

    As in C#, the interval is picked by a :class:`Multinomial` seeded ``seed + 1`` (int
    arithmetic, so ``int.MaxValue + 1`` wraps to ``int.MinValue``) over the float CMF of the
    normalised lengths; the value inside it comes from a separate ``System.Random(seed)``.
    ``intervals`` is flat, ``[min0, max0, min1, max1, ...]``; an odd last entry is ignored.
    """

    def __init__(self, intervals: Sequence[float], seed: int) -> None:
        values = [to_float32(v) for v in intervals]
        count = len(values) // 2
        self._random = DotNetRandom(seed)
        self._mins = [values[2 * i] for i in range(count)]
        self._sizes = [to_float32(values[2 * i + 1] - values[2 * i]) for i in range(count)]
        total = 0.0
        for size in self._sizes:
            total = to_float32(total + size)
        cmf = [_float32_divide(size, total) for size in self._sizes]
        for i in range(1, count):
            cmf[i] = to_float32(cmf[i] + cmf[i - 1])
        self._cmf = cmf
        self._interval_distribution = Multinomial(wrap_int32(seed + 1))

    def __call__(self) -> float:
        if not self._mins:
            # Unity throws IndexOutOfRangeException inside the scene's code here; a player
            # returns Unity's fallback for an unusable sampler (``() => 0.0f``) instead.
            return 0.0
        index = self._interval_distribution.sample(self._cmf)
        scaled = to_float32(to_float32(self._random.next_double()) * self._sizes[index])
        return to_float32(self._mins[index] + scaled)
