"""Built-in stand-in players: Python programs that play the Unity side of ML-Agents.

Each runs as its own process, like a Unity player build, and speaks the same gRPC protocol
(communication API 1.5.0), so the whole stack can be trained and tested without Unity::

    python -m unity_gym.players 3DBall --mlagents-port 5005 -logFile player.log

Besides Unity's flags they take ``--decision-period N``, ``--max-step N`` (0: no limit),
``--mlagents-host HOST`` and ``--connect-timeout SECONDS`` (see :mod:`.options`). Academy
steps run as fast as possible until Python sets a time scale on the engine configuration
channel; then each takes at least ``0.02 / time_scale`` seconds (see :mod:`.academy`).

Modules: :mod:`.protocol` (the gRPC loop), :mod:`.academy` (Unity's agent life cycle),
:mod:`.task` (what an environment implements), :mod:`.channels` and :mod:`.sensors`
(side channels, observation protos), :mod:`.model_policy` (running an exported model in the
player, Unity's inference mode), one module per environment (:mod:`.shared_game` lets the
behaviors of one game share it), and :mod:`.run` (the process entry). This module
is the registry: :func:`list_players` and :func:`get_player` describe each player and its
behaviors' specs without starting anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from unity_gym.base_env import BehaviorSpec
from unity_gym.players.ball3d import Ball3DTask
from unity_gym.players.basic import BasicTask
from unity_gym.players.gridworld import GridWorldTask
from unity_gym.players.pyramids import PyramidsTask
from unity_gym.players.strikers_vs_goalie import GoalieTask, StrikerTask
from unity_gym.players.task import EnvironmentParameterInfo, Task
from unity_gym.players.tennis import TennisTeam0, TennisTeam1
from unity_gym.players.wall_jump import BigWallJumpTask, SmallWallJumpTask


@dataclass(frozen=True)
class BehaviorInfo:
    """One behavior of a player, with its defaults (flags can override the last two)."""

    name: str  # fully qualified, as Unity sends it: "3DBall?team=0"
    spec: BehaviorSpec
    agents_per_area: int
    decision_period: int
    max_step: int


@dataclass(frozen=True)
class PlayerInfo:
    """A built-in player: its name, what it simulates, and the tasks behind its behaviors
    (and through them, the environment parameters it reads)."""

    name: str
    description: str
    tasks: tuple[type[Task], ...]

    @property
    def behaviors(self) -> tuple[BehaviorInfo, ...]:
        return tuple(
            BehaviorInfo(
                t.behavior_name, t.behavior_spec, t.agents_per_area, t.decision_period, t.max_step
            )
            for t in self.tasks
        )

    @property
    def behavior_specs(self) -> dict[str, BehaviorSpec]:
        return {t.behavior_name: t.behavior_spec for t in self.tasks}

    @property
    def environment_parameters(self) -> tuple[EnvironmentParameterInfo, ...]:
        """The environment parameters its tasks read, each once (the first task's entry)."""
        found: dict[str, EnvironmentParameterInfo] = {}
        for task in self.tasks:
            for parameter in task.environment_parameters:
                found.setdefault(parameter.name, parameter)
        return tuple(found.values())


class UnknownPlayerError(KeyError):
    """No built-in player has the requested name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.valid = [p.name for p in _PLAYERS]
        super().__init__(name)

    def __str__(self) -> str:
        return f"no built-in player named {self.name!r}; valid names: {', '.join(self.valid)}"


_PLAYERS = (
    PlayerInfo(
        "Basic",
        "Walk a 20-cell line to the small (+0.1) or large (+1) goal; one-hot position, "
        "3 discrete actions.",
        (BasicTask,),
    ),
    PlayerInfo(
        "3DBall",
        "Tilt a platform to balance a ball; 12 agents per area, 8 floats, 2 continuous actions.",
        (Ball3DTask,),
    ),
    PlayerInfo(
        "GridWorld",
        "Reach the green cell, avoid the red one; 84x64 RGB camera (PNG), 5 masked discrete "
        "actions.",
        (GridWorldTask,),
    ),
    PlayerInfo(
        "Tennis",
        "1v1 side-view tennis for self-play: behaviors Tennis?team=0 and Tennis?team=1, one "
        "agent each per area, 12 mirrored floats, 2 continuous actions, +1/-1 per point.",
        (TennisTeam0, TennisTeam1),
    ),
    PlayerInfo(
        "Pyramids",
        "In 3x3 rooms, press the switch, then reach the gold brick of the pyramid it raises; "
        "sparse +2, 3 ray sensors of 56 floats + 4 floats, 5 discrete actions.",
        (PyramidsTask,),
    ),
    PlayerInfo(
        "StrikersVsGoalie",
        "Asymmetric 1v1 top-view soccer for self-play: behaviors Striker?team=0 (14 floats, "
        "discrete (3, 3, 3)) and Goalie?team=1 (10 floats, discrete (3, 3)), one agent each "
        "per area, +1/-1 per goal or save, existential -/+1/1000 per step.",
        (StrikerTask, GoalieTask),
    ),
    PlayerInfo(
        "WallJump",
        "Get over a wall to the goal, pushing the block against a wall too high to jump: "
        "behaviors BigWallJump?team=0 and SmallWallJump?team=0, one agent each per area, "
        "2 stacked ray sensors of 210 floats + 24 floats, discrete (3, 3, 3, 2).",
        (BigWallJumpTask, SmallWallJumpTask),
    ),
)


def list_players() -> list[PlayerInfo]:
    """Every built-in player, in a stable order."""
    return list(_PLAYERS)


def get_player(name: str) -> PlayerInfo:
    """The player called ``name`` (exact, else case-insensitive match).

    Raises :class:`UnknownPlayerError` (a KeyError) listing the valid names.
    """
    for player in _PLAYERS:
        if player.name == name:
            return player
    for player in _PLAYERS:
        if player.name.lower() == name.lower():
            return player
    raise UnknownPlayerError(name)


__all__ = [
    "BehaviorInfo",
    "EnvironmentParameterInfo",
    "PlayerInfo",
    "UnknownPlayerError",
    "get_player",
    "list_players",
]
