"""Writer of Unity ML-Agents demonstration recordings (``.demo`` files).

Files come out exactly as Unity's ``DemonstrationWriter`` (com.unity.ml-agents,
``Runtime/Demonstrations/DemonstrationWriter.cs``) lays them out, so that Unity's tools,
ML-Agents' ``demo_loader`` and :func:`unity_gym.demo.load_demonstration` all read them:

1. a varint-length-delimited ``DemonstrationMetaProto`` at byte 0 (api_version 1, name, steps,
   episodes, mean reward), zero-padded so that the stream goes on at byte
   :data:`INITIAL_POS` (33): Unity reserves 32 bytes plus the length prefix;
2. a length-delimited ``BrainParametersProto`` (``is_training`` False, as Unity records it);
3. one length-delimited ``AgentInfoActionPairProto`` per agent step;
4. the meta record's bytes once more, without a length prefix: Unity writes them at the end
   of the stream before seeking back to rewrite the header. Readers ignore them.

The header is final only at :meth:`DemoWriter.close`. Everything is written to a temporary
file next to the target, renamed over it at close, so a crash or an exception never leaves a
half-written file under the final name.

Meaning of a record, as ML-Agents' loaders read it: the observations an agent saw, the reward
received since its previous decision, whether the episode ended there (``done``, and
``max_step_reached`` when it was cut by the step limit), the action mask of the step, and the
action taken from these observations. A terminal record (done) has no next action: its
action is zeros, as Unity's cleared actions are, so both loaders pair every record but the
last. (Recent Unity packages record each observation with the action of the *previous*
decision, because the recorder runs before the brain decides; files written here keep the
action with the observation it was chosen from, as older Unity recordings do and as
behavioural cloning needs.)

Episode counts: Unity's writer counts one episode per ``done`` record plus one at close
(assuming an unfinished episode); here the final one is counted only when the last record
is not done, so a file of N complete episodes says N. ``mean_reward`` is the sum of the
rewards (accumulated in float32, as Unity does) over that count.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

import numpy as np

from unity_gym.base_env import (
    ActionTuple,
    BehaviorSpec,
    DecisionSteps,
    ObservationSpec,
    TerminalSteps,
)
from unity_gym.communicator_objects.agent_info_action_pair_pb2 import AgentInfoActionPairProto
from unity_gym.communicator_objects.demonstration_meta_pb2 import DemonstrationMetaProto
from unity_gym.communicator_objects.observation_pb2 import NONE as COMPRESSION_NONE
from unity_gym.exception import UnityDemoException

if TYPE_CHECKING:
    from unity_gym.demo import Demonstration
    from unity_gym.players.sensors import ObservationWriter

__all__ = ["INITIAL_POS", "DemoSummary", "DemoWriter", "write_demonstration"]

INITIAL_POS = 33  # Unity's MetaDataBytes (32) + 1: where the stream continues after the meta
API_VERSION = 1  # DemonstrationMetaProto.api_version current Unity packages write
MAX_NAME_LENGTH = 16  # Unity's DemonstrationRecorder.MaxNameLength


@dataclass(frozen=True)
class DemoSummary:
    """What a closed :class:`DemoWriter` wrote: the header's figures."""

    path: Path
    number_steps: int
    number_episodes: int
    mean_reward: float


