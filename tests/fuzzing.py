"""Property-based fuzzing of every input a user or a player controls (issue 17).

Shared by the fuzz tests (``tests/test_fuzz_*.py``, a small fixed-seed slice) and by
``bench/fuzz.py`` (thousands of inputs per kind). Each :class:`FuzzKind` pairs a Hypothesis
strategy with a check. A check returns :data:`ACCEPTED` or :data:`REJECTED` (the project's own
error, with a message fit for a user) and lets anything else propagate: an unexpected exception,
or a :class:`BadMessage` for a project error whose text is not a short message. :func:`classify`
turns one run into an :class:`Outcome` for the benchmark, with an optional per-input timeout.

Only the protocol stack (numpy, protobuf, grpcio, Pillow, pyspng) and Hypothesis are imported
here; the config kinds import pydantic/SB3 and the ONNX kind onnx when they run.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import enum
import importlib
import io
import math
import shutil
import signal
import struct
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from unity_gym.exception import UnityDemoException, UnityException

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "mlagents-r21"
CONFIGS = FIXTURES / "configs"

ACCEPTED = "accepted"
REJECTED = "project error"


class Outcome(enum.Enum):
    """How one input ended."""

    ACCEPTED = ACCEPTED
    REJECTED = REJECTED
    DEFECT = "defect"  # any other exception, or a project error without a proper message
    HANG = "hang"  # ran past the per-input timeout


class BadMessage(AssertionError):
    """A project error whose text is not a short, one-paragraph message for the user."""


# The CI slice: the same inputs on every run, no example database, no per-example deadline.
settings.register_profile(
    "fuzz-ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def ci_settings(max_examples: int) -> settings:
    """The ``fuzz-ci`` profile with ``max_examples`` inputs, for one fuzz test."""
    return settings(settings.get_profile("fuzz-ci"), max_examples=max_examples)


# -- messages -------------------------------------------------------------------------------------

MAX_MESSAGE_LINES = 30
MAX_MESSAGE_CHARS = 6000


def check_message(message: str, *, names: Sequence[str] = ()) -> None:
    """A user-facing error text: non-empty, one paragraph (no blank line), no traceback or bare
    exception repr, bounded size, and mentioning one of ``names`` (a file, key...) if given."""
    problems = []
    if not message.strip():
        problems.append("is empty")
    if "Traceback (most recent call last)" in message or "\n\n" in message.strip():
        problems.append("is not one paragraph")
    if len(message) > MAX_MESSAGE_CHARS or message.count("\n") >= MAX_MESSAGE_LINES:
        problems.append("is too long")
    if names and not any(name in message for name in names):
        problems.append(f"names none of {list(names)}")
    if problems:
        raise BadMessage(f"error message {', '.join(problems)}: {message[:500]!r}")


# -- outcomes and timeouts ------------------------------------------------------------------------


class _Timeout(BaseException):
    """Raised by the alarm of :func:`classify`; a BaseException, so no ``except Exception``
    swallows it."""


@contextlib.contextmanager
def _alarm(seconds: float | None) -> Iterator[None]:
    if not seconds:
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def classify(check: Callable[[Any], str], value: Any, timeout: float | None) -> tuple[Outcome, str]:
    """Run ``check(value)``: the outcome and, for a defect or hang, a one-line description.

    ``timeout`` (seconds, main thread only) interrupts a hanging input with SIGALRM.
    """
    try:
        with _alarm(timeout):
            result = check(value)
    except _Timeout:
        return Outcome.HANG, f"no result within {timeout} s"
    except Exception as err:
        where = ""
        tb = err.__traceback__
        while tb is not None:
            if str(REPO) in tb.tb_frame.f_code.co_filename:
                code = tb.tb_frame.f_code
                where = f" at {Path(code.co_filename).relative_to(REPO)}:{tb.tb_lineno}"
            tb = tb.tb_next
        return Outcome.DEFECT, f"{type(err).__name__}{where}: {str(err)[:200]}"
    return Outcome(result), ""


# -- scratch files --------------------------------------------------------------------------------


@cache
def scratch_dir() -> Path:
    """A private temporary folder for the files the checks write, removed at exit."""
    path = Path(tempfile.mkdtemp(prefix="unity-sb3-fuzz-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def write_scratch(name: str, data: bytes) -> Path:
    path = scratch_dir() / name
    path.write_bytes(data)
    return path


# -- generic values and byte mutations ------------------------------------------------------------

NASTY_FLOATS = (math.nan, math.inf, -math.inf, 1e308, -1e308, 3.5e38, 1e-320, -0.0)
NASTY_INTS = (-1, 0, 2**31, -(2**31) - 1, 2**63, 10**30, -(10**30))
NASTY_TEXT = ("", " ", "nan", "inf", "-1", "5.0e5", "1e6", "ppo", "\u00e9t\u00e9", "\U0001f600")


def scalars() -> st.SearchStrategy[Any]:
    """Values of every YAML scalar type, with extremes: None, booleans, numbers, text."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 10**6),
        st.sampled_from(NASTY_INTS),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(NASTY_FLOATS),
        st.text(max_size=12),
        st.sampled_from(NASTY_TEXT),
    )


