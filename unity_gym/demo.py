"""Fast reader for Unity ML-Agents demonstration recordings (``.demo`` files).

A ``.demo`` file, as Unity's ``DemonstrationRecorder`` writes it, holds:

1. a varint-length-delimited ``DemonstrationMetaProto`` (api_version 0 or 1, name, number of
   steps and episodes, mean reward), padded so that the stream goes on at byte 33;
2. a length-delimited ``BrainParametersProto`` (behavior name, action spec);
3. ``number_steps`` length-delimited ``AgentInfoActionPairProto`` records, one per agent
   step. Bytes after them (Unity appends a copy of the header) are ignored.

:func:`load_demonstration` reads one file, or every ``*.demo`` file of a directory (sorted by
name, concatenated), into numpy arrays with one row per record. Writing (:class:`DemoWriter`,
:func:`write_demonstration`) lives in :mod:`unity_gym.demo_writer` and is re-exported here.

Output conventions:

* Observations are float32, one array per observation spec, shaped ``(N, *spec.shape)``.
* Visual (3-D) observations are **channel-first** ``(N, C, H, W)`` with values in [0, 1], as
  the low-level API delivers them, and ``behavior_spec`` gives the channel-first shape.
  Older recordings store them channel-last ``(H, W, C)``: they are transposed here, and
  :attr:`DemoFileInfo.stored_observation_shapes` / :attr:`DemoFileInfo.channel_last` tell
  what the file held. The layout comes from the observation's dimension properties when the
  recording has them (the single ``NONE`` dimension is the channel axis); without them a
  shape whose last dimension is smaller than the other two is taken as channel-last.
* Empty observations (shape ``(0,)``) are kept, as ``(N, 0)`` arrays.
* Actions come from ``continuous_actions``/``discrete_actions``; records that only fill
  ``vector_actions_deprecated`` (older recordings) give continuous actions when the spec has
  any, discrete ones otherwise. Records without any action (often the last one) hold zeros
  and are False in :attr:`Demonstration.action_recorded`.

Speed: each file is read with one ``read``. Records are parsed by protobuf (small records all
in one call) through a private mirror of the record messages in which packed float and bool
fields are declared ``bytes`` (the same wire format), so observations, actions and masks reach
numpy as raw little-endian buffers, without a Python object per value. Fields found without
the packed layout are re-read with the real message classes. Each distinct PNG is decoded
once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet

from unity_gym.base_env import ActionSpec, BehaviorSpec, DimensionProperty, ObservationSpec
from unity_gym.communicator_objects.agent_info_action_pair_pb2 import AgentInfoActionPairProto
from unity_gym.communicator_objects.brain_parameters_pb2 import BrainParametersProto
from unity_gym.communicator_objects.demonstration_meta_pb2 import DemonstrationMetaProto
from unity_gym.communicator_objects.observation_pb2 import NONE as COMPRESSION_NONE
from unity_gym.demo_writer import INITIAL_POS, DemoSummary, DemoWriter, write_demonstration
from unity_gym.exception import UnityDemoException, UnityException, UnityObservationException
from unity_gym.rpc_utils import behavior_spec_from_proto, decode_png_observation

__all__ = [
    "SUPPORTED_DEMONSTRATION_VERSIONS",
    "DemoFileInfo",
    "DemoSummary",
    "DemoTransitions",
    "DemoWriter",
    "Demonstration",
    "Transition",
    "load_demonstration",
    "write_demonstration",
]

SUPPORTED_DEMONSTRATION_VERSIONS = frozenset({0, 1})
DEMO_SUFFIX = ".demo"
_LARGE_ROW = 4096  # bytes; records or rows this big are handled one by one, without a join


# ---------------------------------------------------------------------------------------------
# Public types


@dataclass(frozen=True)
class DemoFileInfo:
    """Header of one ``.demo`` file, and the rows ``[start, stop)`` its records fill."""

    path: Path
    demonstration_name: str
    api_version: int
    number_steps: int
    number_episodes: int
    mean_reward: float
    behavior_name: str
    start: int
    stop: int
    stored_observation_shapes: tuple[tuple[int, ...], ...]  # shapes as recorded in the file
    channel_last: tuple[bool, ...]  # per observation: stored (H, W, C), transposed on load


class Transition(NamedTuple):
    """One row of :class:`DemoTransitions`."""

    record: int  # record t
    observations: list[np.ndarray]  # observations of record t
    continuous_action: np.ndarray  # action of record t
    discrete_action: np.ndarray
    action_mask: np.ndarray | None  # mask of record t (True = not allowed)
    reward: float  # reward stored in record t + 1
    done: bool  # done of record t + 1
    interrupted: bool  # max_step_reached of record t + 1


@dataclass
class DemoTransitions:
    """Batched transitions: row ``k`` pairs record ``t = indices[k]`` with record ``t + 1``.

    Observations, actions and action masks are those of record ``t``; rewards, dones and
    interrupted flags are those stored in record ``t + 1``. A recording writes the reward and
    done that follow an action with the next record, and ML-Agents' loader pairs them so too.
    Iterating yields one :class:`Transition` per row.
    """

    indices: np.ndarray  # (T,) int64
    observations: list[np.ndarray]  # (T, *shape) float32 per observation spec
    continuous_actions: np.ndarray  # (T, c) float32
    discrete_actions: np.ndarray  # (T, d) int32
    action_masks: np.ndarray | None  # (T, sum(branches)) bool, or None
    rewards: np.ndarray  # (T,) float32
    dones: np.ndarray  # (T,) bool
    interrupted: np.ndarray  # (T,) bool

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[Transition]:
        for k in range(len(self.indices)):
            yield Transition(
                record=int(self.indices[k]),
                observations=[o[k] for o in self.observations],
                continuous_action=self.continuous_actions[k],
                discrete_action=self.discrete_actions[k],
                action_mask=None if self.action_masks is None else self.action_masks[k],
                reward=float(self.rewards[k]),
                done=bool(self.dones[k]),
                interrupted=bool(self.interrupted[k]),
            )


@dataclass
class Demonstration:
    """A loaded demonstration: one row per recorded agent step, ``N`` rows in all.

    ``action_masks`` has the protocol's meaning (True = the action is NOT allowed). It is
    None when the behavior has no discrete actions or no record carries a mask; records
    without a mask get all-False rows. ``files`` has the header of each file read.
    """

    path: Path
    behavior_spec: BehaviorSpec  # visual observation shapes are channel-first
    behavior_name: str
    observations: list[np.ndarray]  # (N, *shape) float32 per observation spec
    continuous_actions: np.ndarray  # (N, c) float32
    discrete_actions: np.ndarray  # (N, d) int32
    rewards: np.ndarray  # (N,) float32
    dones: np.ndarray  # (N,) bool
    max_step_reached: np.ndarray  # (N,) bool: the episode was cut by its step limit
    action_masks: np.ndarray | None  # (N, sum(branches)) bool
    agent_ids: np.ndarray  # (N,) int32
    action_recorded: np.ndarray  # (N,) bool: False where the record holds no action
    files: list[DemoFileInfo] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def interrupted(self) -> np.ndarray:
        """Alias of ``max_step_reached`` (the name ``TerminalSteps`` uses)."""
        return self.max_step_reached

    @property
    def number_episodes(self) -> int:
        """Episodes recorded, summed over the file headers."""
        return sum(f.number_episodes for f in self.files)

    def transitions(self) -> DemoTransitions:
        """Pair each record ``t`` with the reward and done stored in record ``t + 1``.

        Every ``t`` is included whose record holds an action and whose record ``t + 1`` is
        in the same file; so one file whose last record holds no action gives ``N - 1``
        transitions, as ML-Agents' loader does (for a directory, ML-Agents also pairs each
        file's last record with the next file's first; this does not). Consecutive records
        are paired whatever their agent id, as in ML-Agents; a transition whose record ``t``
        has ``done`` set starts from a terminal observation (``demo.dones[tr.indices]``).
        """
        keep = np.zeros(len(self), dtype=bool)
        for info in self.files:
            keep[info.start : info.stop - 1] = True
        keep &= self.action_recorded
        t = np.flatnonzero(keep)
        following = t + 1
        return DemoTransitions(
            indices=t,
            observations=[o[t] for o in self.observations],
            continuous_actions=self.continuous_actions[t],
            discrete_actions=self.discrete_actions[t],
            action_masks=None if self.action_masks is None else self.action_masks[t],
            rewards=self.rewards[following],
            dones=self.dones[following],
            interrupted=self.max_step_reached[following],
        )


def load_demonstration(path: str | os.PathLike[str]) -> Demonstration:
    """Load a ``.demo`` file, or every ``*.demo`` file of a directory (sorted, concatenated).

    Raises :class:`~unity_gym.exception.UnityDemoException` when the path is missing or
    holds no ``.demo`` file, when a file is truncated, empty, of an unsupported version or
    not a demonstration, and when the files of a directory record different behaviors.
    """
    root = Path(path)
    parts = [_load_file(f) for f in _demo_files(root)]
    first = parts[0]
    for other in parts[1:]:
        if _spec_key(other.spec) != _spec_key(first.spec):
            raise UnityDemoException(
                f"The demonstrations in {root} record different behaviors: {first.path.name} "
                f"has {_describe_spec(first.spec)} but {other.path.name} has "
                f"{_describe_spec(other.spec)}. The .demo files of a directory are loaded as "
                "one demonstration, so they must share one behavior spec; move the other "
                "recordings to a directory of their own."
            )
    infos = []
    start = 0
    for part in parts:
        infos.append(part.file_info(start, start + part.n))
        start += part.n
    masks: np.ndarray | None = None
    if any(p.action_masks is not None for p in parts):
        width = sum(first.spec.action_spec.discrete_branches)
        masks = _concat(
            [
                p.action_masks if p.action_masks is not None else np.zeros((p.n, width), bool)
                for p in parts
            ]
        )
    return Demonstration(
        path=root,
        behavior_spec=first.spec,
        behavior_name=first.brain.brain_name,
        observations=[
            _concat([p.observations[i] for p in parts]) for i in range(len(first.observations))
        ],
        continuous_actions=_concat([p.continuous_actions for p in parts]),
        discrete_actions=_concat([p.discrete_actions for p in parts]),
        rewards=_concat([p.rewards for p in parts]),
        dones=_concat([p.dones for p in parts]),
        max_step_reached=_concat([p.max_step_reached for p in parts]),
        action_masks=masks,
        agent_ids=_concat([p.agent_ids for p in parts]),
        action_recorded=_concat([p.action_recorded for p in parts]),
        files=infos,
    )


# ---------------------------------------------------------------------------------------------
# Paths and error messages


def _demo_files(root: Path) -> list[Path]:
    if not root.exists():
        raise UnityDemoException(
            f"The demonstration path {str(root)!r} does not exist (looked for "
            f"{root.absolute()}). Give the path of a .demo file recorded with Unity's "
            "Demonstration Recorder, or of a directory holding such files; a relative path is "
            "taken from the current working directory."
        )
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix == DEMO_SUFFIX and p.is_file())
        if not files:
            raise UnityDemoException(
                f"The directory {root} holds no .demo file. Give a directory holding "
                "recordings made by Unity's Demonstration Recorder (files ending in .demo), "
                "or the path of one such file."
            )
        return files
    if root.suffix != DEMO_SUFFIX:
        raise UnityDemoException(
            f"{root} is not a .demo file. Demonstrations are the .demo files that Unity's "
            "Demonstration Recorder writes (by default under Assets/Demonstrations); give the "
            "path of one, or of a directory holding them."
        )
    return [root]


def _fail(path: Path, problem: str, fix: str) -> UnityDemoException:
    return UnityDemoException(f"Could not load the demonstration {path}: {problem} {fix}")


_NOT_A_DEMO = (
    "This is not an ML-Agents demonstration, or the file is corrupt; use a .demo file "
    "written by Unity's Demonstration Recorder."
)
_TRUNCATED = (
    "The file is truncated (the recording did not finish, or the copy is incomplete); copy "
    "it again from where it was recorded, or record it again."
)


# ---------------------------------------------------------------------------------------------
# Private mirror of the record messages: packed float/bool fields read as raw bytes


def _fast_record_classes() -> tuple[Any, Any]:
    """Message classes for ``AgentInfoActionPairProto`` records and for a run of them.

    Only the fields the loader uses are declared; packed ``repeated float`` and ``repeated
    bool`` fields share the wire type of ``bytes``, so declaring them ``bytes`` hands over
    their raw little-endian payload. ``Records`` (field 1, repeated) parses many
    length-delimited records at once once each is given the field-1 tag byte ``0x0A``.
    """
    label = descriptor_pb2.FieldDescriptorProto
    f = descriptor_pb2.FileDescriptorProto(
        name="unity_gym/demo_fast_records.proto", package="unity_gym_demo", syntax="proto3"
    )
    one, many = label.LABEL_OPTIONAL, label.LABEL_REPEATED
    layouts: dict[str, list[tuple[str, int, int, int, str]]] = {
        "FloatBytes": [("data", 1, label.TYPE_BYTES, one, "")],
        "Observation": [
            ("compression_type", 2, label.TYPE_INT32, one, ""),
            ("compressed_data", 3, label.TYPE_BYTES, one, ""),
            ("float_data", 4, label.TYPE_MESSAGE, one, "FloatBytes"),
            ("compressed_channel_mapping", 5, label.TYPE_INT32, many, ""),
        ],
        "AgentInfo": [
            ("reward", 7, label.TYPE_FLOAT, one, ""),
            ("done", 8, label.TYPE_BOOL, one, ""),
            ("max_step_reached", 9, label.TYPE_BOOL, one, ""),
            ("id", 10, label.TYPE_INT32, one, ""),
            ("action_mask", 11, label.TYPE_BYTES, one, ""),
            ("observations", 13, label.TYPE_MESSAGE, many, "Observation"),
        ],
        "AgentAction": [
            ("vector_actions_deprecated", 1, label.TYPE_BYTES, one, ""),
            ("continuous_actions", 6, label.TYPE_BYTES, one, ""),
            ("discrete_actions", 7, label.TYPE_INT32, many, ""),
        ],
        "Pair": [
            ("agent_info", 1, label.TYPE_MESSAGE, one, "AgentInfo"),
            ("action_info", 2, label.TYPE_MESSAGE, one, "AgentAction"),
        ],
        "Records": [("records", 1, label.TYPE_MESSAGE, many, "Pair")],
    }
    for name, fields in layouts.items():
        message = f.message_type.add(name=name)
        for field_name, number, kind, field_label, type_name in fields:
            entry = message.field.add(name=field_name, number=number, type=kind, label=field_label)
            if type_name:
                entry.type_name = f".unity_gym_demo.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return tuple(  # type: ignore[return-value]
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"unity_gym_demo.{n}"))
        for n in ("Pair", "Records")
    )


_FastPair, _FastRecords = _fast_record_classes()


# ---------------------------------------------------------------------------------------------
# One file


@dataclass
class _FileData:
    path: Path
    meta: DemonstrationMetaProto
    brain: BrainParametersProto
    spec: BehaviorSpec
    stored_shapes: tuple[tuple[int, ...], ...]
    channel_last: tuple[bool, ...]
    n: int
    observations: list[np.ndarray]
    continuous_actions: np.ndarray
    discrete_actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    max_step_reached: np.ndarray
    action_masks: np.ndarray | None
    agent_ids: np.ndarray
    action_recorded: np.ndarray

    def file_info(self, start: int, stop: int) -> DemoFileInfo:
        return DemoFileInfo(
            path=self.path,
            demonstration_name=self.meta.demonstration_name,
            api_version=self.meta.api_version,
            number_steps=self.meta.number_steps,
            number_episodes=self.meta.number_episodes,
            mean_reward=float(self.meta.mean_reward),
            behavior_name=self.brain.brain_name,
            start=start,
            stop=stop,
            stored_observation_shapes=self.stored_shapes,
            channel_last=self.channel_last,
        )


class _Records:
    """The records of one file: fast-parsed messages plus access to the real ones."""

    def __init__(self, path: Path, data: bytes, spans: list[tuple[int, int, int]]) -> None:
        self.path = path
        self.data = data
        self.spans = spans
        view = memoryview(data)
        try:
            if (spans[-1][2] - spans[0][0]) >= _LARGE_ROW * len(spans):
                self.pairs: list[Any] = [_FastPair.FromString(view[b:e]) for _, b, e in spans]
            else:
                # Each record is stored as <varint length><body>: prefixed with the field-1
                # tag, the whole run parses as one ``Records`` message in a single call.
                joined = b"\x0a".join([b"", *(view[start:end] for start, _, end in spans)])
                self.pairs = list(_FastRecords.FromString(joined).records)
        except DecodeError:
            raise self._locate_decode_error() from None
        self._real: dict[int, AgentInfoActionPairProto] = {}
        self.infos = [p.agent_info for p in self.pairs]
        self.actions = [p.action_info for p in self.pairs]

    def real(self, row: int) -> AgentInfoActionPairProto:
        """Record ``row`` parsed with the real message class."""
        pair = self._real.get(row)
        if pair is None:
            _, body, end = self.spans[row]
            try:
                pair = self._real[row] = AgentInfoActionPairProto.FromString(self.data[body:end])
            except DecodeError:
                raise self._undecodable(row) from None
        return pair

    def where(self, row: int) -> str:
        return f"record {row} (byte offset {self.spans[row][0]})"

    def _undecodable(self, row: int) -> UnityDemoException:
        return _fail(
            self.path,
            f"{self.where(row)} could not be decoded as an AgentInfoActionPairProto.",
            _NOT_A_DEMO,
        )

    def _locate_decode_error(self) -> UnityDemoException:
        for row, (_, body, end) in enumerate(self.spans):
            try:
                _FastPair.FromString(self.data[body:end])
            except DecodeError:
                return self._undecodable(row)
        return _fail(self.path, "its records could not be decoded.", _NOT_A_DEMO)


def _load_file(path: Path) -> _FileData:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise _fail(
            path, f"the file could not be read ({err}).", "Check its permissions."
        ) from None
    meta = _parse_meta(path, data)
    brain, pos = _parse_brain(path, data)
    records = _Records(path, data, _scan_records(path, data, pos, meta.number_steps))
    try:
        raw_spec = behavior_spec_from_proto(brain, records.real(0).agent_info)
    except UnityException as err:
        raise _fail(path, f"its behavior spec is unusable: {err}", _NOT_A_DEMO) from None
    channel_last = tuple(_is_channel_last(s) for s in raw_spec.observation_specs)
    spec = BehaviorSpec(
        observation_specs=[
            _to_channel_first(s) if last else s
            for s, last in zip(raw_spec.observation_specs, channel_last, strict=True)
        ],
        action_spec=raw_spec.action_spec,
    )
    infos = records.infos
    n = len(infos)
    continuous, discrete, recorded = _gather_actions(records, spec.action_spec)
    return _FileData(
        path=path,
        meta=meta,
        brain=brain,
        spec=spec,
        stored_shapes=tuple(s.shape for s in raw_spec.observation_specs),
        channel_last=channel_last,
        n=n,
        observations=_gather_observations(records, raw_spec, spec, channel_last),
        continuous_actions=continuous,
        discrete_actions=discrete,
        rewards=np.fromiter((i.reward for i in infos), np.float32, n),
        dones=np.fromiter((i.done for i in infos), bool, n),
        max_step_reached=np.fromiter((i.max_step_reached for i in infos), bool, n),
        action_masks=_gather_masks(records, spec.action_spec),
        agent_ids=np.fromiter((i.id for i in infos), np.int32, n),
        action_recorded=recorded,
    )


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it); IndexError when the data ends inside the varint."""
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    value = byte & 0x7F
    shift = 7
    while True:
        pos += 1
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos + 1
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


