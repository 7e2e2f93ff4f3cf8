"""Self-play with ELO for Stable-Baselines3: ML-Agents' ghost training.

- ``team_vec_env``: :class:`TeamVecEnv`, an SB3 ``VecEnv`` over the teams of one model in a
  :class:`TeamGame`: the learning team's agents learn, the others play frozen snapshots.
- ``callback``: :class:`SelfPlayCallback` saves snapshots, rotates the learning team and logs
  ``Self-play/ELO``.
- ``league``: :class:`SelfPlaySettings` (ML-Agents' ``self_play`` keys), :class:`Ghost` (one
  model's snapshot ring, ratings and counters), :class:`SelfPlayController` (the learning-team
  rotation shared by every model of a game).
- ``snapshots``: :class:`PolicySnapshot` and :class:`FrozenPolicy`, the opponents.
- ``elo``: ML-Agents' ELO arithmetic.
- ``parallel_env_teams``: :class:`ParallelEnvTeams`, any PettingZoo ``ParallelEnv`` as a
  :class:`TeamGame`; ``lockstep_teams``: :class:`LockstepTeams`, a Unity scene's
  ``Name?team=N`` behaviors (several players, other models in other threads) as one.
"""

from sb3_ext.self_play.callback import ELO_STAT, SelfPlayCallback
from sb3_ext.self_play.elo import MLAGENTS_K_FACTOR, expected_score, game_result, rating_change
from sb3_ext.self_play.league import LATEST, Ghost, SelfPlayController, SelfPlaySettings
from sb3_ext.self_play.lockstep_teams import LockstepTeams
from sb3_ext.self_play.parallel_env_teams import ParallelEnvTeams
from sb3_ext.self_play.snapshots import FrozenPolicy, PolicySnapshot
from sb3_ext.self_play.team_vec_env import TeamBatch, TeamGame, TeamVecEnv

__all__ = [
    "ELO_STAT",
    "LATEST",
    "MLAGENTS_K_FACTOR",
    "FrozenPolicy",
    "Ghost",
    "LockstepTeams",
    "ParallelEnvTeams",
    "PolicySnapshot",
    "SelfPlayCallback",
    "SelfPlayController",
    "SelfPlaySettings",
    "TeamBatch",
    "TeamGame",
    "TeamVecEnv",
    "expected_score",
    "game_result",
    "rating_change",
]