def yaml_keys() -> st.SearchStrategy[Any]:
    return st.one_of(st.text(max_size=10), st.integers(-3, 3), st.none(), st.booleans())


def junk_values() -> st.SearchStrategy[Any]:
    """Any YAML value: scalars, lists and mappings of them (nested a little)."""
    return st.recursive(
        scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(yaml_keys(), inner, max_size=3),
        ),
        max_leaves=6,
    )


@dataclass(frozen=True)
class ByteMutation:
    """One edit of a byte string; positions are taken modulo the current length."""

    op: str  # truncate, flip, overwrite, insert, delete, splice
    pos: int
    arg: int = 0
    data: bytes = b""

    def apply(self, buf: bytearray) -> bytearray:
        size = len(buf)
        pos = self.pos % (size + 1)
        if self.op == "truncate":
            return buf[:pos]
        if self.op == "insert":
            return buf[:pos] + self.data + buf[pos:]
        if size == 0:
            return buf
        pos = self.pos % size
        if self.op == "flip":
            buf[pos] ^= 1 << (self.arg % 8)
        elif self.op == "overwrite":
            buf[pos : pos + len(self.data)] = self.data
        elif self.op == "delete":
            del buf[pos : pos + 1 + self.arg % 64]
        elif self.op == "splice":
            source = self.arg % size
            chunk = buf[source : source + len(self.data) + 1]
            buf[pos : pos + len(chunk)] = chunk
        return buf


_YAML_TEXT = st.text(alphabet=":-[]{},#&*!|>'\"%@` \n\t.0123456789eE+abc_\u00e9", max_size=8)


def byte_mutations(
    size: int, max_mutations: int = 4, text: bool = False
) -> st.SearchStrategy[list[ByteMutation]]:
    """Edits of a ``size``-byte string, half of them aimed at its first 256 bytes (headers).

    ``text``: inserted and overwritten bytes are mostly YAML-ish text, not binary.
    """
    positions = st.one_of(st.integers(0, min(size, 256)), st.integers(0, max(size, 1)))
    binary = st.one_of(
        st.binary(min_size=1, max_size=16),
        st.sampled_from((b"\xff" * 10, b"\x00" * 8, b"\x80" * 10, b"\x0a\xff\xff\xff\x0f")),
    )
    data = st.one_of(_YAML_TEXT.map(str.encode), _YAML_TEXT.map(str.encode), binary)
    mutation = st.builds(
        ByteMutation,
        op=st.sampled_from(("truncate", "flip", "flip", "overwrite", "insert", "delete", "splice")),
        pos=positions,
        arg=st.integers(0, max(size, 1)),
        data=data if text else binary,
    )
    return st.lists(mutation, min_size=1, max_size=max_mutations)


def mutate_bytes(data: bytes, mutations: Sequence[ByteMutation]) -> bytes:
    buf = bytearray(data)
    for mutation in mutations:
        buf = mutation.apply(buf)
    return bytes(buf)


@dataclass(frozen=True)
class MutatedFile:
    """A fixture file (by path) and the edits made to its bytes."""

    path: Path
    mutations: tuple[ByteMutation, ...]

    def data(self) -> bytes:
        return mutate_bytes(_read_fixture(self.path), self.mutations)

    def __repr__(self) -> str:
        return f"MutatedFile({self.path.name!r}, {list(self.mutations)!r})"


@cache
def _read_fixture(path: Path) -> bytes:
    return path.read_bytes()


def mutated_files(
    paths: Sequence[Path], max_mutations: int = 4, text: bool = False
) -> st.SearchStrategy[MutatedFile]:
    def for_file(path: Path) -> st.SearchStrategy[MutatedFile]:
        edits = byte_mutations(len(_read_fixture(path)), max_mutations, text)
        return edits.map(lambda m: MutatedFile(path, tuple(m)))

    return st.sampled_from(list(paths)).flatmap(for_file)


