"""Gymnasium ids for the built-in players and for any Unity build (``import unity_gym`` registers).

- ``gymnasium.make("unity_gym/Basic-v0")`` (and ``GridWorld-v0``): a
  :class:`~unity_gym.gym_env.UnityGymEnv`. Players with several agents (``3DBall-v0``, 12 per
  player) refuse ``make`` with an error pointing to ``make_vec``.
- ``gymnasium.make_vec("unity_gym/3DBall-v0", num_envs=N)``: a
  :class:`~unity_gym.gymnasium_vector_env.UnityVectorEnv` with ``num_envs`` *players*, so its
  own ``num_envs`` is N x the agents per player (24 for N=2 with 3DBall). Keyword arguments are
  ``UnityVectorEnv``'s (``seed``, ``base_port``, ...). Every env takes a free port of its own,
  so ``"sync"``/``"async"`` vectorization of single-agent ids works too.
- ``gymnasium.make("unity_gym/Unity-v0", file_name=PATH, ...)`` and ``make_vec`` likewise for
  any build.

Registering starts nothing. Without importing ``unity_gym`` first, prefix the module:
``gymnasium.make("unity_gym:unity_gym/Basic-v0")``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

import gymnasium

from unity_gym.exception import UnityEnvironmentException
from unity_gym.players import get_player, list_players

if TYPE_CHECKING:
    from unity_gym.gymnasium_vector_env import UnityVectorEnv

NAMESPACE = "unity_gym"
GENERIC_ID = f"{NAMESPACE}/Unity-v0"
_GYM_ENV = "unity_gym.gym_env:UnityGymEnv"
_VECTOR_ENV = "unity_gym.registration:make_vector_env"
_MULTI_AGENT = "unity_gym.registration:refuse_multi_agent"


def builtin_id(player: str) -> str:
    """The Gymnasium id of a built-in player, e.g. ``unity_gym/3DBall-v0``."""
    return f"{NAMESPACE}/{player}-v0"


def make_vector_env(num_envs: int = 1, **kwargs: Any) -> UnityVectorEnv:
    """``make_vec``'s entry point: ``num_envs`` players (each with all its agents)."""
    from unity_gym.gymnasium_vector_env import UnityVectorEnv

    return UnityVectorEnv(n_envs=num_envs, **kwargs)


def refuse_multi_agent(file_name: str, **kwargs: Any) -> NoReturn:
    """``make``'s entry point for built-ins with several agents: a helpful error, no player."""
    from unity_gym.gym_env import multi_agent_error

    player = get_player(file_name.removeprefix("builtin:"))
    if len(player.behaviors) > 1:
        names = ", ".join(b.name for b in player.behaviors)
        raise UnityEnvironmentException(
            f"{player.name} has {len(player.behaviors)} behaviors ({names}); a Gymnasium env "
            "drives one agent. Use the PettingZoo adapters for all of them "
            f'(unity_gym.pettingzoo_env.UnityParallelEnv("{file_name}")), or one behavior\'s '
            f'agents with UnityVecEnv("{file_name}", behavior_name=...).'
        )
    behavior = player.behaviors[0]
    raise multi_agent_error(behavior.name, behavior.agents_per_area, builtin_id(player.name))


def register_envs() -> None:
    """Register every built-in player and ``unity_gym/Unity-v0``; repeated calls do nothing."""
    for player in list_players():
        env_id = builtin_id(player.name)
        if env_id in gymnasium.registry:
            continue
        single = len(player.behaviors) == 1 and player.behaviors[0].agents_per_area == 1
        gymnasium.register(
            env_id,
            entry_point=_GYM_ENV if single else _MULTI_AGENT,
            vector_entry_point=_VECTOR_ENV,
            kwargs={"file_name": f"builtin:{player.name}"},
        )
    if GENERIC_ID not in gymnasium.registry:
        # Unity physics is not guaranteed to replay identically from a seed.
        gymnasium.register(
            GENERIC_ID,
            entry_point=_GYM_ENV,
            vector_entry_point=_VECTOR_ENV,
            nondeterministic=True,
        )


__all__ = ["GENERIC_ID", "builtin_id", "make_vector_env", "refuse_multi_agent", "register_envs"]
