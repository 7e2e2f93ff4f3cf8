"""One game shared by the tasks of a player whose behaviors play together in every area.

The academy builds one task per behavior and gives its tasks nothing in common but the player's
environment parameters object. A game with several behaviors (Tennis' two teams, the striker
and goalie of StrikersVsGoalie) therefore makes each task a thin per-team view of one
:class:`SharedGame`, which the first view creates and the others join (:meth:`SharedGame.join`,
found by that parameters object). Two rules keep the views in lock-step whatever order the
academy calls them in:

- in each academy step the first view to act advances what the teams share (the ball) and
  settles outcomes, then every view moves its own agents (:meth:`SharedGame.starts_step`), so
  all teams' actions take effect in the same step and all see the same outcome;
- an area restarts only once every team has begun its new episode there
  (:meth:`SharedGame.begin_episode`), so the last team's final observation still shows the
  area as the episode ended.
"""

from __future__ import annotations

import weakref
from abc import ABC, abstractmethod
from typing import ClassVar, TypeVar

import numpy as np

from unity_gym.players.task import TaskContext

GameT = TypeVar("GameT", bound="SharedGame")


class SharedGame(ABC):
    """Every area's state of one multi-behavior game, shared by its per-team task views.

    Subclasses keep their state in arrays indexed by area (a view's agent index is its area
    when each team has one agent per area) and implement :meth:`restart`.
    """

    num_teams: ClassVar[int] = 2

    # One game per player and game type, by the id of the parameters object the academy gives
    # all its tasks (a game holds its context, so that id stays taken while the entry lives).
    _games: ClassVar[weakref.WeakValueDictionary[tuple[type[SharedGame], int], SharedGame]] = (
        weakref.WeakValueDictionary()
    )

    def __init__(self, num_areas: int, context: TaskContext) -> None:
        self.num_areas = num_areas
        self.context = context
        self.members: set[int] = set()  # teams whose view joined
        self._acted: set[int] = set()  # teams that acted in the current academy step
        self._restarting = np.zeros((self.num_teams, num_areas), dtype=bool)

    @classmethod
    def join(cls: type[GameT], team: int, num_areas: int, context: TaskContext) -> GameT:
        """The game of the player ``context`` belongs to, created by its first team view.

        A team joining twice means the academy initialized again: that gets a new game.
        """
        key = (cls, id(context.parameters))
        game = SharedGame._games.get(key)
        if not isinstance(game, cls) or team in game.members or game.num_areas != num_areas:
            game = cls(num_areas, context)
            SharedGame._games[key] = game
        game.members.add(team)
        return game

    def starts_step(self, team: int) -> bool:
        """Record that ``team`` acts; True when it is the first to act in this academy step."""
        first = not self._acted or team in self._acted
        if first:
            self._acted.clear()
        self._acted.add(team)
        return first

    def begin_episode(self, team: int, areas: np.ndarray) -> None:
        """``team`` starts new episodes in ``areas``; each restarts once every team has."""
        self._restarting[team, areas] = True
        ready = areas[self._restarting[:, areas].all(axis=0)]
        if len(ready):
            self._restarting[:, ready] = False
            self.restart(ready)

    @abstractmethod
    def restart(self, areas: np.ndarray) -> None:
        """Set up a new episode in ``areas`` (drawing from ``self.context.rng``)."""