# -- nested-mapping mutations (configs) ----------------------------------------------------------


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths to every value inside nested mappings and lists."""
    items: Any = ()
    if isinstance(node, Mapping):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    for key, value in items:
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))


@dataclass(frozen=True)
class TreeMutation:
    """One edit at a path of a nested mapping: drop, duplicate, rename, retype or add a key."""

    op: str  # drop, duplicate, rename, replace, add
    target: int  # index into the paths, modulo their count
    key: Any = None
    value: Any = None

    def apply(self, root: dict[Any, Any]) -> None:
        paths = list(_paths(root))
        if not paths:
            root[self.key] = self.value
            return
        path = paths[self.target % len(paths)]
        parent: Any = root
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        if self.op == "add" and isinstance(parent[last], dict):
            parent[last][self.key] = self.value
        elif self.op == "drop" and isinstance(parent, dict):
            del parent[last]
        elif self.op == "drop":
            parent.pop(last)
        elif self.op == "duplicate" and isinstance(parent, dict):
            parent[self.key] = _copy(parent[last])
        elif self.op == "duplicate":
            parent.append(_copy(parent[last]))
        elif self.op == "rename" and isinstance(parent, dict):
            parent[self.key] = parent.pop(last)
        else:  # replace (and add under a non-mapping)
            parent[last] = self.value


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def tree_mutations(max_mutations: int = 4) -> st.SearchStrategy[list[TreeMutation]]:
    keys = st.one_of(yaml_keys(), st.sampled_from(_KNOWN_KEYS))
    mutation = st.builds(
        TreeMutation,
        op=st.sampled_from(("drop", "duplicate", "rename", "replace", "replace", "add")),
        target=st.integers(0, 10_000),
        key=keys,
        value=junk_values(),
    )
    return st.lists(mutation, min_size=1, max_size=max_mutations)


# Keys worth adding or renaming to: real keys placed where they do not belong find more paths.
_KNOWN_KEYS = (
    "sampler_type",
    "sampler_parameters",
    "curriculum",
    "completion_criteria",
    "hyperparameters",
    "trainer_type",
    "trainer",
    "network_settings",
    "memory",
    "reward_signals",
    "behaviors",
    "default_settings",
    "default",
    "environment_parameters",
    "parameter_randomization",
    "thresholds",
    "parameters",
    "sampler-type",
    "resampling-interval",
    "value",
    "intervals",
    "use_recurrent",
    "framework",
    "measure",
    "behavior",
)


def mutated_mapping(base: Mapping[Any, Any], mutations: Sequence[TreeMutation]) -> dict[Any, Any]:
    root = _copy(dict(base))
    for mutation in mutations:
        mutation.apply(root)
    return root


@cache
def _yaml_fixture(path: Path) -> dict[Any, Any]:
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@dataclass(frozen=True)
class MutatedConfig:
    """A reference configuration (by path) and the edits made to its mapping."""

    path: Path
    mutations: tuple[TreeMutation, ...]

    def mapping(self) -> dict[Any, Any]:
        return mutated_mapping(_yaml_fixture(self.path), self.mutations)

    def __repr__(self) -> str:
        return f"MutatedConfig({self.path.relative_to(CONFIGS)!r}, {list(self.mutations)!r})"


def mutated_configs(paths: Sequence[Path]) -> st.SearchStrategy[MutatedConfig]:
    return st.builds(
        MutatedConfig,
        path=st.sampled_from(list(paths)),
        mutations=tree_mutations().map(tuple),
    )


# -- training configurations ---------------------------------------------------------------------

CURRENT_CONFIGS = tuple(sorted(p for p in CONFIGS.glob("*/*.yaml") if p.parent.name != "legacy"))
LEGACY_TRAINER_CONFIGS = (
    CONFIGS / "legacy" / "trainer_config.yaml",
    CONFIGS / "legacy" / "3DBall_randomize_v017.yaml",
)
LEGACY_CURRICULUM = CONFIGS / "legacy" / "wall_jump_curriculum.yaml"
LEGACY_SAMPLER = CONFIGS / "legacy" / "3dball_sampler.yaml"


def _schema_value(annotation: Any) -> st.SearchStrategy[Any]:
    """Values that fit ``annotation`` (a pydantic field type), now and then of a wrong type."""
    fitting = _fitting_value(annotation)
    return st.one_of(fitting, fitting, fitting, junk_values())


def _strip(annotation: Any) -> Any:
    from typing import Annotated, get_args, get_origin

    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


@cache
def _fitting_value(annotation: Any) -> st.SearchStrategy[Any]:
    import types
    import typing

    from pydantic import BaseModel

    annotation = _strip(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return st.none()
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return st.one_of(st.integers(-2, 5000), st.sampled_from(NASTY_INTS), st.just("5.0e5"))
    if annotation is float:
        return st.one_of(st.floats(-10, 10), st.sampled_from(NASTY_FLOATS))
    if annotation is str:
        return st.one_of(st.text(max_size=8), st.sampled_from(NASTY_TEXT))
    if origin is typing.Literal:
        typos = [f"{a}x" for a in args] + [str(a).upper() for a in args]
        return st.sampled_from([*args, *args, *typos])
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_fitting_value(a) for a in args))
    if origin is list:
        return st.lists(_schema_value(args[0]), max_size=3)
    if origin is tuple:
        return st.tuples(*(_schema_value(a) for a in args)).map(list)
    if origin is dict:
        names = st.one_of(st.text(max_size=6), st.sampled_from(("3DBall", "mass", "a?team=1")))
        return st.dictionaries(names, _schema_value(args[1]), max_size=2)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = {name: _schema_value(f.annotation) for name, f in annotation.model_fields.items()}
        known = st.fixed_dictionaries({}, optional=fields)
        extra = st.dictionaries(st.sampled_from(_KNOWN_KEYS), junk_values(), max_size=1)
        return st.tuples(known, extra).map(lambda pair: {**pair[1], **pair[0]})
    raise TypeError(f"no strategy for {annotation!r}")


def schema_configs() -> st.SearchStrategy[dict[str, Any]]:
    """Configurations generated from :class:`cli.training_config.RunOptions`' schema."""
    from cli.training_config import RunOptions

    return _fitting_value(RunOptions)


