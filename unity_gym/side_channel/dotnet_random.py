"""A bit-exact port of .NET's seeded ``System.Random(int seed)``.

Unity's samplers draw from ``System.Random``, so the players must reproduce its exact sequence.
This mirrors the legacy seeded algorithm (a variant of Knuth's subtractive generator from
Numerical Recipes), as written in dotnet/runtime
``src/libraries/System.Private.CoreLib/src/System/Random.Net5CompatImpl.cs`` (``CompatPrng``, used
by ``Net5CompatSeedImpl`` whenever a seed is given) and, identically, in the .NET Framework
reference source ``mscorlib/system/random.cs`` that Mono (and so Unity's scripting runtime)
ships. C# ``int`` arithmetic is unchecked, so every int step wraps to 32 bits here too; that
matters for seeds near ``int.MaxValue``, whose seed array starts negative.
"""

from __future__ import annotations

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
_MBIG = INT32_MAX
_MSEED = 161803398  # Numerical Recipes' magic number, from the golden ratio
_INV_MBIG = 1.0 / INT32_MAX  # C# computes the reciprocal first, then multiplies


def wrap_int32(value: int) -> int:
    """``value`` as C#'s unchecked ``int`` arithmetic leaves it (two's complement wrap)."""
    return (value - INT32_MIN) % 2**32 + INT32_MIN


class DotNetRandom:
    """``new System.Random(seed)``: the same ``Next``/``NextDouble`` sequence, bit for bit."""

    def __init__(self, seed: int) -> None:
        if not INT32_MIN <= seed <= INT32_MAX:
            raise ValueError(f"System.Random takes an int32 seed, got {seed}.")
        # Math.Abs(int.MinValue) would overflow, so .NET maps it to int.MaxValue.
        subtraction = INT32_MAX if seed == INT32_MIN else abs(seed)
        mj = wrap_int32(_MSEED - subtraction)
        seeds = [0] * 56  # index 0 is never used (Knuth's range is 1..55)
        seeds[55] = mj
        mk = 1
        ii = 0
        for _ in range(1, 55):
            ii += 21
            if ii >= 55:
                ii -= 55
            seeds[ii] = mk
            mk = wrap_int32(mj - mk)
            if mk < 0:
                mk += _MBIG
            mj = seeds[ii]
        for _ in range(1, 5):
            for i in range(1, 56):
                n = i + 30
                if n >= 55:
                    n -= 55
                value = wrap_int32(seeds[i] - seeds[1 + n])
                seeds[i] = value + _MBIG if value < 0 else value
        self._seeds = seeds
        self._inext = 0
        self._inextp = 21

    def _internal_sample(self) -> int:
        """The next raw value in ``[0, int.MaxValue)`` (C#'s ``InternalSample``)."""
        inext = self._inext + 1
        if inext >= 56:
            inext = 1
        inextp = self._inextp + 1
        if inextp >= 56:
            inextp = 1
        seeds = self._seeds
        value = wrap_int32(seeds[inext] - seeds[inextp])
        if value == _MBIG:
            value -= 1
        if value < 0:
            value += _MBIG
        seeds[inext] = value
        self._inext = inext
        self._inextp = inextp
        return value

    def sample(self) -> float:
        """A double in ``[0, 1)``: the raw value times ``1.0 / int.MaxValue`` (``Sample()``)."""
        return self._internal_sample() * _INV_MBIG

    def next(self) -> int:
        """``Next()``: an int in ``[0, int.MaxValue)``."""
        return self._internal_sample()

    def next_double(self) -> float:
        """``NextDouble()``: the same double as :meth:`sample`."""
        return self.sample()

    def next_below(self, max_value: int) -> int:
        """``Next(maxValue)``: an int in ``[0, max_value)`` (0 when ``max_value`` is 0)."""
        if max_value < 0:
            raise ValueError(f"max_value must be non-negative, got {max_value}.")
        return int(self.sample() * max_value)

    def next_between(self, min_value: int, max_value: int) -> int:
        """``Next(minValue, maxValue)``: an int in ``[min_value, max_value)``."""
        if min_value > max_value:
            raise ValueError(f"min_value {min_value} is greater than max_value {max_value}.")
        span = max_value - min_value
        if span <= INT32_MAX:
            return int(self.sample() * span) + min_value
        return int(self._sample_for_large_range() * span) + min_value

    def _sample_for_large_range(self) -> float:
        """``GetSampleForLargeRange``: two raw values, the second picking the sign."""
        result = self._internal_sample()
        if self._internal_sample() % 2 == 0:
            result = -result
        return (result + (INT32_MAX - 1)) / (2 * INT32_MAX - 1)

    def next_bytes(self, count: int) -> bytes:
        """``NextBytes``: ``count`` bytes, each the low byte of one raw value."""
        return bytes(self._internal_sample() & 0xFF for _ in range(count))
