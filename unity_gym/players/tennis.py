"""Tennis: a 1v1 side-view ball game for self-play, two behaviors sharing one game per area.

Modelled on ML-Agents' Tennis. The court is the x axis from -8 to 8 with a net of height 1 at
x = 0; team 0 plays on the x < 0 side, team 1 on x > 0. Each area has one agent per team, so
the player has two behaviors, ``Tennis?team=0`` and ``Tennis?team=1`` (ML-Agents puts the team
in the behavior name), one agent each per area.

Observations are 12 floats, each agent seeing the court from its own side: positions and
velocities along the court are multiplied by -1 for team 1, so its own half is x < 0 too and
one policy can play both teams. In that frame: the agent's (x, y, vx, vy), the ball's (x, y,
vx, vy) and the opponent's (x, y, vx, vy); y is height above the ground.

Actions: two continuous values in [-1, 1]. The first runs toward the net (positive) or away
from it at up to 6 units/s; the agent cannot cross to within 0.3 of the net nor go more than 2
behind its baseline. The second jumps when above 0.5 and the agent is on the ground.

Rules, in the side view, with gravity 9.81 on ball and agents. A point begins with the ball
dropped from height 4 above a random spot of a random team's half. An agent hits the ball when
it is on the agent's side, within 0.8 of its racket (1 above its feet) and the agent was not
the last to hit it; the ball flies back toward the other side at about 6 units/s forward and
7 up (flatter and longer when struck ahead of the racket, longer when the agent runs forward).
The team on whose side the ball lands loses the point; a ball that lands out (|x| > 8) or hits
the net loses it for the team that sent it there (for a dropped serve nobody hit: the side it
fell on). The winner gets +1, the loser -1 (zero-sum, no other rewards), and the point ends the
episode of both agents at the same academy step. So a scripted agent that keeps its racket
under the ball (:func:`tracking_policy`) beats a random one most of the time.

Decision period 5 (one decision per 0.1 s of game time, as 3DBall) and at most 2000 academy
steps (40 s) per episode, after which both agents are interrupted (truncated).

How two behaviors share one game: the academy builds one task per behavior. Here both tasks are
thin views (:class:`TennisTeam0`, :class:`TennisTeam1`) of one :class:`TennisGame` per player,
a :class:`~unity_gym.players.shared_game.SharedGame` which the first view creates and the second
joins (found through the player's environment parameters object, the one thing the academy
gives every task of a player). Each academy step the academy calls every task's ``act``: the
first call of the step advances the ball and settles points with the rackets where they are,
then each view moves its own agents, so the order of the views does not matter and both teams'
actions take effect in the same step. Both views report the same point areas as ended. An area
restarts only once every team has begun its new episode there, so the second team's final
observation still shows the point as it ended.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from unity_gym.base_env import (
    ActionSpec,
    BehaviorSpec,
    DimensionProperty,
    ObservationSpec,
    ObservationType,
)
from unity_gym.players.shared_game import SharedGame
from unity_gym.players.task import FIXED_DELTA_TIME, Task, TaskContext
from unity_gym.side_channel.stats_side_channel import StatsAggregationMethod

BEHAVIOR_BASE_NAME = "Tennis"
NUM_TEAMS = 2
COURT_HALF_LENGTH = 8.0  # the ball is in when it lands with |x| <= this
NET_HEIGHT = 1.0
GRAVITY = 9.81
RUN_SPEED = 6.0  # units per second at action 1
JUMP_SPEED = 5.0
JUMP_THRESHOLD = 0.5
NEAREST_TO_NET = 0.3  # an agent's own-frame x stays in [-FARTHEST_BACK, -NEAREST_TO_NET]
FARTHEST_BACK = COURT_HALF_LENGTH + 2.0
RACKET_HEIGHT = 1.0  # racket centre above the agent's feet
HIT_RADIUS = 0.8
HIT_SPEED_X, HIT_SPEED_Y = 6.0, 7.0
HIT_ANGLE = 1.5  # a ball struck ahead of the racket leaves this much faster forward, slower up
RUN_CARRY = 0.3  # share of the agent's forward speed added to the ball
SERVE_HEIGHT = 4.0
SERVE_SPREAD = (2.0, 6.0)  # serve drops at own-frame x in -(this range)
START_X = -4.0  # own-frame x of both agents when a point begins
WIN_REWARD, LOSS_REWARD = 1.0, -1.0
NOBODY = -1
# Own frame = world x times SIDE[team]: each team's half is x < 0 in its own frame.
SIDE = np.array([1.0, -1.0])
OBSERVATION_SIZE = 12
# Per team: the state columns of its observation (own agent, ball, opponent) and their signs.
_VIEW = (
    (np.arange(12), np.ones(12)),
    (np.r_[8:12, 4:8, 0:4], np.tile([-1.0, 1.0, -1.0, 1.0], 3)),
)


TEAM_SPEC = BehaviorSpec(  # both teams' behaviors
    observation_specs=[
        ObservationSpec(
            shape=(OBSERVATION_SIZE,),
            dimension_property=(DimensionProperty.NONE,),
            observation_type=ObservationType.DEFAULT,
            name=f"VectorSensor_size{OBSERVATION_SIZE}",
        )
    ],
    action_spec=ActionSpec.create_continuous(2),
)


class TennisGame(SharedGame):
    """Every area's rally in world coordinates, shared by both team views.

    The state is one float64 array ``(areas, 12)`` whose columns are, in the world frame, team
    0's agent (x, y, vx, vy), the ball (x, y, vx, vy) and team 1's agent (x, y, vx, vy): a
    team's observation is a reordering of these columns with x and vx negated for team 1. The
    attributes below are views into it: ``agent_*`` are ``(2, areas)`` by team, ``ball_*``
    ``(areas,)``. ``last_hitter`` is the team that hit the ball last (``NOBODY`` before the
    first hit of a point). Rows are areas: an agent's index in its behavior is its area.
    """

    num_teams = NUM_TEAMS

    def __init__(self, num_areas: int, context: TaskContext) -> None:
        super().__init__(num_areas, context)
        self.state = state = np.zeros((num_areas, OBSERVATION_SIZE))
        self.agent_x, self.agent_y = state[:, 0::8].T, state[:, 1::8].T
        self.agent_vx, self.agent_vy = state[:, 2::8].T, state[:, 3::8].T
        self.ball_x, self.ball_y, self.ball_vx, self.ball_vy = (state[:, i] for i in range(4, 8))
        self.last_hitter = np.full(num_areas, NOBODY, dtype=np.int64)
        self.hits = np.zeros(num_areas, dtype=np.int64)
        # Outcome of the current academy step: which areas' point ended, and who lost it.
        self.point = np.zeros(num_areas, dtype=bool)
        self.loser = np.full(num_areas, NOBODY, dtype=np.int64)
        self._no_point = np.zeros(num_areas, dtype=bool)
        # Each team's current action, converted when it changes (only at decisions).
        self._action_keys = [b""] * NUM_TEAMS
        self._run = np.zeros((NUM_TEAMS, num_areas))  # world x change per academy step
        self._jump = np.zeros((NUM_TEAMS, num_areas), dtype=bool)
        self.restart(np.arange(num_areas))

    # -- episode life cycle -------------------------------------------------------------

    def restart(self, areas: np.ndarray) -> None:
        """A new point in ``areas``: agents at their start, the ball dropped on a random side."""
        k = len(areas)
        rng = self.context.rng
        self.state[areas] = 0.0
        self.agent_x[:, areas] = START_X * SIDE[:, None]
        server = rng.integers(0, NUM_TEAMS, k)
        self.ball_x[areas] = -rng.uniform(*SERVE_SPREAD, k) * SIDE[server]
        self.ball_y[areas] = SERVE_HEIGHT
        self.last_hitter[areas] = NOBODY
        self.hits[areas] = 0

    # -- one academy step ---------------------------------------------------------------

    def act(self, team: int, actions: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        """``team``'s share of an academy step; returns the areas whose point just ended.

        The first team to act in a step advances the ball (see the module docstring).
        """
        if self.starts_step(team):
            self._advance_ball()
        self._move(team, actions)
        point = self.point
        if not np.count_nonzero(point):
            return self._no_point
        rewards[point] = np.where(self.loser[point] == team, LOSS_REWARD, WIN_REWARD)
        return point.copy()

    def _move(self, team: int, actions: np.ndarray) -> None:
        dt, side = FIXED_DELTA_TIME, SIDE[team]
        key = actions.tobytes()
        if key != self._action_keys[team]:
            self._action_keys[team] = key
            action = np.clip(actions, -1.0, 1.0)
            self._run[team] = action[:, 0] * (RUN_SPEED * dt * side)
            self._jump[team] = action[:, 1] > JUMP_THRESHOLD
        x = self.agent_x[team]
        moved = x + self._run[team]
        own = moved * side
        if own.max() > -NEAREST_TO_NET or own.min() < -FARTHEST_BACK:
            moved = np.clip(own, -FARTHEST_BACK, -NEAREST_TO_NET) * side
        vx = self.agent_vx[team]
        np.subtract(moved, x, out=vx)
        vx *= 1.0 / dt
        x[:] = moved
        y, vy = self.agent_y[team], self.agent_vy[team]
        jump = self._jump[team]
        if not (np.count_nonzero(y) or np.count_nonzero(jump)):
            return  # everyone on the ground and staying there
        vy[jump & (y <= 0.0)] = JUMP_SPEED
        vy -= GRAVITY * dt
        y += vy * dt
        landed = y <= 0.0
        y[landed] = 0.0
        vy[landed] = 0.0

    def _advance_ball(self) -> None:
        dt = FIXED_DELTA_TIME
        point, loser = self.point, self.loser
        if np.count_nonzero(point):
            point[:] = False
            loser[:] = NOBODY
        x, y, vx, vy = self.ball_x, self.ball_y, self.ball_vx, self.ball_vy
        was_right = x > 0.0
        vy -= GRAVITY * dt
        x += vx * dt
        y += vy * dt
        crossed = was_right != (x > 0.0)
        if np.count_nonzero(crossed):
            # Height of the straight path from the last position where it meets the net plane.
            at_net = y[crossed] - x[crossed] * vy[crossed] / vx[crossed]
            net = np.flatnonzero(crossed)[at_net < NET_HEIGHT]
            loser[net] = was_right[net]  # the team that sent it there
            point[net] = True
        self._hit()
        if y.min() <= 0.0:
            landed = np.flatnonzero((y <= 0.0) & ~point)
            side = (x[landed] > 0.0).astype(np.int64)  # team whose half the ball fell on
            out = np.abs(x[landed]) > COURT_HALF_LENGTH
            hitter = self.last_hitter[landed]
            loser[landed] = np.where(out & (hitter != NOBODY), hitter, side)
            point[landed] = True
        if np.count_nonzero(point):
            for hits in self.hits[point].tolist():
                self.context.stats.add("Tennis/HitsPerPoint", hits, StatsAggregationMethod.AVERAGE)

    def _hit(self) -> None:
        """Rackets within reach of a ball on their side return it (see the module docstring)."""
        dx = self.ball_x - self.agent_x
        dy = self.ball_y - self.agent_y
        dy -= RACKET_HEIGHT
        near = dx * dx + dy * dy < HIT_RADIUS * HIT_RADIUS
        if not np.count_nonzero(near):
            return
        for team in range(NUM_TEAMS):
            side = SIDE[team]
            hit = near[team] & (self.ball_x * side < 0.0) & (self.last_hitter != team)
            if not np.count_nonzero(hit):
                continue
            ahead = np.clip(dx[team, hit] * side / HIT_RADIUS, -1.0, 1.0)
            run = self.agent_vx[team, hit] * side
            self.ball_vx[hit] = (HIT_SPEED_X + HIT_ANGLE * ahead + RUN_CARRY * run) * side
            self.ball_vy[hit] = HIT_SPEED_Y - HIT_ANGLE * ahead
            self.last_hitter[hit] = team
            self.hits[hit] += 1

    # -- observations -------------------------------------------------------------------

    def observe(self, team: int, areas: np.ndarray) -> np.ndarray:
        """``(k, 12)`` float32 observations of ``team``'s agents in ``areas``, own frame."""
        columns, signs = _VIEW[team]
        rows = self.state if len(areas) == self.num_areas else self.state[areas]
        observation = rows[:, columns]
        observation *= signs
        return observation.astype(np.float32)


