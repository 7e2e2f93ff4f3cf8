"""``results/<run-id>/``: the folder layout and files mlagents-learn users and tools expect.

::

    results/<run-id>/
        configuration.yaml              the fully resolved configuration
        <Behavior>.onnx                 final model for Unity (see sb3_ext.onnx_export)
        <Behavior>/
            events.out.tfevents.*       TensorBoard, ML-Agents' metric names
            <Behavior>-<step>.zip       SB3 checkpoint (+ .onnx, .normalizer.npz beside it)
            checkpoint.json             the latest complete checkpoint, what --resume loads
            behavior_spec.json          observations and actions, for export and inspection
        run_logs/
            timers.json                 timer tree and gauges
            training_status.json        checkpoints per behavior, rewritten with every one

Every file is written atomically (a temporary file in the same folder, then a rename), so an
interrupted or killed run never leaves a half-written file behind: a reader sees the old
file or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from unity_gym.base_env import (
    ActionSpec,
    BehaviorSpec,
    DimensionProperty,
    ObservationSpec,
    ObservationType,
)

STATS_FORMAT_VERSION = "0.3.0"
TEMPORARY_SUFFIX = ".partial"


@contextlib.contextmanager
def atomic_writer(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; it replaces ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent
    )
    try:
        with os.fdopen(descriptor, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_atomically(path: Path, writer: Callable[[IO[Any]], None], binary: bool = True) -> None:
    with atomic_writer(path, "wb" if binary else "w") as handle:
        writer(handle)


def write_json(path: Path, data: Any) -> None:
    write_atomically(path, lambda h: json.dump(data, h, indent=4), binary=False)


def write_yaml(path: Path, data: Any) -> None:
    write_atomically(
        path, lambda h: yaml.safe_dump(data, h, sort_keys=False, default_flow_style=False), False
    )


def remove_partial_files(folder: Path) -> list[Path]:
    """Delete temporary files a killed run left; returns them."""
    if not folder.exists():
        return []
    leftovers = list(folder.rglob(f".*{TEMPORARY_SUFFIX}"))
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    return leftovers


@dataclass
class CheckpointRecord:
    """One entry of ``training_status.json`` (field names as ML-Agents writes them)."""

    steps: int
    file_path: str
    reward: float | None
    creation_time: float
    auxillary_file_paths: list[str] = field(default_factory=list)


@dataclass
class BehaviorStatus:
    checkpoints: list[CheckpointRecord] = field(default_factory=list)
    final_checkpoint: CheckpointRecord | None = None
    elo: float | None = None  # self-play's current rating (ML-Agents' "elo")


class RunDirectory:
    """Paths of one run and its ``training_status.json`` bookkeeping.

    Learners record checkpoints from their own threads: the status is changed and written under
    one lock, so the file always holds every record made so far. ``metadata`` (versions) is
    written into the file's ``metadata`` section.
    """

    def __init__(
        self, results_dir: Path, run_id: str, metadata: dict[str, str] | None = None
    ) -> None:
        self.root = results_dir / run_id
        self.run_id = run_id
        self.metadata: dict[str, str] = dict(metadata or {})
        self.status: dict[str, BehaviorStatus] = {}
        # Environment parameter -> current lesson number (ML-Agents' "lesson_num").
        self.lessons: dict[str, int] = {}
        self._status_lock = threading.Lock()

    # -- paths ------------------------------------------------------------------------

    @property
    def configuration(self) -> Path:
        return self.root / "configuration.yaml"

    @property
    def run_logs(self) -> Path:
        return self.root / "run_logs"

    @property
    def status_file(self) -> Path:
        return self.run_logs / "training_status.json"

    @property
    def timers_file(self) -> Path:
        return self.run_logs / "timers.json"

    def behavior_dir(self, behavior: str) -> Path:
        return self.root / behavior

    def checkpoint(self, behavior: str, step: int) -> Path:
        """``<Behavior>-<step>.zip``."""
        return self.behavior_dir(behavior) / f"{behavior}-{step}.zip"

    def behavior_spec_file(self, behavior: str) -> Path:
        return self.behavior_dir(behavior) / "behavior_spec.json"

    def behaviors(self) -> list[str]:
        """Behaviors with a checkpoint in this run."""
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob("*/checkpoint.json"))

    def final_model(self, behavior: str, suffix: str = ".onnx") -> Path:
        return self.root / f"{behavior}{suffix}"

    def has_previous_run(self) -> bool:
        """True when this run id already holds training output."""
        return self.root.exists() and any(self.root.iterdir())

    # -- training_status.json ---------------------------------------------------------

    def load_status(self) -> None:
        if not self.status_file.exists():
            return
        data = json.loads(self.status_file.read_text())
        with self._status_lock:
            for behavior, entry in data.items():
                if behavior == "metadata" or not isinstance(entry, dict):
                    continue
                lesson = entry.get("lesson_num")
                if isinstance(lesson, int) and not isinstance(lesson, bool):
                    self.lessons[behavior] = lesson
                if "checkpoints" not in entry and "final_checkpoint" not in entry:
                    continue
                final = entry.get("final_checkpoint")
                elo = entry.get("elo")
                self.status[behavior] = BehaviorStatus(
                    checkpoints=[CheckpointRecord(**c) for c in entry.get("checkpoints", [])],
                    final_checkpoint=CheckpointRecord(**final) if final else None,
                    elo=float(elo) if isinstance(elo, int | float) else None,
                )

    def record_checkpoint(
        self, behavior: str, record: CheckpointRecord, keep: int, final: bool = False
    ) -> list[CheckpointRecord]:
        """Add ``record`` and rewrite ``training_status.json``; returns the records that fell
        out of the ``keep`` most recent (their files can go: the file no longer lists them)."""
        with self._status_lock:
            status = self.status.setdefault(behavior, BehaviorStatus())
            if final:
                status.final_checkpoint = record
            status.checkpoints = [c for c in status.checkpoints if c.steps != record.steps]
            status.checkpoints.append(record)
            dropped: list[CheckpointRecord] = []
            if keep > 0 and len(status.checkpoints) > keep:
                dropped = status.checkpoints[:-keep]
                status.checkpoints = status.checkpoints[-keep:]
            self._write_status()
        return dropped

    def set_elo(self, behavior: str, elo: float) -> None:
        """Keep ``behavior``'s self-play rating; written with the next checkpoint record."""
        with self._status_lock:
            self.status.setdefault(behavior, BehaviorStatus()).elo = float(elo)

    def elo(self, behavior: str) -> float | None:
        """The rating saved for ``behavior`` (None when there is none)."""
        with self._status_lock:
            status = self.status.get(behavior)
            return None if status is None else status.elo

    def set_lessons(self, lessons: Mapping[str, int]) -> None:
        """Keep the environment parameters' lesson numbers; written with the next checkpoint
        record (mlagents-learn writes them only when the run ends)."""
        with self._status_lock:
            self.lessons = dict(lessons)

    def save_status(self) -> None:
        """Write ``training_status.json`` as the status stands."""
        with self._status_lock:
            self._write_status()

    def _write_status(self) -> None:
        data: dict[str, Any] = {}
        for behavior, status in self.status.items():
            entry: dict[str, Any] = {"checkpoints": [asdict(c) for c in status.checkpoints]}
            if status.elo is not None:
                entry["elo"] = status.elo
            if status.final_checkpoint is not None:
                entry["final_checkpoint"] = asdict(status.final_checkpoint)
            data[behavior] = entry
        for parameter, number in self.lessons.items():
            data.setdefault(parameter, {})["lesson_num"] = number
        data["metadata"] = {"stats_format_version": STATS_FORMAT_VERSION, **self.metadata}
        write_json(self.status_file, data)

    def relative(self, path: Path) -> str:
        """``path`` as ML-Agents records it: relative to the results folder's parent."""
        try:
            return str(path.relative_to(self.root.parent.parent))
        except ValueError:
            return str(path)


def behavior_spec_to_dict(spec: BehaviorSpec) -> dict[str, Any]:
    return {
        "observations": [
            {
                "shape": list(o.shape),
                "dimension_property": [int(d) for d in o.dimension_property],
                "observation_type": o.observation_type.value,
                "name": o.name,
            }
            for o in spec.observation_specs
        ],
        "continuous_size": spec.action_spec.continuous_size,
        "discrete_branches": list(spec.action_spec.discrete_branches),
    }


def behavior_spec_from_dict(data: dict[str, Any]) -> BehaviorSpec:
    return BehaviorSpec(
        observation_specs=[
            ObservationSpec(
                shape=tuple(int(d) for d in o["shape"]),
                dimension_property=tuple(DimensionProperty(d) for d in o["dimension_property"]),
                observation_type=ObservationType(o["observation_type"]),
                name=str(o["name"]),
            )
            for o in data["observations"]
        ],
        action_spec=ActionSpec(
            int(data["continuous_size"]), tuple(int(b) for b in data["discrete_branches"])
        ),
    )