def _check_config_error(message: str, names: Sequence[str] = ()) -> None:
    check_message(message, names=names)
    lines = message.split("\n")
    if "the training configuration has" in message and not lines[1].startswith("  - "):
        raise BadMessage(f"no problem listed by key: {message[:500]!r}")


def _use_options(options: Any) -> str:
    """What ``learn`` does with parsed options before training: curriculum and resolved YAML."""
    from cli.config_errors import ConfigError
    from cli.training_config import parse_run_options, to_resolved_dict
    from cli.training_environment import curriculum_from_options

    try:
        curriculum_from_options(options, seed=0)
    except ConfigError as err:
        _check_config_error(str(err))
        return REJECTED
    # configuration.yaml is written from these; loading it again must work.
    parse_run_options(to_resolved_dict(options))
    return ACCEPTED


def check_config_mapping(data: Mapping[Any, Any]) -> str:
    """A current-format mapping through :func:`parse_run_options`, then as ``learn`` uses it."""
    from cli.config_errors import ConfigError
    from cli.training_config import parse_run_options

    try:
        options = parse_run_options(data, source=Path("fuzz.yaml"))
    except ConfigError as err:
        _check_config_error(str(err), names=["fuzz.yaml"])
        return REJECTED
    return _use_options(options)


def check_mutated_config(config: MutatedConfig) -> str:
    return check_config_mapping(config.mapping())


@dataclass(frozen=True)
class LegacyInput:
    """A legacy trainer configuration with optional pre-0.17 curriculum and sampler mappings."""

    config: MutatedConfig
    curriculum: MutatedConfig | None
    sampler: MutatedConfig | None


def legacy_inputs() -> st.SearchStrategy[LegacyInput]:
    no_mutation: st.SearchStrategy[tuple[TreeMutation, ...]] = st.just(())
    mutations = st.one_of(no_mutation, tree_mutations().map(tuple))

    def optional(path: Path) -> st.SearchStrategy[MutatedConfig | None]:
        return st.one_of(st.none(), st.builds(MutatedConfig, st.just(path), mutations))

    return st.builds(
        LegacyInput,
        config=st.builds(MutatedConfig, st.sampled_from(LEGACY_TRAINER_CONFIGS), mutations),
        curriculum=optional(LEGACY_CURRICULUM),
        sampler=optional(LEGACY_SAMPLER),
    )


def check_legacy(value: LegacyInput) -> str:
    """:func:`cli.legacy_config.upgrade`, then the converted mapping as ``learn`` parses it."""
    from cli.config_errors import ConfigError
    from cli.legacy_config import LegacyConfigError, upgrade
    from cli.training_config import parse_run_options

    curriculum = value.curriculum.mapping() if value.curriculum else None
    sampler = value.sampler.mapping() if value.sampler else None
    try:
        upgraded = upgrade(value.config.mapping(), curriculum=curriculum, sampler=sampler)
    except LegacyConfigError as err:
        check_message(str(err))
        return REJECTED
    check_message(upgraded.message("old.yaml", "curriculum.yaml", "sampler.yaml"))
    try:
        options = parse_run_options(upgraded.config, source=Path("old.yaml"), legacy=True)
    except ConfigError as err:
        _check_config_error(str(err), names=["old.yaml"])
        return REJECTED
    return _use_options(options)


@dataclass(frozen=True)
class ConfigFiles:
    """Files for ``unity-sb3 learn``: a trainer config and optional legacy files, as bytes."""

    config: MutatedFile
    curriculum: MutatedFile | None
    sampler: MutatedFile | None


def config_files() -> st.SearchStrategy[ConfigFiles]:
    """Byte-level edits of the reference YAML files (syntax errors, bad encodings...)."""

    def optional(path: Path) -> st.SearchStrategy[MutatedFile | None]:
        return st.one_of(st.none(), mutated_files([path], max_mutations=2, text=True))

    trainer_configs = [*CURRENT_CONFIGS, *LEGACY_TRAINER_CONFIGS]
    return st.builds(
        ConfigFiles,
        config=mutated_files(trainer_configs, max_mutations=3, text=True),
        curriculum=optional(LEGACY_CURRICULUM),
        sampler=optional(LEGACY_SAMPLER),
    )


@cache
def _learn_parser() -> argparse.ArgumentParser:
    from cli.learn_arguments import add_learn_arguments

    parser = argparse.ArgumentParser()
    add_learn_arguments(parser)
    return parser


def check_config_files(files: ConfigFiles) -> str:
    """The files through :func:`cli.learn_arguments.resolve_run_options`, as ``learn`` reads
    them."""
    from cli.config_errors import ConfigError
    from cli.learn_arguments import resolve_run_options

    config = write_scratch("trainer.yaml", files.config.data())
    argv = [str(config)]
    for flag, mutated in (("--curriculum", files.curriculum), ("--sampler", files.sampler)):
        if mutated is not None:
            argv += [flag, str(write_scratch(f"{flag[2:]}.yaml", mutated.data()))]
    try:
        options = resolve_run_options(_learn_parser().parse_args(argv))
    except ConfigError as err:
        _check_config_error(str(err), names=[str(scratch_dir())])
        return REJECTED
    return _use_options(options)