def _parse_meta(path: Path, data: bytes) -> DemonstrationMetaProto:
    if not data:
        raise _fail(path, "the file is empty.", _TRUNCATED)
    try:
        length, body = _read_varint(data, 0)
    except (IndexError, ValueError):
        length, body = INITIAL_POS, INITIAL_POS  # no varint: not a header, judged below
    if body + length > INITIAL_POS:
        raise _fail(
            path,
            "it does not start with a demonstration header (DemonstrationMetaProto).",
            _NOT_A_DEMO,
        )
    if len(data) <= INITIAL_POS:
        raise _fail(
            path,
            f"the file has only {len(data)} bytes, not even the {INITIAL_POS}-byte header and "
            "the brain parameters.",
            _TRUNCATED,
        )
    meta = DemonstrationMetaProto()
    try:
        meta.ParseFromString(data[body : body + length])
    except DecodeError:
        raise _fail(
            path, "its header could not be decoded as a DemonstrationMetaProto.", _NOT_A_DEMO
        ) from None
    if meta.number_steps < 0 or meta.number_episodes < 0 or _has_unknown_fields(meta):
        raise _fail(path, "its first bytes are not a demonstration header.", _NOT_A_DEMO)
    if meta.api_version not in SUPPORTED_DEMONSTRATION_VERSIONS:
        raise _fail(
            path,
            f"its header says demonstration api_version {meta.api_version}, but only "
            f"versions {sorted(SUPPORTED_DEMONSTRATION_VERSIONS)} are supported.",
            "Record it again with an ML-Agents Unity package that writes a supported version "
            "(current packages write 1), and check that the file really is a .demo file.",
        )
    return meta