class DemoWriter:
    """Writes one behavior's agent steps to a ``.demo`` file, in Unity's layout.

    Use it as a context manager (or call :meth:`close`); leaving the ``with`` block by an
    exception, or calling :meth:`abort`, removes the temporary file and leaves ``path``
    untouched. :meth:`add_step` writes one record at once; :meth:`add_steps` takes the
    low-level API's steps and writes each agent's episode in one piece when it ends, so that
    the records of an episode are consecutive (the loaders pair each record with the next).

    Visual (3-D, channel-first, values in [0, 1]) observations are stored as PNG, as Unity's
    camera sensors do, when ``compress_visual`` is True and they have 1 to 4 channels (values
    are rounded to multiples of 1/255); everything else as uncompressed floats.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        behavior_spec: BehaviorSpec,
        behavior_name: str = "Behavior?team=0",
        demonstration_name: str | None = None,
        compress_visual: bool = True,
    ) -> None:
        self.path = Path(path)
        if self.path.suffix != ".demo":
            raise UnityDemoException(
                f"Cannot write the demonstration {self.path}: the name must end in .demo "
                "(ML-Agents' loaders skip other files); give a path such as "
                f"{self.path.with_suffix('.demo')}."
            )
        if not self.path.parent.is_dir():
            raise UnityDemoException(
                f"Cannot write the demonstration {self.path}: the directory "
                f"{self.path.parent} does not exist; create it first or give another path."
            )
        # The players' proto builders, imported here: loading the reader stays free of grpc.
        from unity_gym.players.protocol import brain_parameters

        self.behavior_spec = behavior_spec
        self.behavior_name = behavior_name
        self.demonstration_name = _fit_name(demonstration_name or self.path.stem)
        self._writers = [
            _observation_writer(s, compress_visual) for s in behavior_spec.observation_specs
        ]
        action = behavior_spec.action_spec
        self._no_continuous = np.zeros(action.continuous_size, np.float32)
        self._no_discrete = np.zeros(action.discrete_size, np.int32)
        self._mask_width = sum(action.discrete_branches)
        self.number_steps = 0
        self._done_records = 0
        self._last_done = False
        self._reward_sum = np.float32(0.0)  # float32, as Unity's m_CumulativeReward
        self._pending: dict[int, list[tuple[bytes, float, bool]]] = {}
        self.episodes_completed = 0  # complete episodes written by add_steps
        fd, temp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".partial"
        )
        self._temp = Path(temp)
        self._file: IO[bytes] | None = os.fdopen(fd, "wb")
        # Like Unity's Initialize: a first header, the brain parameters at INITIAL_POS.
        self._write_meta_at_start(self._meta(final=False))
        self._file.seek(INITIAL_POS)
        hybrid = action.continuous_size > 0 and action.discrete_size > 0
        brain = brain_parameters(behavior_name, behavior_spec, hybrid_supported=hybrid)
        brain.is_training = False
        self._file.write(_delimited(brain.SerializeToString()))

    # -- adding steps --------------------------------------------------------------------------

    def add_step(
        self,
        observations: Sequence[np.ndarray],
        reward: float = 0.0,
        done: bool = False,
        max_step_reached: bool = False,
        agent_id: int = 0,
        action_mask: np.ndarray | None = None,
        continuous_action: np.ndarray | None = None,
        discrete_action: np.ndarray | None = None,
    ) -> None:
        """Write one agent step: what the agent saw and received, and the action it took.

        ``observations`` has one array per observation spec (its shape). ``action_mask`` is
        the concatenated branches, True where an action is NOT allowed. Missing actions are
        written as zeros (what Unity records for a terminal step).
        """
        record = self._encode(
            observations,
            reward,
            done,
            max_step_reached,
            agent_id,
            action_mask,
            continuous_action,
            discrete_action,
        )
        self._write_record(record, reward, done)

    def add_steps(
        self,
        decision_steps: DecisionSteps,
        terminal_steps: TerminalSteps,
        actions: ActionTuple | None,
        max_episodes: int | None = None,
    ) -> int:
        """Add the steps of one ``get_steps`` call and the actions then set for them.

        ``actions`` has a row per agent of ``decision_steps`` (None when there are none).
        Each agent's records are held until its episode ends, then written together; returns
        how many episodes this call wrote. Episodes still open at :meth:`close` are dropped,
        so the file holds complete episodes only; once :attr:`episodes_completed` reaches
        ``max_episodes``, further episodes are dropped too.
        """
        completed = 0
        for index, agent in enumerate(terminal_steps.agent_id.tolist()):
            if max_episodes is not None and self.episodes_completed >= max_episodes:
                self._pending.clear()
                break
            record = self._encode(
                [obs[index] for obs in terminal_steps.obs],
                float(terminal_steps.reward[index]),
                True,
                bool(terminal_steps.interrupted[index]),
                agent,
                None,
                None,
                None,
            )
            episode = self._pending.pop(agent, [])
            episode.append((record, float(terminal_steps.reward[index]), True))
            for data, reward, done in episode:
                self._write_record(data, reward, done)
            completed += 1
            self.episodes_completed += 1
        if len(decision_steps) == 0:
            return completed
        if actions is None:
            raise UnityDemoException(
                f"add_steps got {len(decision_steps)} decision steps but no actions; pass the "
                "ActionTuple set for them (one row per agent)."
            )
        masks = decision_steps.action_mask
        mask = np.concatenate(masks, axis=1) if masks else None
        continuous, discrete = actions.continuous, actions.discrete
        for index, agent in enumerate(decision_steps.agent_id.tolist()):
            reward = float(decision_steps.reward[index])
            record = self._encode(
                [obs[index] for obs in decision_steps.obs],
                reward,
                False,
                False,
                agent,
                None if mask is None else mask[index],
                continuous[index] if continuous.size else None,
                discrete[index] if discrete.size else None,
            )
            self._pending.setdefault(agent, []).append((record, reward, False))
        return completed

    # -- figures ---------------------------------------------------------------------------

    @property
    def number_episodes(self) -> int:
        """Episodes written so far: ended ones, plus an unfinished last one."""
        open_episode = self.number_steps > 0 and not self._last_done
        return self._done_records + int(open_episode)

    @property
    def mean_reward(self) -> float:
        """Sum of the rewards written over :attr:`number_episodes` (0 before any record)."""
        episodes = self.number_episodes
        return float(self._reward_sum / np.float32(episodes)) if episodes else 0.0

    # -- finishing -------------------------------------------------------------------------

    def close(self) -> DemoSummary:
        """Write the final header and move the file to ``path``; returns its figures.

        Raises :class:`UnityDemoException` (and removes the temporary file) when no record
        was written: loaders refuse empty recordings.
        """
        if self._file is None:
            raise UnityDemoException(f"The demonstration writer of {self.path} is already closed.")
        if self.number_steps == 0:
            self.abort()
            raise UnityDemoException(
                f"Nothing was written to {self.path}: no complete agent step (or, with "
                "add_steps, no complete episode) was recorded, and a .demo file needs at least "
                "one record. Record more steps before closing; the file was not created."
            )
        meta = self._meta(final=True)
        file = self._file
        try:
            file.seek(0, os.SEEK_END)
            file.write(meta)  # Unity's WriteMetadata writes it at the end first
            self._write_meta_at_start(meta)
            file.flush()
            os.fsync(file.fileno())
            file.close()
            self._file = None
            os.replace(self._temp, self.path)
        except BaseException:
            self.abort()
            raise
        return DemoSummary(self.path, self.number_steps, self.number_episodes, self.mean_reward)

    def abort(self) -> None:
        """Forget everything written: remove the temporary file; ``path`` is not touched."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._temp.unlink(missing_ok=True)

    def __enter__(self) -> DemoWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is not None:
            self.abort()
        elif self._file is not None:
            self.close()

    # -- private ---------------------------------------------------------------------------

    def _encode(
        self,
        observations: Sequence[np.ndarray],
        reward: float,
        done: bool,
        max_step_reached: bool,
        agent_id: int,
        action_mask: np.ndarray | None,
        continuous_action: np.ndarray | None,
        discrete_action: np.ndarray | None,
    ) -> bytes:
        if len(observations) != len(self._writers):
            raise UnityDemoException(
                f"{self.path}: a step has {len(observations)} observations but the behavior "
                f"spec has {len(self._writers)}; pass one array per observation spec."
            )
        pair = AgentInfoActionPairProto()
        info = pair.agent_info
        info.reward = reward
        info.done = done
        info.max_step_reached = max_step_reached
        info.id = agent_id
        for writer, obs in zip(self._writers, observations, strict=True):
            batch = np.asarray(obs)[None]
            if tuple(batch.shape[1:]) != tuple(writer.spec.shape):
                raise UnityDemoException(
                    f"{self.path}: observation {writer.spec.name!r} has shape "
                    f"{tuple(batch.shape[1:])} but the behavior spec says "
                    f"{tuple(writer.spec.shape)}; pass one agent's observation, not a batch."
                )
            if writer.template.compression_type != COMPRESSION_NONE:
                # PNG: float (C, H, W) in [0, 1] -> uint8 (H, W, C), as players render.
                batch = np.rint(np.clip(batch, 0.0, 1.0) * 255.0).astype(np.uint8)
                batch = np.moveaxis(batch, 1, -1)
            writer.fill(info.observations.add(), writer.values(batch)[0])
        if action_mask is not None and self._mask_width:
            mask = np.asarray(action_mask, bool).reshape(-1)
            self._check_size("action mask", mask, self._mask_width)
            info.action_mask.extend(mask.tolist())
        action = pair.action_info
        continuous = self._no_continuous if continuous_action is None else continuous_action
        discrete = self._no_discrete if discrete_action is None else discrete_action
        continuous = np.asarray(continuous, np.float32).reshape(-1)
        discrete = np.asarray(discrete, np.int32).reshape(-1)
        self._check_size("continuous action", continuous, len(self._no_continuous))
        self._check_size("discrete action", discrete, len(self._no_discrete))
        action.continuous_actions.extend(continuous.tolist())
        action.discrete_actions.extend(discrete.tolist())
        return _delimited(pair.SerializeToString())

    def _check_size(self, what: str, values: np.ndarray, size: int) -> None:
        if len(values) != size:
            raise UnityDemoException(
                f"{self.path}: a step's {what} has {len(values)} values but the behavior's "
                f"action spec ({self.behavior_spec.action_spec}) needs {size}."
            )

    def _write_record(self, record: bytes, reward: float, done: bool) -> None:
        if self._file is None:
            raise UnityDemoException(f"The demonstration writer of {self.path} is closed.")
        self._file.write(record)
        self.number_steps += 1
        self._reward_sum = np.float32(self._reward_sum + np.float32(reward))
        self._done_records += int(done)
        self._last_done = done

    def _meta(self, final: bool) -> bytes:
        meta = DemonstrationMetaProto(
            api_version=API_VERSION, demonstration_name=self.demonstration_name
        )
        if final:
            meta.number_steps = self.number_steps
            meta.number_episodes = self.number_episodes
            meta.mean_reward = self.mean_reward
        data = meta.SerializeToString()
        while len(_delimited(data)) > INITIAL_POS:  # huge counts: shorten the name to fit
            meta.demonstration_name = meta.demonstration_name[:-1]
            data = meta.SerializeToString()
        return data

    def _write_meta_at_start(self, meta: bytes) -> None:
        assert self._file is not None
        self._file.seek(0)
        self._file.write(_delimited(meta).ljust(INITIAL_POS, b"\0"))