# -- .demo files -----------------------------------------------------------------------------------

DEMOS = tuple(sorted((FIXTURES / "demos").glob("*.demo")))
SMALL_DEMOS = tuple(p for p in DEMOS if p.stat().st_size < 100_000)


def demo_files(paths: Sequence[Path] = DEMOS) -> st.SearchStrategy[MutatedFile]:
    return mutated_files(paths)


def check_demo(mutated: MutatedFile) -> str:
    """:func:`unity_gym.demo.load_demonstration` of the edited file: loads consistently, or a
    :class:`UnityDemoException` that names the file."""
    from unity_gym.demo import load_demonstration

    path = write_scratch("fuzz.demo", mutated.data())
    try:
        demo = load_demonstration(path)
    except UnityDemoException as err:
        check_message(str(err), names=[str(path)])
        return REJECTED
    n = len(demo)
    arrays = [*demo.observations, demo.continuous_actions, demo.discrete_actions, demo.dones]
    assert all(len(a) == n for a in arrays), "arrays of different lengths"
    for obs, spec in zip(demo.observations, demo.behavior_spec.observation_specs, strict=True):
        assert obs.shape == (n, *spec.shape), f"observation {obs.shape} vs spec {spec.shape}"
    transitions = demo.transitions()
    assert len(transitions) <= n
    return ACCEPTED


# -- side channels ---------------------------------------------------------------------------------


def _channel_ids() -> list[uuid.UUID]:
    from unity_gym.side_channel.engine_configuration_channel import (
        ENGINE_CONFIGURATION_CHANNEL_ID,
    )
    from unity_gym.side_channel.environment_parameters_channel import (
        ENVIRONMENT_PARAMETERS_CHANNEL_ID,
    )
    from unity_gym.side_channel.float_properties_channel import FLOAT_PROPERTIES_CHANNEL_ID
    from unity_gym.side_channel.stats_side_channel import STATS_CHANNEL_ID
    from unity_gym.side_channel.training_analytics_side_channel import (
        TRAINING_ANALYTICS_CHANNEL_ID,
    )

    return [
        STATS_CHANNEL_ID,
        ENGINE_CONFIGURATION_CHANNEL_ID,
        ENVIRONMENT_PARAMETERS_CHANNEL_ID,
        FLOAT_PROPERTIES_CHANNEL_ID,
        TRAINING_ANALYTICS_CHANNEL_ID,
        RAW_CHANNEL_ID,
        uuid.UUID(int=0),
    ]


RAW_CHANNEL_ID = uuid.UUID("c0ffee00-0000-4000-8000-000000000017")
_FUZZ_FLOATS = st.one_of(st.floats(width=32), st.sampled_from(NASTY_FLOATS))
_FUZZ_INTS = st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from(NASTY_INTS))
_FUZZ_KEYS = st.one_of(st.text(max_size=8), st.sampled_from(("mass", "gravity", "\u00e9")))


@dataclass(frozen=True)
class Call:
    """A call of a Python-side side-channel method, by name, with its arguments."""

    method: str
    args: tuple[Any, ...]


def side_channel_calls() -> st.SearchStrategy[list[Call]]:
    """Calls of the Python side's writers (stats and float properties are the player's)."""
    pair = st.tuples(_FUZZ_FLOATS, _FUZZ_FLOATS)
    call = st.one_of(
        st.builds(Call, st.just("set_float_parameter"), st.tuples(_FUZZ_KEYS, _FUZZ_FLOATS)),
        st.builds(
            Call,
            st.sampled_from(("set_uniform_sampler_parameters", "set_gaussian_sampler_parameters")),
            st.tuples(_FUZZ_KEYS, _FUZZ_FLOATS, _FUZZ_FLOATS, _FUZZ_INTS),
        ),
        st.builds(
            Call,
            st.just("set_multirangeuniform_sampler_parameters"),
            st.tuples(_FUZZ_KEYS, st.lists(pair, max_size=3), _FUZZ_INTS),
        ),
        st.builds(
            Call,
            st.just("set_configuration_parameters"),
            st.tuples(
                *(st.one_of(st.none(), _FUZZ_INTS) for _ in range(3)),
                st.one_of(st.none(), _FUZZ_FLOATS),
                *(st.one_of(st.none(), _FUZZ_INTS) for _ in range(2)),
            ),
        ),
        st.builds(Call, st.just("set_property"), st.tuples(_FUZZ_KEYS, _FUZZ_FLOATS)),
        st.builds(Call, st.just("send_raw_data"), st.tuples(st.binary(max_size=16))),
    )
    return st.lists(call, min_size=1, max_size=4)


@dataclass(frozen=True)
class SideChannelTraffic:
    """Framed side-channel bytes: messages written by the real writers, then byte edits."""

    messages: tuple[tuple[int, bytes], ...]  # (index into the channel ids, payload)
    calls: tuple[Call, ...]  # Python-side writer calls appended after the messages
    mutations: tuple[ByteMutation, ...]

    def data(self, calls_out: bytes = b"") -> bytes:
        from unity_gym.side_channel.side_channel_manager import pack_side_channel_messages

        ids = _channel_ids()
        framed = pack_side_channel_messages((ids[i % len(ids)], p) for i, p in self.messages)
        return mutate_bytes(framed + calls_out, self.mutations)


