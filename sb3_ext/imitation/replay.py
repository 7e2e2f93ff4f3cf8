"""Expert transitions into an SB3 replay buffer, so SAC (or DiscreteSAC) starts from them.

ML-Agents has no such option; for an off-policy learner it is the cheapest use of a
recording. Each row becomes one ``add`` of ``(s, s', a, r, done)`` with SB3's timeout flag
(``TimeLimit.truncated``) where the recorded episode hit its step limit, and, for
:class:`~sb3_ext.algorithms.MaskedReplayBuffer`, the action masks the action was chosen under.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer

from sb3_ext.algorithms.masked_replay_buffer import MaskedDictReplayBuffer, MaskedReplayBuffer
from sb3_ext.imitation.demonstrations import ExpertTransitions
from sb3_ext.reward_signals.base import ObsArray


def _rows(observations: ObsArray, index: np.ndarray) -> ObsArray:
    if isinstance(observations, Mapping):
        return {key: np.asarray(value[index]) for key, value in observations.items()}
    return np.asarray(observations[index])


def add_demonstrations(buffer: ReplayBuffer, expert: ExpertTransitions) -> int:
    """Add the expert's transitions to ``buffer``; the number of rows added.

    Rows are added ``buffer.n_envs`` at a time (one per environment slot); a last group
    smaller than that is left out. Needs transitions read from a ``.demo`` file
    (:func:`~sb3_ext.imitation.load_expert_transitions`), which carry ``s'`` and rewards.
    """
    if expert.next_observations is None or expert.rewards is None:
        raise ValueError(
            "These expert transitions have no next observations or rewards; read them with "
            "load_expert_transitions(demo_path, ...) to fill a replay buffer."
        )
    n_envs = buffer.n_envs
    added = 0
    for start in range(0, len(expert) - n_envs + 1, n_envs):
        index = np.arange(start, start + n_envs)
        truncated = (
            expert.truncated[index] if expert.truncated is not None else np.zeros(n_envs, bool)
        )
        if isinstance(buffer, MaskedReplayBuffer | MaskedDictReplayBuffer):
            masks = expert.action_masks
            buffer.set_next_action_masks(None if masks is None else masks[index])
        buffer.add(
            _rows(expert.observations, index),  # type: ignore[arg-type]
            _rows(expert.next_observations, index),  # type: ignore[arg-type]
            expert.actions[index].reshape(n_envs, -1),
            expert.rewards[index],
            expert.dones[index],
            [{"TimeLimit.truncated": bool(t)} for t in truncated],
        )
        added += n_envs
    return added
