"""Players draw environment parameters exactly as Unity does: System.Random and ML-Agents' samplers.

Expected numbers come from published .NET output, not from the port under test:

* ``DOTNET_NEXT``/``DOTNET_BYTES``: dotnet/runtime's own regression vectors,
  ``src/libraries/System.Runtime.Extensions/tests/System/Random.cs`` (``ExpectedValues``,
  ``ExpectedValues_NextBytes``; the same table is in dotnet/corefx
  ``src/System.Runtime.Extensions/tests/System/Random.cs``).
* Seeds 123 and 456: the output printed in Microsoft's ``Random(Int32)``/``NextDouble`` example,
  dotnet/dotnet-api-docs ``snippets/csharp/System/Random/.ctor/ctor.cs``.
* Seed 100100: the output in dotnet/dotnet-api-docs ``snippets/csharp/System/Random/Overview/
  same1.cs`` (printed with .NET Framework's 15-significant-digit ``ToString()``).
* Seed 42 and ``int.MinValue``: test vectors of independent third-party ports and of a C# test
  that runs the real ``new Random(42)`` (found by code search); they agree with each other and
  with a reading of the reference source (``int.MinValue`` becomes ``int.MaxValue``, whose seed
  array starts negative and so wraps in unchecked int arithmetic).

Sampler draws are traced by hand from those raw ``Next()`` values with numpy float32
arithmetic, following ML-Agents' C# (``Runtime/Sampler.cs``, ``Inference/Utils/RandomNormal.cs``,
``Inference/Utils/Multinomial.cs``), independently of :mod:`unity_gym.side_channel.unity_samplers`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from unity_gym.players.channels import PlayerChannels
from unity_gym.side_channel.dotnet_random import INT32_MAX, INT32_MIN, DotNetRandom, wrap_int32
from unity_gym.side_channel.environment_parameters_channel import (
    ENVIRONMENT_PARAMETERS_CHANNEL_ID,
    EnvironmentParametersChannel,
    ParameterSampler,
    SamplerTypes,
)
from unity_gym.side_channel.side_channel_manager import pack_side_channel_messages
from unity_gym.side_channel.unity_samplers import (
    GaussianSampler,
    Multinomial,
    MultiRangeUniformSampler,
    RandomNormal,
    UniformSampler,
    to_float32,
)

pytestmark = pytest.mark.protocol

MBIG = 2147483647
f32 = np.float32

DOTNET_NEXT = {
    0: [1559595546, 1755192844, 1649316166, 1198642031, 442452829,
        1200195957, 1945678308, 949569752, 2099272109, 587775847],
    1: [534011718, 237820880, 1002897798, 1657007234, 1412011072,
        929393559, 760389092, 2026928803, 217468053, 1379662799],
    2: [1655911537, 867932563, 356479430, 2115372437, 234085668,
        658591161, 1722583523, 956804207, 483147644, 24066104],
    3: [630327709, 1498044246, 1857544709, 426253993, 1203643911,
        387788763, 537294307, 2034163258, 748827235, 815953056],
    4: [1752227528, 2128155929, 1211126341, 884619196, 25718507,
        116986365, 1499488738, 964038662, 1014506826, 1607840008],
    5: [726643700, 610783965, 564707973, 1342984399, 995276750,
        1993667614, 314199522, 2041397713, 1280186417, 252243313],
    19: [1400855637, 842412939, 104785409, 1317646300, 1684190270,
         349917689, 900019674, 2092038898, 704733397, 601242406],
}  # fmt: skip

DOTNET_BYTES = {
    0: "1a0c466f5d75e4d8ad67",
    1: "46d086824097e4a395cf",
    19: "558b01dc3ef9daf2d526",
}


def unit(raw: int) -> float:
    """``Sample()``: the raw value times the double ``1.0 / int.MaxValue``."""
    return raw * (1.0 / MBIG)


# ---------------------------------------------------------------- System.Random


@pytest.mark.parametrize("seed", sorted(DOTNET_NEXT))
def test_next_matches_dotnet_runtime_vectors(seed: int) -> None:
    rng = DotNetRandom(seed)
    assert [rng.next() for _ in range(10)] == DOTNET_NEXT[seed]


@pytest.mark.parametrize("seed", sorted(DOTNET_BYTES))
def test_next_bytes_match_dotnet_runtime_vectors(seed: int) -> None:
    assert DotNetRandom(seed).next_bytes(10).hex() == DOTNET_BYTES[seed]


@pytest.mark.parametrize(
    ("seed", "ints", "doubles"),
    [
        (
            123,
            [2114319875, 1949518561, 1596751841, 1742987178, 1586516133, 103755708],
            "0.01700087 0.14935942 0.19470390 0.63008947 0.90976122 0.49519146",
        ),
        (
            456,
            [2044805024, 1323311594, 1087799997, 1907260840, 179380355, 120870348],
            "0.21988117 0.21026556 0.39236514 0.42420498 0.24102703 0.47310170",
        ),
    ],
)
def test_microsoft_docs_example_ints_then_doubles(seed: int, ints: list[int], doubles: str) -> None:
    rng = DotNetRandom(seed)
    assert [rng.next() for _ in range(6)] == ints
    assert " ".join(f"{rng.next_double():.8f}" for _ in range(6)) == doubles


def test_microsoft_docs_next_double_sequence_for_seed_100100() -> None:
    expected = [
        "0.500193602172748", "0.0209461245783354", "0.465869495396442", "0.195512794514891",
        "0.928583675496552", "0.729333720509584", "0.381455668891527", "0.0508996467343064",
        "0.019261200921266", "0.258578445417145", "0.0177532266908107", "0.983277184415272",
        "0.483650274334313", "0.0219647376900375", "0.165910115077118", "0.572085966622497",
        "0.805291457942357", "0.927985211335116", "0.4228545699375", "0.523320379910674",
        "0.157783938645285",
    ]  # fmt: skip
    rng = DotNetRandom(100100)
    assert [f"{rng.next_double():.15g}" for _ in expected] == expected


def test_seed_42_next_double_next_and_ranges() -> None:
    doubles = [0.6681064659115423, 0.14090729837348093, 0.12551828945312568]
    rng = DotNetRandom(42)
    assert [rng.next_double() for _ in doubles] == doubles  # bit for bit
    rng = DotNetRandom(42)
    assert [rng.next() for _ in range(5)] == [
        1434747710, 302596119, 269548474, 1122627734, 361709742
    ]  # fmt: skip
    rng = DotNetRandom(42)
    assert [rng.next_below(100) for _ in range(5)] == [66, 14, 12, 52, 16]
    rng = DotNetRandom(42)
    assert [rng.next_between(10, 20) for _ in range(5)] == [16, 11, 11, 15, 11]
    assert DotNetRandom(42).next_bytes(8).hex() == "3e17ba96ae04cd3b"


def test_next_double_is_next_times_reciprocal_of_int_max() -> None:
    rng = DotNetRandom(19)
    assert [rng.next_double() for _ in range(10)] == [unit(r) for r in DOTNET_NEXT[19]]


def test_negative_seeds_use_the_absolute_value_and_int_min_means_int_max() -> None:
    # Docs for Random(Int32): "If a negative number is specified, the absolute value of the
    # number is used." Math.Abs(int.MinValue) would overflow, so .NET maps it to int.MaxValue.
    for seed in (1, 5, 19):
        rng = DotNetRandom(-seed)
        assert [rng.next() for _ in range(10)] == DOTNET_NEXT[seed]
    low, high = DotNetRandom(INT32_MIN), DotNetRandom(INT32_MAX)
    assert [low.next() for _ in range(50)] == [high.next() for _ in range(50)]
    # int.MaxValue's seed array starts negative; C#'s unchecked int arithmetic wraps, so it
    # differs from seed 0 (same value modulo int.MaxValue) only here and there.
    rng = DotNetRandom(INT32_MIN)
    assert [rng.next() for _ in range(6)] == [
        1559595546, 1755192844, 1649316172, 1198642031, 442452829, 1200195955
    ]  # fmt: skip


def test_integer_ranges_and_argument_checks() -> None:
    rng = DotNetRandom(7)
    assert (rng.next_below(0), rng.next_between(0, 0), rng.next_between(1, 1)) == (0, 0, 1)
    assert (rng.next_below(1), rng.next_between(1, 2)) == (0, 1)
    values = [rng.next_between(INT32_MIN, INT32_MAX) for _ in range(2000)]
    assert min(values) >= INT32_MIN and max(values) < INT32_MAX
    assert min(values) < -(2**30) and max(values) > 2**30  # the large range spans both signs
    # The large-range path: the first raw value scaled, its sign set by the second's parity.
    first, second = DOTNET_NEXT[3][:2]
    signed = -first if second % 2 == 0 else first
    expected = int((signed + MBIG - 1) / (2 * MBIG - 1) * (2**32 - 1)) + INT32_MIN
    assert DotNetRandom(3).next_between(INT32_MIN, INT32_MAX) == expected
    with pytest.raises(ValueError):
        rng.next_below(-1)
    with pytest.raises(ValueError):
        rng.next_between(2, 1)
    with pytest.raises(ValueError):
        DotNetRandom(2**31)
    assert wrap_int32(INT32_MAX + 1) == INT32_MIN and wrap_int32(-5) == -5


# ---------------------------------------------------------------- float32 emulation


def test_to_float32_rounds_like_a_csharp_float_cast() -> None:
    values = np.random.default_rng(0).normal(0.0, 1e3, 1000)
    assert [to_float32(v) for v in values] == [float(f32(v)) for v in values]
    assert to_float32(1e39) == math.inf and to_float32(-1e39) == -math.inf
    assert math.isnan(to_float32(math.nan))
    assert to_float32(3.4028235e38) == float(np.finfo(np.float32).max)


# ---------------------------------------------------------------- samplers, hand-traced


def traced_uniform(raw: list[int], low: float, high: float) -> list[float]:
    """``min + (float)NextDouble() * (max - min)``, every operation in float."""
    return [float(f32(low) + f32(unit(r)) * (f32(high) - f32(low))) for r in raw]


def traced_gaussian(raw: list[int], mean: float, stddev: float) -> list[float]:
    """Marsaglia polar on pairs of draws; v's value first, then the cached u's; double math."""
    out = []
    for a, b in zip(raw[0::2], raw[1::2], strict=True):
        u, v = unit(a) * 2.0 - 1.0, unit(b) * 2.0 - 1.0
        s = u * u + v * v
        if s >= 1.0 or s == 0.0:
            continue  # rejected pair: both draws are spent
        k = math.sqrt(-2.0 * math.log(s) / s)
        out += [float(f32(v * k * stddev + mean)), float(f32(u * k * stddev + mean))]
    return out


def traced_multirange(
    value_raw: list[int], interval_raw: list[int], intervals: list[tuple[float, float]]
) -> list[float]:
    """Interval from the float CMF with ``Random(seed + 1)``, value with ``Random(seed)``."""
    lows = [f32(lo) for lo, _ in intervals]
    sizes = [f32(hi) - f32(lo) for lo, hi in intervals]
    total = f32(0.0)
    for size in sizes:
        total = total + size
    cmf = [size / total for size in sizes]
    for i in range(1, len(cmf)):
        cmf[i] = cmf[i] + cmf[i - 1]
    out = []
    for rv, rc in zip(value_raw, interval_raw, strict=True):
        p = f32(unit(rc)) * cmf[-1]
        index = next(i for i, c in enumerate(cmf) if not c < p)
        out.append(float(lows[index] + f32(unit(rv)) * sizes[index]))
    return out


def draws(sampler: ParameterSampler, count: int) -> list[float]:
    return [sampler.sample() for _ in range(count)]


def test_uniform_draws_are_traced_from_system_random() -> None:
    sampler = ParameterSampler(SamplerTypes.UNIFORM, (0.5, 10.0), 3)
    got = draws(sampler, 10)
    assert got == traced_uniform(DOTNET_NEXT[3], 0.5, 10.0)
    assert got[:4] == [3.2884323596954346, 7.127021789550781, 8.71737289428711, 2.385654926300049]
    assert all(float(f32(x)) == x for x in got)  # Unity's sampler returns a float


def test_gaussian_draws_are_traced_from_the_polar_method_with_a_cached_spare() -> None:
    sampler = ParameterSampler(SamplerTypes.GAUSSIAN, (10.0, 0.5), 1)
    expected = traced_gaussian(DOTNET_NEXT[1], 10.0, 0.5)
    assert len(expected) == 10  # seed 1: no pair of the first ten draws is rejected
    assert draws(sampler, 10) == expected
    assert expected[:2] == [9.768189430236816, 9.850326538085938]
    # Seed 4 rejects its first pair (s >= 1), so the first value comes from draws 3 and 4.
    sampler = ParameterSampler(SamplerTypes.GAUSSIAN, (-2.0, 3.0), 4)
    expected = traced_gaussian(DOTNET_NEXT[4], -2.0, 3.0)
    u, v = unit(DOTNET_NEXT[4][0]) * 2 - 1, unit(DOTNET_NEXT[4][1]) * 2 - 1
    assert u * u + v * v >= 1.0 and len(expected) == 6
    assert draws(sampler, 6) == expected


def test_random_normal_keeps_the_second_value_of_each_pair() -> None:
    normal = RandomNormal(19)
    a, b, c, d = (unit(r) * 2.0 - 1.0 for r in DOTNET_NEXT[19][:4])
    assert a * a + b * b < 1.0 and c * c + d * d < 1.0
    k1 = math.sqrt(-2.0 * math.log(a * a + b * b) / (a * a + b * b))
    k2 = math.sqrt(-2.0 * math.log(c * c + d * d) / (c * c + d * d))
    assert [normal.next_double() for _ in range(4)] == [b * k1, a * k1, d * k2, c * k2]


def test_multirange_draws_pick_intervals_with_seed_plus_one() -> None:
    intervals = [(0.5, 1.0), (1.5, 2.25)]
    sampler = ParameterSampler(SamplerTypes.MULTIRANGEUNIFORM, (0.5, 1.0, 1.5, 2.25), 4)
    got = draws(sampler, 10)
    assert got == traced_multirange(DOTNET_NEXT[4], DOTNET_NEXT[5], intervals)
    assert got[:4] == [
        0.9079722762107849, 0.9954999089241028, 0.7819873094558716, 1.8089497089385986
    ]  # fmt: skip


def test_multinomial_walks_an_unnormalised_cmf() -> None:
    multinomial = Multinomial(2)
    cmf = [1.0, 3.0, 4.0]
    expected = [next(i for i, c in enumerate(cmf) if c >= f32(unit(r)) * f32(4.0))
                for r in DOTNET_NEXT[2]]  # fmt: skip
    assert [multinomial.sample(cmf) for _ in range(10)] == expected
    with pytest.raises(IndexError):
        Multinomial(0).sample([])


def test_negative_and_extreme_seeds_behave_as_dotnet() -> None:
    def uniform(seed: int) -> list[float]:
        return draws(ParameterSampler(SamplerTypes.UNIFORM, (0.0, 1.0), seed), 20)

    assert uniform(-7) == uniform(7) and uniform(-7) != uniform(6)
    assert uniform(INT32_MIN) == uniform(INT32_MAX)
    # seed -1: values from Random(-1) == Random(1), intervals from Random(-1 + 1) == Random(0).
    sampler = ParameterSampler(SamplerTypes.MULTIRANGEUNIFORM, (1.0, 2.0, 4.0, 5.0), -1)
    expected = traced_multirange(DOTNET_NEXT[1], DOTNET_NEXT[0], [(1.0, 2.0), (4.0, 5.0)])
    assert draws(sampler, 10) == expected
    # seed int.MaxValue: seed + 1 wraps to int.MinValue, which .NET treats as int.MaxValue.
    sampler = ParameterSampler(SamplerTypes.MULTIRANGEUNIFORM, (1.0, 2.0, 4.0, 5.0), INT32_MAX)
    rng = DotNetRandom(INT32_MAX)
    raw = [rng.next() for _ in range(10)]
    assert draws(sampler, 10) == traced_multirange(raw, raw, [(1.0, 2.0), (4.0, 5.0)])


def test_samplers_take_their_arguments_as_float32() -> None:
    direct = draws(ParameterSampler(SamplerTypes.UNIFORM, (0.1, 0.7), 5), 10)
    assert direct == traced_uniform(DOTNET_NEXT[5], 0.1, 0.7)
    channel = EnvironmentParametersChannel()
    channel.set_uniform_sampler_parameters("x", 0.1, 0.7, seed=5)
    channels = PlayerChannels()
    _receive(channels, channel)
    assert [channels.parameters.get("x", 0.0) for _ in range(10)] == direct


def test_degenerate_intervals() -> None:
    assert MultiRangeUniformSampler([], 3)() == 0.0  # Unity would throw; a player draws 0
    only = MultiRangeUniformSampler([2.0, 2.0, 3.0], 3)  # zero length: 0/0 is NaN, index 0
    assert [only() for _ in range(3)] == [2.0, 2.0, 2.0]
    assert UniformSampler(1.0, 1.0, 0)() == 1.0
    assert GaussianSampler(4.0, 0.0, 0)() == 4.0


# ---------------------------------------------------------------- distributions


N = 20_000


def test_uniform_moments() -> None:
    values = np.array(draws(ParameterSampler(SamplerTypes.UNIFORM, (-3.0, 5.0), 11), N))
    assert values.min() >= -3.0 and values.max() < 5.0
    assert values.min() < -2.99 and values.max() > 4.99
    assert abs(values.mean() - 1.0) < 0.05
    assert abs(values.std() - 8.0 / math.sqrt(12.0)) < 0.03


def test_gaussian_moments() -> None:
    values = np.array(draws(ParameterSampler(SamplerTypes.GAUSSIAN, (3.0, 2.0), 12), N))
    assert abs(values.mean() - 3.0) < 0.05
    assert abs(values.std() - 2.0) < 0.04
    assert abs(np.mean(np.abs(values - 3.0) < 2.0) - 0.6827) < 0.015


def test_multirange_frequencies_follow_interval_lengths() -> None:
    intervals = (0.0, 1.0, 2.0, 5.0, 10.0, 10.5)  # lengths 1 : 3 : 0.5
    values = np.array(draws(ParameterSampler(SamplerTypes.MULTIRANGEUNIFORM, intervals, 13), N))
    first = (values >= 0.0) & (values < 1.0)
    second = (values >= 2.0) & (values < 5.0)
    third = (values >= 10.0) & (values < 10.5)
    assert (first | second | third).all()
    for hits, share in ((first, 1 / 4.5), (second, 3 / 4.5), (third, 0.5 / 4.5)):
        assert abs(hits.mean() - share) < 0.015
    assert abs(values[second].mean() - 3.5) < 0.05


# ---------------------------------------------------------------- the player's parameters


def _receive(channels: PlayerChannels, channel: EnvironmentParametersChannel) -> None:
    data = pack_side_channel_messages(
        (ENVIRONMENT_PARAMETERS_CHANNEL_ID, payload) for payload in channel.message_queue
    )
    channel.message_queue.clear()
    channels.receive(data)


def test_every_read_draws_and_resending_restarts_the_sequence() -> None:
    channels = PlayerChannels()
    channel = EnvironmentParametersChannel()
    channel.set_gaussian_sampler_parameters("g", 1.0, 0.1, seed=3)
    channel.set_multirangeuniform_sampler_parameters("m", [(0.0, 1.0), (2.0, 3.0)], seed=3)
    _receive(channels, channel)
    first = [channels.parameters.get("g", 0.0) for _ in range(5)]
    assert len(set(first)) == 5  # a fresh value on every read
    assert first == draws(ParameterSampler(SamplerTypes.GAUSSIAN, (1.0, 0.1), 3), 5)
    many = channels.parameters.sample("m", 0.0, 4).tolist()
    channel.set_gaussian_sampler_parameters("g", 1.0, 0.1, seed=3)
    channel.set_multirangeuniform_sampler_parameters("m", [(0.0, 1.0), (2.0, 3.0)], seed=3)
    _receive(channels, channel)
    assert [channels.parameters.get("g", 0.0) for _ in range(5)] == first
    assert [channels.parameters.get("m", 0.0) for _ in range(4)] == many


def test_callbacks_fire_for_constants_only() -> None:
    channels = PlayerChannels()
    seen: list[tuple[str, float]] = []
    channels.parameters.register_callback("gravity", lambda v: seen.append(("gravity", v)))
    channel = EnvironmentParametersChannel()
    channel.set_float_parameter("gravity", 0.1)
    channel.set_float_parameter("other", 2.0)
    _receive(channels, channel)
    assert seen == [("gravity", float(f32(0.1)))]  # the float32 value, like C#'s Action<float>
    assert channels.parameters.get("gravity", 9.81) == float(f32(0.1))
    channel.set_uniform_sampler_parameters("gravity", 1.0, 2.0, seed=1)
    _receive(channels, channel)
    assert len(seen) == 1  # samplers never invoke the callback
    # Registering again replaces the callback, as C#'s RegisterCallback does.
    channels.parameters.register_callback("gravity", lambda v: seen.append(("new", v)))
    channel.set_float_parameter("gravity", 3.0)
    _receive(channels, channel)
    assert seen[1:] == [("new", 3.0)]


def test_callbacks_see_the_stored_value() -> None:
    channels = PlayerChannels()
    stored: list[float] = []
    channels.parameters.register_callback(
        "k", lambda v: stored.append(channels.parameters.get("k", -1.0))
    )
    channel = EnvironmentParametersChannel()
    channel.set_float_parameter("k", 4.5)
    _receive(channels, channel)
    assert stored == [4.5]  # stored before the callback runs, as in C#