def _has_unknown_fields(message: Any) -> bool:
    return len(UnknownFieldSet(message)) > 0


def _parse_brain(path: Path, data: bytes) -> tuple[BrainParametersProto, int]:
    try:
        length, body = _read_varint(data, INITIAL_POS)
    except IndexError:
        length, body = -1, len(data)
    except ValueError:
        raise _fail(
            path,
            f"the brain parameters record at byte offset {INITIAL_POS} has a corrupt length.",
            _NOT_A_DEMO,
        ) from None
    end = body + length
    if length < 0 or end > len(data):
        raise _fail(
            path,
            f"the brain parameters record at byte offset {INITIAL_POS} runs past the end of "
            f"the file (byte {len(data)}).",
            _TRUNCATED,
        )
    brain = BrainParametersProto()
    try:
        brain.ParseFromString(data[body:end])
    except DecodeError:
        raise _fail(
            path,
            f"the brain parameters record at byte offset {INITIAL_POS} could not be decoded.",
            _NOT_A_DEMO,
        ) from None
    return brain, end


def _scan_records(path: Path, data: bytes, pos: int, expected: int) -> list[tuple[int, int, int]]:
    """(length prefix offset, body offset, end) of each of the ``expected`` records."""
    if expected == 0:
        raise _fail(
            path,
            "its header says it holds 0 recorded steps (nothing was recorded, or Unity "
            "stopped before it finished writing the file).",
            "Record again: let the scene run for some steps with the Demonstration "
            "Recorder's Record box ticked, then leave play mode normally so Unity completes "
            "the file.",
        )
    spans: list[tuple[int, int, int]] = []
    append = spans.append
    total = len(data)
    length = 0
    try:
        for _ in range(expected):
            byte = data[pos]
            if byte < 0x80:
                length, body = byte, pos + 1
            else:
                length, body = _read_varint(data, pos)
            end = body + length
            if end > total:
                break
            append((pos, body, end))
            pos = end
        else:
            return spans
    except IndexError:
        row = len(spans)
        if pos >= total:
            raise _fail(
                path,
                f"its header announces {expected} records, but the file ends (byte {total}) "
                f"after {row} of them.",
                _TRUNCATED,
            ) from None
        raise _fail(
            path,
            f"record {row} of {expected}, at byte offset {pos}, has its length prefix cut off "
            f"by the end of the file (byte {total}).",
            _TRUNCATED,
        ) from None
    except ValueError:
        raise _fail(
            path,
            f"record {len(spans)} (byte offset {pos}) has a corrupt length prefix.",
            _NOT_A_DEMO,
        ) from None
    raise _fail(
        path,
        f"record {len(spans)} of {expected}, at byte offset {pos}, needs {length} bytes but "
        f"only {total - body} remain (the file ends at byte {total}).",
        _TRUNCATED,
    )


