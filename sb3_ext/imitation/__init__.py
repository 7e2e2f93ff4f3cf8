"""Imitation from Unity ``.demo`` recordings for Stable-Baselines3.

- ``demonstrations``: :func:`load_expert_transitions` reads a ``.demo`` file or folder into
  :class:`ExpertTransitions` in a model's own observation and action spaces.
- ``behavioral_cloning``: :class:`BehavioralCloning` (ML-Agents' BC module for an SB3 policy),
  :class:`BehavioralCloningCallback` (during ``learn``) and :func:`pretrain` (before it).
- ``replay``: :func:`add_demonstrations` puts the expert's transitions into an SB3 replay
  buffer (SAC, DiscreteSAC start from them).

GAIL and VAIL are reward signals: :class:`sb3_ext.reward_signals.GAILSignal`.
"""

from sb3_ext.imitation.behavioral_cloning import (
    PRETRAINING_LOSS_STAT,
    BehavioralCloning,
    BehavioralCloningCallback,
    BehavioralCloningSettings,
    pretrain,
)
from sb3_ext.imitation.demonstrations import (
    ExpertTransitions,
    ObservationTransform,
    load_expert_transitions,
)
from sb3_ext.imitation.replay import add_demonstrations

__all__ = [
    "PRETRAINING_LOSS_STAT",
    "BehavioralCloning",
    "BehavioralCloningCallback",
    "BehavioralCloningSettings",
    "ExpertTransitions",
    "ObservationTransform",
    "add_demonstrations",
    "load_expert_transitions",
    "pretrain",
]