def _stat_payloads() -> st.SearchStrategy[bytes]:
    from unity_gym.side_channel.messages import OutgoingMessage

    def encode(key: str, value: float, method: int) -> bytes:
        msg = OutgoingMessage()
        msg.write_string(key)
        msg.buffer += struct.pack("<f", value)
        msg.write_int32(method)
        return bytes(msg.buffer)

    ascii_keys = st.text(alphabet=st.characters(max_codepoint=127), max_size=8)
    return st.builds(encode, ascii_keys, st.floats(width=32), st.integers(-2, 5))


def side_channel_traffic() -> st.SearchStrategy[SideChannelTraffic]:
    payload = st.one_of(st.binary(max_size=24), _stat_payloads())
    message = st.tuples(st.integers(0, 6), payload)
    return st.builds(
        SideChannelTraffic,
        messages=st.lists(message, max_size=3).map(tuple),
        calls=st.one_of(st.just(()), side_channel_calls().map(tuple)),
        mutations=st.one_of(st.just(()), byte_mutations(64, max_mutations=3).map(tuple)),
    )


def _python_channels() -> list[Any]:
    from unity_gym.side_channel.engine_configuration_channel import EngineConfigurationChannel
    from unity_gym.side_channel.environment_parameters_channel import (
        EnvironmentParametersChannel,
    )
    from unity_gym.side_channel.float_properties_channel import FloatPropertiesChannel
    from unity_gym.side_channel.raw_bytes_channel import RawBytesChannel
    from unity_gym.side_channel.stats_side_channel import StatsSideChannel
    from unity_gym.side_channel.training_analytics_side_channel import (
        DefaultTrainingAnalyticsSideChannel,
    )

    return [
        StatsSideChannel(),
        EngineConfigurationChannel(),
        EnvironmentParametersChannel(),
        FloatPropertiesChannel(),
        RawBytesChannel(RAW_CHANNEL_ID),
        DefaultTrainingAnalyticsSideChannel(),
    ]


def _written(calls: Sequence[Call]) -> tuple[bytes, bool]:
    """The framed bytes the Python side writes for ``calls``, and whether any was refused (with
    a :class:`UnityException` whose message is checked)."""
    from unity_gym.side_channel.side_channel_manager import SideChannelManager

    channels = _python_channels()
    owners = {name: c for c in channels for name in dir(c) if name.startswith(("set_", "send_"))}
    refused = False
    for call in calls:
        try:
            getattr(owners[call.method], call.method)(*call.args)
        except UnityException as err:
            check_message(str(err))
            refused = True
    return SideChannelManager(channels).generate_side_channel_messages(), refused


def check_side_channel_python(traffic: SideChannelTraffic) -> str:
    """Python side: the player's framed bytes through ``SideChannelManager`` and the real
    channels (stats, float properties, raw bytes; engine configuration, environment parameters
    and analytics refuse messages)."""
    from unity_gym.side_channel.side_channel_manager import SideChannelManager

    written, refused = _written(traffic.calls)
    manager = SideChannelManager(_python_channels())
    try:
        manager.process_side_channel_message(traffic.data(written))
    except UnityException as err:
        check_message(str(err))
        return REJECTED
    stats = manager.channels[_channel_ids()[0]]
    for key, values in stats.get_and_reset_stats().items():
        assert isinstance(key, str) and all(isinstance(v, float) for v, _ in values)
    return REJECTED if refused else ACCEPTED


def check_side_channel_player(traffic: SideChannelTraffic) -> str:
    """Player side: what the Python writers produce (then edited) through
    :class:`unity_gym.players.channels.PlayerChannels`, which drops bad messages with a log
    line; the parameters it keeps must sample without error."""
    from unity_gym.players.channels import PlayerChannels

    written, refused = _written(traffic.calls)
    channels = PlayerChannels()
    channels.receive(traffic.data(written))
    for key in channels.parameters.keys():  # noqa: SIM118 (not a dict)
        value = channels.parameters.get(key, 0.0)
        assert isinstance(value, float), f"{key!r} sampled {value!r}"
        assert channels.parameters.sample(key, 0.0, 3).shape == (3,)
    channels.outgoing()
    return REJECTED if refused else ACCEPTED


# -- protocol messages from a misbehaving player ---------------------------------------------------


def png_bytes() -> st.SearchStrategy[bytes]:
    """Small valid PNGs (grey, RGB, RGBA), sometimes concatenated, sometimes edited."""

    def encode(width: int, height: int, mode: str, fill: int) -> bytes:
        from PIL import Image

        out = io.BytesIO()
        Image.new(mode, (width, height), color=(fill,) * len(mode)).save(out, "PNG")
        return out.getvalue()

    png = st.builds(
        encode, st.integers(1, 6), st.integers(1, 6), st.sampled_from(("L", "RGB", "RGBA")),
        st.integers(0, 255),
    )  # fmt: skip
    stream = st.lists(png, min_size=1, max_size=2).map(b"".join)
    edited = st.tuples(stream, byte_mutations(120, max_mutations=2)).map(
        lambda pair: mutate_bytes(*pair)
    )
    return st.one_of(stream, edited, st.binary(max_size=32))


