"""SB3 algorithms ML-Agents has and Stable-Baselines3 lacks.

- ``discrete_sac``: :class:`DiscreteSAC`, SAC for ``Discrete`` / ``MultiDiscrete`` actions
  with action masks, following ML-Agents' formulation (``discrete_sac_policy``: its networks;
  ``discrete_sac_losses``: its loss math; ``masked_replay_buffer``: buffers keeping masks).
"""

from sb3_ext.algorithms.discrete_sac import DiscreteSAC
from sb3_ext.algorithms.discrete_sac_policy import (
    CnnPolicy,
    DiscreteSACPolicy,
    MlpPolicy,
    MultiInputPolicy,
)
from sb3_ext.algorithms.masked_replay_buffer import MaskedDictReplayBuffer, MaskedReplayBuffer

__all__ = [
    "CnnPolicy",
    "DiscreteSAC",
    "DiscreteSACPolicy",
    "MaskedDictReplayBuffer",
    "MaskedReplayBuffer",
    "MlpPolicy",
    "MultiInputPolicy",
]