class TennisTeam(Task):
    """One team's agents (one per area): a view of the player's :class:`TennisGame`."""

    team: ClassVar[int]
    behavior_spec = TEAM_SPEC
    agents_per_area = 1
    decision_period = 5
    max_step = 2000

    def __init__(self, num_agents: int, context: TaskContext) -> None:
        super().__init__(num_agents, context)
        self.game = TennisGame.join(self.team, num_agents, context)

    def begin_episode(self, agents: np.ndarray) -> None:
        self.game.begin_episode(self.team, agents)

    def act(self, continuous: np.ndarray, discrete: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        return self.game.act(self.team, continuous, rewards)

    def observe(self, agents: np.ndarray) -> list[np.ndarray]:
        return [self.game.observe(self.team, agents)]


class TennisTeam0(TennisTeam):
    behavior_name = f"{BEHAVIOR_BASE_NAME}?team=0"
    team = 0


class TennisTeam1(TennisTeam):
    behavior_name = f"{BEHAVIOR_BASE_NAME}?team=1"
    team = 1


def tracking_policy(observations: np.ndarray) -> np.ndarray:
    """A scripted player for either team: keep the racket under the ball, else wait at home.

    ``observations`` ``(n, 12)`` in the agent's own frame -> actions ``(n, 2)`` (never jumps).
    A baseline opponent for self-play and the reference the tests hold random play against.
    """
    my_x, ball_x, ball_vx = observations[:, 0], observations[:, 4], observations[:, 6]
    coming = (ball_x < 0.0) | (ball_vx < 0.0)
    # Aim a little ahead of the ball: the action holds for a decision period (0.1 s).
    target = np.where(coming, ball_x + ball_vx * 0.1, START_X)
    actions = np.zeros((len(observations), 2), dtype=np.float32)
    actions[:, 0] = np.clip((target - my_x) * 3.0, -1.0, 1.0)
    return actions