@st.composite
def observations(draw: st.DrawFn, shape: tuple[int, ...], consistent: bool) -> Any:
    """An ``ObservationProto`` that fits ``shape``, or (``consistent`` False) may not."""
    from unity_gym.communicator_objects.observation_pb2 import ObservationProto

    obs = ObservationProto()
    if not consistent and draw(st.booleans()):
        shape = tuple(draw(st.lists(st.integers(-2, 5), max_size=4)))
    obs.shape.extend(shape)
    if draw(st.booleans()):
        obs.dimension_properties.extend(
            draw(st.lists(st.integers(0, 7), min_size=len(shape), max_size=len(shape)))
            if consistent
            else draw(st.lists(st.integers(-3, 40), max_size=4))
        )
    obs.observation_type = draw(st.sampled_from((0, 0, 1, 2, -1)) if not consistent else st.just(0))
    obs.name = draw(st.text(max_size=4))
    size = math.prod(shape) if shape and min(shape) >= 0 else 0
    if len(shape) == 3 and draw(st.booleans()):
        obs.compression_type = draw(st.sampled_from((1, 1, 7)))
        obs.compressed_data = draw(png_bytes())
        if draw(st.booleans()):
            obs.compressed_channel_mapping.extend(draw(st.lists(st.integers(-2, 4), max_size=4)))
    else:
        count = size if consistent or draw(st.booleans()) else draw(st.integers(0, 40))
        values = np.full(min(count, 4096), draw(st.floats(-1, 1, width=32)), np.float32)
        if len(values) and draw(st.integers(0, 5)) == 0:
            values[draw(st.integers(0, len(values) - 1))] = draw(
                st.sampled_from((math.nan, math.inf, -math.inf))
            )
        obs.float_data.data.extend(values.tolist())
    return obs


@st.composite
def unity_outputs(draw: st.DrawFn) -> list[Any]:
    """A sequence of ``UnityOutputProto``s from a player that may break the protocol: specs
    with odd sizes or none, agent and observation counts that change between steps, NaN/inf
    values, garbage PNGs, bad masks, junk side-channel bytes."""
    from unity_gym.communicator_objects.agent_info_pb2 import AgentInfoProto
    from unity_gym.communicator_objects.brain_parameters_pb2 import BrainParametersProto
    from unity_gym.communicator_objects.unity_output_pb2 import UnityOutputProto

    names = draw(st.lists(st.sampled_from(("A", "B?team=0", "")), min_size=1, max_size=2))
    valid_spec = draw(st.integers(0, 3)) > 0
    sizes = st.integers(0, 4) if valid_spec else st.integers(-2, 4)
    shapes = {
        name: [
            tuple(draw(st.lists(st.integers(0, 6), min_size=1, max_size=3)))
            for _ in range(draw(st.integers(0, 2)))
        ]
        for name in names
    }
    outputs = []
    for step in range(draw(st.integers(1, 3))):
        output = UnityOutputProto()
        consistent = draw(st.integers(0, 3)) > 0
        for name in names:
            if step == 0 or draw(st.integers(0, 5)) == 0:
                brain = BrainParametersProto(brain_name=name, is_training=True)
                brain.action_spec.num_continuous_actions = draw(sizes)
                branches = draw(st.lists(st.integers(1, 4) if valid_spec else sizes, max_size=3))
                brain.action_spec.discrete_branch_sizes.extend(branches)
                brain.action_spec.num_discrete_actions = (
                    len(branches) if draw(st.booleans()) else draw(sizes)
                )
                if draw(st.integers(0, 3)) == 0:
                    brain.vector_action_size_deprecated.extend(
                        draw(st.lists(st.integers(-1, 4), max_size=2))
                    )
                    brain.vector_action_space_type_deprecated = draw(st.integers(0, 2))
                output.rl_initialization_output.brain_parameters.append(brain)
            infos = output.rl_output.agentInfos[name].value
            template = [draw(observations(shape, consistent)) for shape in shapes[name]]
            for agent in range(draw(st.integers(0 if step else 1, 4))):
                # One draw per agent while the step is well-formed (generation is the cost).
                info = AgentInfoProto(id=agent, done=draw(st.booleans()))
                info.observations.extend(template)
                if consistent:
                    infos.append(info)
                    continue
                info.id = draw(st.sampled_from((agent, 0, -1, 2**31 - 1)))
                info.max_step_reached = draw(st.booleans())
                info.reward = draw(st.sampled_from((*NASTY_FLOATS, 0.0, 1.0)))
                info.group_reward = draw(st.sampled_from((0.0, 0.0, 0.0, -math.inf)))
                info.group_id = draw(st.integers(-1, 2))
                info.action_mask.extend(draw(st.lists(st.booleans(), max_size=6)))
                if draw(st.booleans()):
                    del info.observations[:]
                    for shape in shapes[name]:
                        info.observations.append(draw(observations(shape, consistent)))
                    if draw(st.booleans()):
                        info.observations.append(draw(observations((2,), False)))
                infos.append(info)
        if draw(st.integers(0, 4)) == 0:
            output.rl_output.side_channel = draw(st.binary(max_size=40))
        outputs.append(output)
    return outputs


