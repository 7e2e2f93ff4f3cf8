"""ML-Agents' self-play bookkeeping: settings, one :class:`Ghost` per learner, one controller.

- :class:`SelfPlaySettings` are ML-Agents' ``self_play`` keys with its defaults.
- A :class:`Ghost` (ML-Agents' ``GhostTrainer`` without the trainer) belongs to one learning
  model and the teams it plays: a ring of ``window`` policy snapshots with their ELO ratings
  (index -1 is the learning policy itself), the snapshot its non-learning teams currently play
  (drawn at every swap: the latest weights with probability
  ``play_against_latest_model_ratio``, else a uniformly random snapshot), and the step counters
  that time snapshots (``save_steps``, learner steps), swaps (``swap_steps``, steps of the
  agents the snapshot plays: ML-Agents' *ghost steps*) and team changes (``team_change``,
  learner steps).
- The :class:`SelfPlayController` (ML-Agents' ``GhostController``, one per game) holds the
  learning-team rotation shared by every ghost: the first team subscribed learns first; a
  change moves it to the back of the queue, the next one learns, and the game restarts (a
  full reset). It also answers whose snapshot the learning team plays, for ELO updates.

All of it is plain Python and numpy, safe to use from several learner threads (the controller
serialises changes), and saves to a ``state_dict`` of tensors and numbers.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sb3_ext.self_play.elo import MLAGENTS_K_FACTOR, rating_change
from sb3_ext.self_play.snapshots import PolicySnapshot

LATEST = -1  # the opponent index meaning "the learning policy's weights at swap time"


@dataclass(frozen=True)
class SelfPlaySettings:
    """ML-Agents' ``self_play`` section (defaults as in its code; ``team_change`` defaults to
    5 x ``save_steps``). ``k_factor`` is not an ML-Agents key: its code moves ratings by
    ``result - expected`` (K = 1) while its documentation shows K = 16."""

    save_steps: int = 20000
    team_change: int | None = None
    swap_steps: int = 2000
    window: int = 10
    play_against_latest_model_ratio: float = 0.5
    initial_elo: float = 1200.0
    k_factor: float = MLAGENTS_K_FACTOR

    def __post_init__(self) -> None:
        for key in ("save_steps", "swap_steps", "window"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"self_play.{key} is {value!r}; it must be a whole number of at least 1 "
                    f"({'snapshots kept' if key == 'window' else 'steps'})."
                )
        if self.team_change is not None and (
            isinstance(self.team_change, bool)
            or not isinstance(self.team_change, int)
            or self.team_change < 1
        ):
            raise ValueError(
                f"self_play.team_change is {self.team_change!r}; it must be a whole number of "
                "learner steps, at least 1 (or leave it out for 5 x save_steps)."
            )
        ratio = self.play_against_latest_model_ratio
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(
                f"self_play.play_against_latest_model_ratio is {ratio!r}; it is a probability: "
                "use a value from 0 (always a past snapshot) to 1 (always the latest weights)."
            )
        if self.k_factor <= 0:
            raise ValueError(f"self_play k_factor is {self.k_factor!r}; it must be above 0.")

    @property
    def team_change_steps(self) -> int:
        return self.team_change if self.team_change is not None else 5 * self.save_steps


@dataclass
class Ghost:
    """The snapshots, ratings and counters of one learning model (see the module docstring).

    :param name: the learner's name (for messages).
    :param teams: the teams this model plays, in rotation order.
    :param settings: the ``self_play`` settings.
    :param seed: seeds the opponent draws.
    """

    name: str
    teams: Sequence[str]
    settings: SelfPlaySettings
    seed: int | None = None
    snapshots: list[PolicySnapshot] = field(default_factory=list)
    # elos[i]: snapshot i's rating; elos[LATEST]: the learning policy's.
    elos: list[float] = field(init=False)
    current_opponent: int = LATEST
    snapshot_counter: int = 0
    ghost_steps: int = 0
    last_swap: int = 0
    last_save: int = 0
    last_team_change: int = 0

    def __post_init__(self) -> None:
        self.elos = [self.settings.initial_elo] * (self.settings.window + 1)
        self._rng = np.random.default_rng(self.seed)

    @property
    def current_elo(self) -> float:
        return self.elos[LATEST]

    def save_snapshot(self, snapshot: PolicySnapshot, learner_steps: int) -> None:
        """Store ``snapshot`` (rated at the current ELO) in the ring, replacing the oldest."""
        if len(self.snapshots) < self.settings.window:
            self.snapshots.append(snapshot)
        else:
            self.snapshots[self.snapshot_counter] = snapshot
        self.elos[self.snapshot_counter] = self.current_elo
        self.snapshot_counter = (self.snapshot_counter + 1) % self.settings.window
        self.last_save = learner_steps

    def snapshot_due(self, learner_steps: int) -> bool:
        return learner_steps - self.last_save > self.settings.save_steps

    def team_change_due(self, learner_steps: int) -> bool:
        return learner_steps - self.last_team_change > self.settings.team_change_steps

    def count_ghost_steps(self, steps: int) -> bool:
        """Add steps of the agents a snapshot plays; True when a swap is due."""
        self.ghost_steps += steps
        return self.ghost_steps - self.last_swap > self.settings.swap_steps

    def draw_opponent(self) -> int:
        """ML-Agents' swap: the latest weights with probability
        ``play_against_latest_model_ratio``, else a uniformly random stored snapshot."""
        self.last_swap = self.ghost_steps
        latest = self._rng.random() < self.settings.play_against_latest_model_ratio
        if latest or not self.snapshots:
            self.current_opponent = LATEST
        else:
            self.current_opponent = int(self._rng.integers(len(self.snapshots)))
        return self.current_opponent

    def state_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "teams": list(self.teams),
            "snapshots": [s.state_dict() for s in self.snapshots],
            "elos": list(self.elos),
            "current_opponent": self.current_opponent,
            "snapshot_counter": self.snapshot_counter,
            "ghost_steps": self.ghost_steps,
            "last_swap": self.last_swap,
            "last_save": self.last_save,
            "last_team_change": self.last_team_change,
            "rng": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue a saved league. A different ``window`` keeps the newest snapshots that fit."""
        window = self.settings.window
        snapshots = [PolicySnapshot.from_state_dict(s) for s in state["snapshots"]]
        elos = [float(e) for e in state["elos"]]
        counter = int(state["snapshot_counter"])
        if len(elos) != window + 1:  # re-lay the ring oldest first, keep the newest `window`
            order = [(counter + i) % len(snapshots) for i in range(len(snapshots))]
            kept = order[-window:]
            snapshots = [snapshots[i] for i in kept]
            elos = [elos[i] for i in kept] + [self.settings.initial_elo] * (window - len(kept))
            elos.append(float(state["elos"][LATEST]))
            counter = len(snapshots) % window
        self.snapshots, self.elos, self.snapshot_counter = snapshots, elos, counter
        opponent = int(state["current_opponent"])
        self.current_opponent = opponent if opponent < len(snapshots) else LATEST
        for key in ("ghost_steps", "last_swap", "last_save", "last_team_change"):
            setattr(self, key, int(state[key]))
        if "rng" in state:
            self._rng.bit_generator.state = state["rng"]