def write_demonstration(
    path: str | os.PathLike[str],
    behavior_spec: BehaviorSpec,
    observations: Sequence[np.ndarray],
    rewards: np.ndarray,
    dones: np.ndarray,
    continuous_actions: np.ndarray | None = None,
    discrete_actions: np.ndarray | None = None,
    max_step_reached: np.ndarray | None = None,
    action_masks: np.ndarray | None = None,
    agent_ids: np.ndarray | None = None,
    behavior_name: str = "Behavior?team=0",
    demonstration_name: str | None = None,
    compress_visual: bool = True,
) -> DemoSummary:
    """Write a whole trajectory of arrays, one row per record, as a ``.demo`` file.

    The arrays mean what :class:`unity_gym.demo.Demonstration`'s do: ``observations`` one
    ``(N, *shape)`` array per spec, ``rewards``/``dones`` ``(N,)``, actions ``(N, c)`` and
    ``(N, d)`` (None: zeros), ``action_masks`` ``(N, sum(branches))`` True = not allowed.
    Rows of one agent's episode must be consecutive; row ``t``'s action is the one taken
    from row ``t``'s observations. See :func:`write_loaded` to write a loaded demonstration.
    """
    n = len(rewards)
    columns = {
        "dones": dones,
        "continuous_actions": continuous_actions,
        "discrete_actions": discrete_actions,
        "max_step_reached": max_step_reached,
        "action_masks": action_masks,
        "agent_ids": agent_ids,
    }
    columns.update({f"observations[{i}]": o for i, o in enumerate(observations)})
    for name, column in columns.items():
        if column is not None and len(column) != n:
            raise UnityDemoException(
                f"write_demonstration({str(path)!r}): {name} has {len(column)} rows but "
                f"rewards has {n}; every array needs one row per record."
            )
    with DemoWriter(path, behavior_spec, behavior_name, demonstration_name, compress_visual) as w:
        for t in range(n):
            w.add_step(
                [o[t] for o in observations],
                reward=float(rewards[t]),
                done=bool(dones[t]),
                max_step_reached=bool(max_step_reached[t])
                if max_step_reached is not None
                else False,
                agent_id=int(agent_ids[t]) if agent_ids is not None else 0,
                action_mask=None if action_masks is None else action_masks[t],
                continuous_action=None if continuous_actions is None else continuous_actions[t],
                discrete_action=None if discrete_actions is None else discrete_actions[t],
            )
        return w.close()