class _DetachedEnvironment:
    """``UnityEnvironment``'s output handling and action writing, with no player or port."""

    def __init__(self) -> None:
        from unity_gym.environment import UnityEnvironment
        from unity_gym.side_channel.side_channel_manager import SideChannelManager

        env = object.__new__(UnityEnvironment)
        env._env_state = {}
        env._env_specs = {}
        env._env_actions = {}
        env._side_channel_manager = SideChannelManager(_python_channels())
        env._loaded = False
        from unity_gym.communicator_objects.capabilities_pb2 import UnityRLCapabilitiesProto

        env.academy_capabilities = UnityRLCapabilitiesProto(hybridActions=True)
        self.env = env


def check_unity_outputs(outputs: Sequence[Any]) -> str:
    """The outputs through ``UnityEnvironment``'s handling, step by step; every behavior's steps
    must match its spec and take random actions. Errors: :class:`UnityException`."""
    env = _DetachedEnvironment().env
    rng = np.random.default_rng(0)
    try:
        for output in outputs:
            env._handle_output(output)
            for name, spec in env.behavior_specs.items():
                decision, terminal = env.get_steps(name)
                for steps in (decision, terminal):
                    for obs, obs_spec in zip(steps.obs, spec.observation_specs, strict=True):
                        assert obs.shape == (len(steps), *obs_spec.shape), (obs.shape, obs_spec)
                env.set_actions(name, spec.action_spec.random_action(len(decision), rng))
            env._generate_step_input().SerializeToString()
    except UnityException as err:
        check_message(str(err))
        return REJECTED
    return ACCEPTED


# -- .onnx files -----------------------------------------------------------------------------------

ONNX_MODELS = tuple(sorted((FIXTURES / "onnx").glob("*.onnx")))
SMALL_ONNX_MODELS = tuple(p for p in ONNX_MODELS if p.stat().st_size < 100_000)


@dataclass(frozen=True)
class OnnxInput:
    """An edited model and the spec to check it against (none, or a built-in player's)."""

    model: MutatedFile
    env: str | None


def onnx_inputs(paths: Sequence[Path] = ONNX_MODELS) -> st.SearchStrategy[OnnxInput]:
    envs = st.sampled_from((None, None, "builtin:3DBall", "builtin:Basic"))
    return st.builds(OnnxInput, mutated_files(paths), envs)


def check_onnx(value: OnnxInput) -> str:
    """``unity-sb3 inspect-model`` on the edited file: exit 0, or non-zero with a one-paragraph
    message on stderr naming the file; no exception, no traceback."""
    from cli import inspect_model_command

    path = write_scratch("model.onnx", value.model.data())
    args = argparse.Namespace(model=path, env=value.env, demo=None, behavior=None)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = inspect_model_command.run(args)
    if code == 0:
        assert "Traceback" not in out.getvalue() + err.getvalue()
        return ACCEPTED
    if err.getvalue():
        check_message(err.getvalue(), names=[str(path)])
        return REJECTED
    # exit 1 with the mismatches on stdout: a model that does not fit the spec
    assert out.getvalue().count("Does not fit") == 1, out.getvalue()[:500]
    return ACCEPTED


# -- the kinds -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FuzzKind:
    """One kind of input: how to generate it (for the benchmark) and the property it must keep."""

    name: str
    strategy: Callable[[], st.SearchStrategy[Any]]
    check: Callable[[Any], str]
    protocol: bool  # needs only the protocol stack (no pydantic/SB3/onnx)
    imports: tuple[str, ...] = ()  # modules the check imports (slow ones: import before timing)

    def warm_up(self) -> None:
        """Import what the check needs, so a per-input timeout does not cut an import short."""
        for module in self.imports:
            importlib.import_module(module)


_CONFIG_MODULES = ("cli.learn_arguments", "cli.training_environment")
KINDS: dict[str, FuzzKind] = {
    kind.name: kind
    for kind in (
        FuzzKind(
            "config",
            lambda: mutated_configs(CURRENT_CONFIGS),
            check_mutated_config,
            False,
            _CONFIG_MODULES,
        ),
        FuzzKind("config-schema", schema_configs, check_config_mapping, False, _CONFIG_MODULES),
        FuzzKind("legacy-config", legacy_inputs, check_legacy, False, _CONFIG_MODULES),
        FuzzKind("config-file", config_files, check_config_files, False, _CONFIG_MODULES),
        FuzzKind("demo", demo_files, check_demo, True, ("unity_gym.demo",)),
        FuzzKind("side-channel-python", side_channel_traffic, check_side_channel_python, True),
        FuzzKind("side-channel-player", side_channel_traffic, check_side_channel_player, True),
        FuzzKind("protocol", unity_outputs, check_unity_outputs, True, ("unity_gym.environment",)),
        FuzzKind("onnx", onnx_inputs, check_onnx, False, ("onnx", "cli.inspect_model_command")),
    )
}