class SelfPlayController:
    """The learning-team rotation and ELO exchange shared by every ghost of one game.

    :param restart: called once per team change (outside the lock): a full reset of the game.
    """

    def __init__(self, restart: Callable[[], None] | None = None) -> None:
        self.lock = threading.RLock()
        self._restarts: list[Callable[[], None]] = [restart] if restart is not None else []
        self._queue: deque[str] = deque()
        self._ghosts: dict[str, Ghost] = {}
        self._learning: str | None = None
        self._finished: set[str] = set()
        self.changes = 0  # team changes so far

    def subscribe(self, ghost: Ghost) -> None:
        """Add ``ghost``'s teams to the rotation (the first team subscribed learns first)."""
        with self.lock:
            for team in ghost.teams:
                if team in self._ghosts:
                    owner = self._ghosts[team].name
                    raise ValueError(f"Team {team!r} is already played by {owner}.")
                self._ghosts[team] = ghost
                if self._learning is None:
                    self._learning = team
                else:
                    self._queue.append(team)

    def add_restart(self, restart: Callable[[], None]) -> None:
        with self.lock:
            if restart not in self._restarts:
                self._restarts.append(restart)

    @property
    def learning_team(self) -> str | None:
        return self._learning

    @property
    def teams(self) -> list[str]:
        return list(self._ghosts)

    def ghost_of(self, team: str) -> Ghost:
        return self._ghosts[team]

    def opponent_ghost(self, team: str) -> Ghost:
        """The ghost whose snapshot plays against ``team`` (ML-Agents: the last other team)."""
        with self.lock:
            others = [t for t in self._ghosts if t != team]
            if not others:
                raise ValueError(
                    f"Self-play needs at least two teams; only {team!r} is in the game."
                )
            return self._ghosts[others[-1]]

    def change_learning_team(self) -> str | None:
        """Rotate: the learning team goes to the back, the next unfinished one learns; restart."""
        with self.lock:
            if self._learning is not None:
                self._queue.append(self._learning)
            self._learning = None
            for _ in range(len(self._queue)):
                team = self._queue.popleft()
                if team in self._finished:
                    self._queue.append(team)
                    continue
                self._learning = team
                break
            self.changes += 1
            restarts = list(self._restarts)
        for restart in restarts:
            restart()
        return self._learning

    def finish(self, ghost: Ghost) -> None:
        """``ghost``'s learner is done: its teams leave the rotation (they keep playing as
        opponents); when one of them was learning and another model still trains, that
        model's next team learns."""
        with self.lock:
            self._finished.update(ghost.teams)
            hand_over = self._learning in ghost.teams and any(
                team not in self._finished for team in self._ghosts
            )
        if hand_over:
            self.change_learning_team()

    def unfinish(self, ghost: Ghost) -> None:
        """``ghost``'s learner trains again (another ``learn`` call): its teams rejoin."""
        with self.lock:
            self._finished.difference_update(ghost.teams)

    def record_game(self, team: str, result: float) -> float:
        """A game of learning ``team`` ended with ``result``: move its ghost's ELO and the
        opponent snapshot's the other way. Returns the learner's new rating."""
        with self.lock:
            mine, theirs = self._ghosts[team], self.opponent_ghost(team)
            opponent = theirs.current_opponent
            delta = rating_change(
                mine.current_elo, theirs.elos[opponent], result, mine.settings.k_factor
            )
            mine.elos[LATEST] += delta
            theirs.elos[opponent] -= delta
            return mine.current_elo

    def state_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "learning": self._learning,
                "queue": list(self._queue),
                "changes": self.changes,
            }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue a saved rotation (teams no longer in the game are dropped)."""
        with self.lock:
            order = [t for t in [state.get("learning"), *state.get("queue", [])] if t]
            known = [t for t in order if t in self._ghosts]
            rest = [t for t in self._ghosts if t not in known]
            sequence = known + rest
            if sequence:
                self._learning = sequence[0]
                self._queue = deque(sequence[1:])
            self.changes = int(state.get("changes", 0))