def write_loaded(
    path: str | os.PathLike[str], demo: Demonstration, compress_visual: bool = True
) -> DemoSummary:
    """Write a loaded :class:`~unity_gym.demo.Demonstration` (all its rows) to ``path``."""
    return write_demonstration(
        path,
        demo.behavior_spec,
        demo.observations,
        demo.rewards,
        demo.dones,
        demo.continuous_actions,
        demo.discrete_actions,
        demo.max_step_reached,
        demo.action_masks,
        demo.agent_ids,
        behavior_name=demo.behavior_name,
        demonstration_name=demo.files[0].demonstration_name if demo.files else None,
        compress_visual=compress_visual,
    )


def _observation_writer(spec: ObservationSpec, compress_visual: bool) -> ObservationWriter:
    """PNG for visual specs of 1 to 4 channels (what PNG holds) when asked, else floats."""
    from unity_gym.players.sensors import PngWriter, VectorWriter

    if compress_visual and spec.is_visual and 1 <= spec.shape[0] <= 4:
        return PngWriter(spec)
    return VectorWriter(spec)


def _delimited(data: bytes) -> bytes:
    """``data`` prefixed with its length as a protobuf varint (``WriteDelimitedTo``)."""
    length = len(data)
    prefix = bytearray()
    while length >= 0x80:
        prefix.append((length & 0x7F) | 0x80)
        length >>= 7
    prefix.append(length)
    return bytes(prefix) + data


def _fit_name(name: str) -> str:
    """Unity keeps at most 16 characters of a demonstration's name."""
    return name[:MAX_NAME_LENGTH]