# ---------------------------------------------------------------------------------------------
# Gathering values into arrays


def _packed_rows(
    payloads: Sequence[bytes],
    width: int,
    dtype: str,
    refetch: Callable[[int], Sequence[Any]],
    refetch_empty: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Stack per-record packed payloads of ``width`` values into an ``(n, width)`` array.

    ``dtype`` is the wire layout ("<f4" floats, "u1" bools). Empty payloads give zero rows
    (unless ``refetch_empty``); payloads of another size are re-read through
    ``refetch(row)``, the values of the real message (an unpacked field lands there).
    Returns the array and each record's number of values.
    """
    n = len(payloads)
    itemsize = np.dtype(dtype).itemsize
    sizes = np.fromiter(map(len, payloads), np.int64, n)
    out_dtype = np.float32 if dtype == "<f4" else bool
    if width > 0 and (sizes == width * itemsize).all():
        if width * itemsize >= _LARGE_ROW:  # copy big rows straight into place
            out = np.empty((n, width), dtype=out_dtype)
            for row, payload in enumerate(payloads):
                out[row] = np.frombuffer(payload, dtype)
        else:  # one join; a bytearray keeps the array writable without another copy
            wire = np.frombuffer(bytearray().join(payloads), dtype).reshape(n, width)
            out = wire != 0 if out_dtype is bool else wire.astype(np.float32, copy=False)
        return out, np.full(n, width, np.int64)
    out = np.zeros((n, width), dtype=out_dtype)
    counts = sizes // itemsize
    full = np.flatnonzero(sizes == width * itemsize)
    if width > 0 and len(full):
        joined = b"".join([payloads[r] for r in full.tolist()])
        out[full] = np.frombuffer(joined, dtype).reshape(len(full), width)
    odd = sizes != width * itemsize
    if not refetch_empty:
        odd &= sizes != 0
    for row in np.flatnonzero(odd).tolist():
        real = refetch(row)
        counts[row] = len(real)
        if len(real) == width:
            out[row] = real
    return out, counts


def _gather_observations(
    records: _Records,
    raw_spec: BehaviorSpec,
    spec: BehaviorSpec,
    channel_last: tuple[bool, ...],
) -> list[np.ndarray]:
    n_obs = len(spec.observation_specs)
    obs_lists = [i.observations for i in records.infos]
    for row, obs in enumerate(obs_lists):
        if len(obs) != n_obs:
            raise _fail(
                records.path,
                f"{records.where(row)} has {len(obs)} observations, but the first record has "
                f"{n_obs}.",
                _NOT_A_DEMO,
            )
    result = []
    for index in range(n_obs):
        column = [obs[index] for obs in obs_lists]
        stored = raw_spec.observation_specs[index].shape
        target = spec.observation_specs[index].shape
        size = int(np.prod(stored))
        png = [r for r, o in enumerate(column) if o.compression_type != COMPRESSION_NONE]
        if len(png) == len(column):
            floats = np.zeros((0, size), np.float32)
        else:
            png_rows = set(png)

            def real_floats(row: int, i: int = index, skip: set[int] = png_rows) -> Sequence[float]:
                if row in skip:
                    return ()
                return records.real(row).agent_info.observations[i].float_data.data

            floats, counts = _packed_rows(
                [o.float_data.data for o in column], size, "<f4", real_floats, size > 0
            )
            wrong = np.flatnonzero(counts != size)
            wrong = wrong[~np.isin(wrong, png)]
            if len(wrong):
                bad = int(wrong[0])
                raise _fail(
                    records.path,
                    f"observation {index} of {records.where(bad)} has {counts[bad]} values, "
                    f"but the behavior's observation shape {stored} needs {size}.",
                    _NOT_A_DEMO,
                )
        batch = floats.reshape((len(floats), *stored))
        if channel_last[index]:
            batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        if png:
            if len(png) == len(column):
                batch = np.empty((len(column), *target), np.float32)
            decoded: dict[tuple[bytes, tuple[int, ...]], np.ndarray] = {}
            for row in png:
                o = column[row]
                key = (o.compressed_data, tuple(o.compressed_channel_mapping))
                try:
                    image = decoded.get(key)
                    if image is None:  # repeated frames are decoded once
                        image = decoded[key] = decode_png_observation(key[0], target, key[1])
                    batch[row] = image
                except UnityObservationException as err:
                    raise _fail(
                        records.path,
                        f"observation {index} of {records.where(row)} could not be decoded: {err}",
                        _NOT_A_DEMO,
                    ) from None
        result.append(batch)
    return result


def _gather_actions(
    records: _Records, action_spec: ActionSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Continuous (n, c) float32, discrete (n, d) int32, and whether each record has one."""
    c = action_spec.continuous_size
    d = action_spec.discrete_size
    actions = records.actions
    n = len(actions)
    continuous, c_len = _packed_rows(
        [a.continuous_actions for a in actions],
        c,
        "<f4",
        lambda row: records.real(row).action_info.continuous_actions,
    )
    discrete_fields = [a.discrete_actions for a in actions]
    d_len = np.fromiter(map(len, discrete_fields), np.int64, n)
    discrete = np.zeros((n, d), np.int32)
    has_discrete = np.flatnonzero(d_len == d) if d > 0 else np.zeros(0, np.int64)
    if len(has_discrete) == n:
        discrete[:] = np.fromiter(chain.from_iterable(discrete_fields), np.int32, n * d).reshape(
            n, d
        )
    elif len(has_discrete):
        values = chain.from_iterable(discrete_fields[r] for r in has_discrete)
        discrete[has_discrete] = np.fromiter(values, np.int32, len(has_discrete) * d).reshape(-1, d)
    legacy_width = c if c > 0 else d
    legacy, v_len = _packed_rows(
        [a.vector_actions_deprecated for a in actions],
        legacy_width,
        "<f4",
        lambda row: records.real(row).action_info.vector_actions_deprecated,
    )
    for row in np.flatnonzero((c_len == 0) & (d_len == 0) & (v_len == 0)).tolist():
        # No action seen: check with the real message, in case its fields are not packed.
        real = records.real(row).action_info
        c_len[row], d_len[row] = len(real.continuous_actions), len(real.discrete_actions)
        v_len[row] = len(real.vector_actions_deprecated)
        if c_len[row] == c:
            continuous[row] = real.continuous_actions
        if d_len[row] == d:
            discrete[row] = real.discrete_actions
        if v_len[row] == legacy_width:
            legacy[row] = real.vector_actions_deprecated
    current = (c_len > 0) | (d_len > 0)
    use_legacy = ~current & (v_len > 0)
    bad = (current & ((c_len != c) | (d_len != d))) | (use_legacy & (v_len != legacy_width))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise _fail(
            records.path,
            f"the action of {records.where(row)} has {c_len[row]} continuous, {d_len[row]} "
            f"discrete and {v_len[row]} legacy values, which does not fit the behavior's "
            f"action spec ({action_spec}).",
            _NOT_A_DEMO,
        )
    if use_legacy.any():
        if c > 0:
            continuous[use_legacy] = legacy[use_legacy]
        else:
            discrete[use_legacy] = np.rint(legacy[use_legacy]).astype(np.int32)
    return continuous, discrete, current | use_legacy


def _gather_masks(records: _Records, action_spec: ActionSpec) -> np.ndarray | None:
    """(n, sum(branches)) bool; rows of records without a (well-sized) mask stay False."""
    width = sum(action_spec.discrete_branches)
    if width == 0:
        return None
    payloads = [i.action_mask for i in records.infos]
    # Empty masks are normal; if record 0 has a mask the fast parse did not see, the file
    # does not pack its masks and every empty one is re-read.
    unpacked = len(records.real(0).agent_info.action_mask) != len(payloads[0])
    masks, counts = _packed_rows(
        payloads, width, "u1", lambda row: records.real(row).agent_info.action_mask, unpacked
    )
    if not (counts == width).any():
        return None
    masks[counts != width] = False
    return masks


# ---------------------------------------------------------------------------------------------
# Helpers


def _is_channel_last(spec: ObservationSpec) -> bool:
    if len(spec.shape) != 3:
        return False
    props = spec.dimension_property
    channel_axes = [i for i, p in enumerate(props) if p == DimensionProperty.NONE]
    if len(channel_axes) == 1 and DimensionProperty.UNSPECIFIED not in props:
        return channel_axes[0] == 2
    height, width, channels = spec.shape
    return channels < min(height, width)


def _to_channel_first(spec: ObservationSpec) -> ObservationSpec:
    height, width, channels = spec.shape
    props = spec.dimension_property
    return ObservationSpec(
        shape=(channels, height, width),
        dimension_property=(props[2], props[0], props[1]),
        observation_type=spec.observation_type,
        name=spec.name,
    )


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _spec_key(spec: BehaviorSpec) -> tuple[Any, ...]:
    return (
        tuple((s.shape, s.observation_type) for s in spec.observation_specs),
        spec.action_spec,
    )


def _describe_spec(spec: BehaviorSpec) -> str:
    shapes = ", ".join(str(s.shape) for s in spec.observation_specs)
    return f"observations [{shapes}] and actions ({spec.action_spec})"
