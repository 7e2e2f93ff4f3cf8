"""StrikersVsGoalie: an asymmetric 1v1 top-view ball game for self-play, striker against goalie.

Modelled loosely on ML-Agents' StrikersVsGoalie, cut down to one striker and one goalie per
area. The two sides are different behaviors, with different observations and actions, on
opposite teams: ``Striker?team=0`` and ``Goalie?team=1``, one agent each per area.

World, seen from above (x along the field toward the goal, y to its left): a field of x in
[-5, 5], y in [-3.5, 3.5], walled along its sides. The goal is the part |y| < 2 of the end line
x = 5; the other end line, x = -5, is the striker's end. All bodies are circles: the agents
(radius 0.5) and the ball (0.25). The agents pass through each other; only the ball meets them.

- Striker: anywhere in the field (centre at least 0.5 from the side walls and end lines), with
  a heading (counter-clockwise from +x). It runs forward at 4 units/s, backward and sideways at
  3 (forward and sideways add up) and turns at 180 degrees/s.
- Goalie: faces the field (-x) and stays in its box in front of the goal: centre 0.5 to 2.5
  out from the goal line, |y| <= 2.5. It moves at 2.5 units/s along each axis (adding up).
- Ball: rolls, keeping 0.985 of its velocity each academy step (a 6 units/s kick carries it
  about 8 units), and bounces off the side walls (its centre at |y| = 3.25) keeping 0.8 of its
  velocity. An agent touching it (centres within 0.75) kicks it: the ball is put back at
  contact distance on the line from the agent's centre through its own, and leaves along that
  line at 6 units/s plus half the agent's velocity; when both agents touch it, the nearer one
  kicks. So the ball is never faster than 8.5 units/s.

Each academy step (0.02 s) moves the ball, lets the agents kick it where they stand, judges the
end lines, then moves both agents with their current actions.

Outcomes, zero-sum, each ending the episodes of both agents at the same academy step:

- goal: the ball's centre crosses x = 5 with |y| < 2: striker +1, goalie -1;
- the ball's centre crosses x = 5 beside the goal (|y| >= 2), or x = -5 (a clearance past the
  striker's end): goalie +1, striker -1.

Besides, as ML-Agents' soccer agents: every academy step the striker loses and the goalie
gains ``EXISTENTIAL`` (1 / 1000), so a striker that never scores ends a full episode at -1;
and an agent that kicks the ball gets 0.2 x the ``ball_touch`` environment parameter (read at
each episode start, default 0: no touch reward). An outcome's reward replaces what the step
had added. At the step limit (1000 academy steps, 20 s) both agents are interrupted
(truncated) with what the existential reward left in their last step; self-play's ELO (as
ML-Agents') and ``unity-sb3 match`` count such a game as neither side's win, and so do the
stats.

Episode start, drawn from the task's random generator: the striker at x in [-4, -2],
|y| <= 2.5, heading within 90 degrees of +x; the ball at rest at |x| <= 1, |y| <= 2; the
goalie 0.5-2.5 out from the goal line, |y| <= 2; both agents at rest, neither touching the ball.

Observations, vector only, every float in [-1, 1]: lengths in an agent's frame are over the
field's diagonal (``DIAGONAL``, 12.2), velocities over 10 units/s (``SPEED_SCALE``).

- Striker, 14 floats: its position (x / 5, y / 3.5) and heading (cos, sin), then in its own
  frame (forward, right): the ball's position relative to it and the ball's velocity, the goal
  centre's position relative to it, the goalie's position relative to it and the goalie's
  velocity.
- Goalie, 10 floats, in the goal's frame: depth (out from the goal line, -x) and lateral (y,
  to the goalie's right as it faces the field). Its own position (depth / 2.5, lateral / 2.5),
  then for the ball and then the striker: position relative to the goalie (depth / 10,
  lateral / 7) and velocity (over 10 units/s).

Actions, discrete, read as Unity's soccer agents read theirs:

- Striker, branches (3, 3, 3): forward axis (0 none, 1 forward, 2 backward), right axis (0 none,
  1 right, 2 left), rotation (0 none, 1 turn left, 2 turn right).
- Goalie, branches (3, 3): depth axis (0 none, 1 out toward the field, 2 back toward the goal
  line), lateral axis (0 none, 1 right (+y), 2 left (-y)).

Decision period 5 for both. Stats at each episode end: ``StrikersVsGoalie/GoalRate`` (1 for a
goal, else 0) and ``StrikersVsGoalie/SaveRate`` (1 when the goalie won, else 0), averaged; an
episode cut short by the step limit or a reset counts 0 in both once it had taken a step.

Difficulty, measured over 1000 first episodes: uniformly random decisions score in about 11%
of episodes against a random goalie (15% go to the goalie, the rest time out); the scripted
striker (:func:`striker_policy`: get behind the ball, push it past the goalie) scores in about
90% against a random goalie and 20% against the scripted goalie (:func:`goalie_policy`: stay
between the ball and the goal centre).

How the two behaviors share one game: as Tennis' teams do, both tasks are thin views
(:class:`StrikerTask`, :class:`GoalieTask`) of one :class:`StrikersVsGoalieGame` per player, a
:class:`~unity_gym.players.shared_game.SharedGame`: the first view to act in an academy step
moves and judges the ball, each view moves its own agents, both report the same episode ends,
and an area restarts once both have begun their new episodes.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from unity_gym.base_env import (
    ActionSpec,
    BehaviorSpec,
)
from unity_gym.players.shared_game import SharedGame
from unity_gym.players.task import (
    FIXED_DELTA_TIME,
    EnvironmentParameterInfo,
    Task,
    TaskContext,
    vector_observation_spec,
)
from unity_gym.side_channel.stats_side_channel import StatsAggregationMethod

PLAYER_NAME = "StrikersVsGoalie"
STRIKER, GOALIE, BALL = 0, 1, 2  # teams, and rows of the game's position/velocity arrays
NOBODY = -1

# -- the field ---------------------------------------------------------------------------------
HALF_LENGTH = 5.0  # x in [-5, 5]; the goal is on x = +5
HALF_WIDTH = 3.5  # y in [-3.5, 3.5]
GOAL_HALF_WIDTH = 2.0  # the goal: |y| < this on x = +5
BOX_DEPTH = 2.5  # the goalie's centre stays within this of the goal line ...
BOX_HALF_WIDTH = 2.5  # ... and this of the goal's axis
AGENT_RADIUS = 0.5
BALL_RADIUS = 0.25
CONTACT = AGENT_RADIUS + BALL_RADIUS
GOAL_CENTRE = np.array([HALF_LENGTH, 0.0])
DIAGONAL = float(np.hypot(2 * HALF_LENGTH, 2 * HALF_WIDTH))  # length scale of observations
SPEED_SCALE = 10.0  # velocity scale of observations, units/s

# -- motion ------------------------------------------------------------------------------------
STRIKER_FORWARD_SPEED = 4.0  # units/s
STRIKER_SIDE_SPEED = 3.0  # backward and sideways
STRIKER_TURN_SPEED = float(np.pi)  # radians/s
GOALIE_SPEED = 2.5  # per axis
KICK_SPEED = 6.0
KICK_CARRY = 0.5  # share of the kicker's velocity added to the ball
BALL_DAMPING = 0.985  # share of the ball's velocity kept each academy step
WALL_BOUNCE = 0.8  # share of the ball's velocity kept off a side wall
BALL_Y_LIMIT = HALF_WIDTH - BALL_RADIUS
# Bounds of the agents' centres (rows: striker, goalie; columns: x, y).
_LOW = np.array(
    [
        [-HALF_LENGTH + AGENT_RADIUS, -HALF_WIDTH + AGENT_RADIUS],
        [HALF_LENGTH - BOX_DEPTH, -BOX_HALF_WIDTH],
    ]
)
_HIGH = np.array(
    [
        [HALF_LENGTH - AGENT_RADIUS, HALF_WIDTH - AGENT_RADIUS],
        [HALF_LENGTH - AGENT_RADIUS, BOX_HALF_WIDTH],
    ]
)
# Per action index (0 none, 1, 2): the striker's forward, right and turn speeds; the goalie's
# world velocity along x (1 moves out: -x) and y (1 moves right: +y).
_STRIKER_FORWARD = np.array([0.0, STRIKER_FORWARD_SPEED, -STRIKER_SIDE_SPEED])
_STRIKER_RIGHT = np.array([0.0, STRIKER_SIDE_SPEED, -STRIKER_SIDE_SPEED])
_STRIKER_TURN = np.array([0.0, STRIKER_TURN_SPEED, -STRIKER_TURN_SPEED])
_GOALIE_X = np.array([0.0, -GOALIE_SPEED, GOALIE_SPEED])
_GOALIE_Y = np.array([0.0, GOALIE_SPEED, -GOALIE_SPEED])

# -- episodes ----------------------------------------------------------------------------------
MAX_STEP = 1000
WIN_REWARD, LOSS_REWARD = 1.0, -1.0
# Every academy step the striker loses and the goalie gains this (ML-Agents' soccer agents'
# existential reward, 1 / max step): a striker that never scores ends a full episode at -1.
EXISTENTIAL = 1.0 / MAX_STEP
# An agent that kicks the ball gets this times the ``ball_touch`` parameter (default 0), as
# ML-Agents' soccer agents do on touching the ball.
BALL_TOUCH_REWARD = 0.2
STRIKER_START_X, STRIKER_START_Y = (-4.0, -2.0), 2.5  # x range, largest |y|
BALL_START_X, BALL_START_Y = 1.0, 2.0  # largest |x|, |y|
GOALIE_START_DEPTH = (AGENT_RADIUS, BOX_DEPTH)  # out from the goal line; |y| < GOAL_HALF_WIDTH

STRIKER_OBSERVATION_SIZE = 14
GOALIE_OBSERVATION_SIZE = 10


STRIKER_SPEC = BehaviorSpec(
    observation_specs=[vector_observation_spec(STRIKER_OBSERVATION_SIZE)],
    action_spec=ActionSpec.create_discrete((3, 3, 3)),
)
GOALIE_SPEC = BehaviorSpec(
    observation_specs=[vector_observation_spec(GOALIE_OBSERVATION_SIZE)],
    action_spec=ActionSpec.create_discrete((3, 3)),
)


class StrikersVsGoalieGame(SharedGame):
    """Every area's striker, goalie and ball in world coordinates, shared by both task views.

    ``position`` and ``velocity`` are float64 ``(areas, 3, 2)``: rows ``STRIKER``, ``GOALIE``,
    ``BALL``, columns x and y (velocities in units/s); ``heading`` ``(areas,)`` is the
    striker's. All writable (tests place bodies). ``ended`` and ``winner`` ``(areas,)`` hold the
    outcome of the current academy step: where the episode just ended, and which team won.
    Rows are areas: an agent's index in its behavior is its area.
    """

    def __init__(self, num_areas: int, context: TaskContext) -> None:
        super().__init__(num_areas, context)
        n = num_areas
        self.position = np.zeros((n, 3, 2))
        self.velocity = np.zeros((n, 3, 2))
        self.heading = np.zeros(n)
        self.ended = np.zeros(n, dtype=bool)
        self.winner = np.full(n, NOBODY, dtype=np.int64)
        self.kicked = np.zeros((n, 2), dtype=bool)  # who kicked the ball this academy step
        self.ball_touch = np.zeros(n)  # the ``ball_touch`` parameter, per area and episode
        self._steps = 0  # academy steps since the game began
        self._episode_start = np.zeros(n, dtype=np.int64)
        self._settled = np.zeros(n, dtype=bool)  # the episode's outcome is recorded
        # The teams' current actions, converted when they change (only at decisions).
        self._action_keys = [b"", b""]
        self._forward = np.zeros(n)  # striker, units per academy step
        self._right = np.zeros(n)
        self._turn = np.zeros(n)  # radians per academy step
        self._turning = False
        self._goalie_step = np.zeros((n, 2))  # goalie, world units per academy step
        self._any_kick = False
        self.restart(np.arange(n))

    # -- episode life cycle ------------------------------------------------------------------

    def restart(self, areas: np.ndarray) -> None:
        """New episodes in ``areas``: bodies at random start places (module docstring), at rest."""
        self._record_unfinished(areas)
        k, rng = len(areas), self.context.rng
        position = np.empty((k, 3, 2))
        position[:, STRIKER, 0] = rng.uniform(*STRIKER_START_X, k)
        position[:, STRIKER, 1] = rng.uniform(-STRIKER_START_Y, STRIKER_START_Y, k)
        position[:, GOALIE, 0] = HALF_LENGTH - rng.uniform(*GOALIE_START_DEPTH, k)
        position[:, GOALIE, 1] = rng.uniform(-GOAL_HALF_WIDTH, GOAL_HALF_WIDTH, k)
        position[:, BALL, 0] = rng.uniform(-BALL_START_X, BALL_START_X, k)
        position[:, BALL, 1] = rng.uniform(-BALL_START_Y, BALL_START_Y, k)
        self.position[areas] = position
        self.velocity[areas] = 0.0
        self.heading[areas] = rng.uniform(-0.5 * np.pi, 0.5 * np.pi, k)
        self._episode_start[areas] = self._steps
        self._settled[areas] = False
        self.ball_touch[areas] = self.context.parameters.sample("ball_touch", 0.0, k)

    def _record_unfinished(self, areas: np.ndarray) -> None:
        """Stats of episodes cut short (step limit or reset) after at least one step."""
        cut = np.count_nonzero((self._episode_start[areas] < self._steps) & ~self._settled[areas])
        for _ in range(cut):
            self._record(NOBODY)

    def _record(self, winner: int) -> None:
        stats = self.context.stats
        stats.add(
            f"{PLAYER_NAME}/GoalRate", float(winner == STRIKER), StatsAggregationMethod.AVERAGE
        )
        stats.add(
            f"{PLAYER_NAME}/SaveRate", float(winner == GOALIE), StatsAggregationMethod.AVERAGE
        )

    # -- one academy step --------------------------------------------------------------------

    def act(self, team: int, discrete: np.ndarray, rewards: np.ndarray) -> np.ndarray | None:
        """``team``'s share of an academy step; returns where the episode just ended, or None.

        The first team to act in a step advances the ball and judges it (module docstring).
        """
        if self.starts_step(team):
            self._advance_ball()
        if team == STRIKER:
            self._move_striker(discrete)
            rewards -= EXISTENTIAL
        else:
            self._move_goalie(discrete)
            rewards += EXISTENTIAL
        if self._any_kick:
            rewards += (BALL_TOUCH_REWARD * self.ball_touch * self.kicked[:, team]).astype(
                np.float32
            )
        ended = self.ended
        if not np.count_nonzero(ended):
            return None
        rewards[ended] = np.where(self.winner[ended] == team, WIN_REWARD, LOSS_REWARD)
        return ended.copy()

    def _move_striker(self, discrete: np.ndarray) -> None:
        dt = FIXED_DELTA_TIME
        key = discrete.tobytes()
        if key != self._action_keys[STRIKER]:
            self._action_keys[STRIKER] = key
            action = np.clip(discrete, 0, 2)
            self._forward = _STRIKER_FORWARD[action[:, 0]] * dt
            self._right = _STRIKER_RIGHT[action[:, 1]] * dt
            self._turn = _STRIKER_TURN[action[:, 2]] * dt
            self._turning = bool(np.count_nonzero(self._turn))
        heading = self.heading
        if self._turning:
            heading += self._turn
            np.remainder(heading + np.pi, 2 * np.pi, out=heading)
            heading -= np.pi
        cos, sin = np.cos(heading), np.sin(heading)
        forward, right = self._forward, self._right
        # Own frame: forward (cos, sin), right (sin, -cos).
        step = np.stack([forward * cos + right * sin, forward * sin - right * cos], axis=1)
        self._move(STRIKER, step)

    def _move_goalie(self, discrete: np.ndarray) -> None:
        key = discrete.tobytes()
        if key != self._action_keys[GOALIE]:
            self._action_keys[GOALIE] = key
            action = np.clip(discrete, 0, 2)
            self._goalie_step = (
                np.stack([_GOALIE_X[action[:, 0]], _GOALIE_Y[action[:, 1]]], axis=1)
                * FIXED_DELTA_TIME
            )
        self._move(GOALIE, self._goalie_step)

    def _move(self, row: int, step: np.ndarray) -> None:
        """Move one kind of agent by ``step`` (world units) within its bounds; set its velocity."""
        position = self.position[:, row]
        moved = np.clip(position + step, _LOW[row], _HIGH[row])
        velocity = self.velocity[:, row]
        np.subtract(moved, position, out=velocity)
        velocity *= 1.0 / FIXED_DELTA_TIME
        position[:] = moved

    def _advance_ball(self) -> None:
        self._steps += 1
        ended, winner = self.ended, self.winner
        if np.count_nonzero(ended):
            ended[:] = False
            winner[:] = NOBODY
        ball, ball_velocity = self.position[:, BALL], self.velocity[:, BALL]
        ball += ball_velocity * FIXED_DELTA_TIME
        ball_velocity *= BALL_DAMPING
        y = ball[:, 1]
        if np.abs(y).max() > BALL_Y_LIMIT:  # bounce off the side walls
            wall = np.flatnonzero(np.abs(y) > BALL_Y_LIMIT)
            side = np.sign(y[wall])
            y[wall] = side * (2.0 * BALL_Y_LIMIT - np.abs(y[wall]))
            ball_velocity[wall, 1] *= -WALL_BOUNCE
            ball_velocity[wall, 0] *= WALL_BOUNCE
        self._kick()
        x = ball[:, 0]
        if x.max() > HALF_LENGTH or x.min() < -HALF_LENGTH:
            out = np.flatnonzero(np.abs(x) > HALF_LENGTH)
            goal = (x[out] > HALF_LENGTH) & (np.abs(y[out]) < GOAL_HALF_WIDTH)
            winner[out] = np.where(goal, STRIKER, GOALIE)
            ended[out] = True
            self._settled[out] = True
            for team in winner[out].tolist():
                self._record(team)

    def _kick(self) -> None:
        """Agents touching the ball kick it away from their centre (module docstring)."""
        if self._any_kick:
            self.kicked[:] = False
        offset = self.position[:, BALL:] - self.position[:, :BALL]  # (areas, 2 agents, 2)
        distance2 = np.einsum("nai,nai->na", offset, offset)
        touching = distance2 < CONTACT * CONTACT
        self._any_kick = bool(np.count_nonzero(touching))
        if not self._any_kick:
            return
        areas = np.flatnonzero(touching.any(axis=1))
        kicker = np.where(touching[areas], distance2[areas], np.inf).argmin(axis=1)
        self.kicked[areas, kicker] = True
        away = offset[areas, kicker]
        length = np.sqrt(distance2[areas, kicker])
        # A ball exactly at an agent's centre leaves along the agent's facing.
        facing = np.where(
            kicker[:, None] == STRIKER,
            np.stack([np.cos(self.heading[areas]), np.sin(self.heading[areas])], axis=1),
            (-1.0, 0.0),
        )
        safe = length > 1e-9
        direction = np.where(safe[:, None], away / np.where(safe, length, 1.0)[:, None], facing)
        ball = self.position[areas, kicker] + direction * CONTACT
        ball[:, 1] = np.clip(ball[:, 1], -BALL_Y_LIMIT, BALL_Y_LIMIT)
        self.position[areas, BALL] = ball
        self.velocity[areas, BALL] = (
            direction * KICK_SPEED + self.velocity[areas, kicker] * KICK_CARRY
        )

    # -- observations ------------------------------------------------------------------------

    def observe(self, team: int, areas: np.ndarray) -> np.ndarray:
        """``(k, 14)`` striker or ``(k, 10)`` goalie float32 observations in ``areas``."""
        every = len(areas) == self.num_areas
        position = self.position if every else self.position[areas]
        velocity = self.velocity if every else self.velocity[areas]
        if team == STRIKER:
            heading = self.heading if every else self.heading[areas]
            return _striker_view(position, velocity, heading)
        return _goalie_view(position, velocity)


# Scales of the striker's own-frame vectors: ball position and velocity, goal centre position,
# goalie position and velocity.
_STRIKER_SCALES = np.array(
    [1 / DIAGONAL, 1 / SPEED_SCALE, 1 / DIAGONAL, 1 / DIAGONAL, 1 / SPEED_SCALE]
)
_BALL_THEN_STRIKER = slice(BALL, None, -2)  # rows BALL, STRIKER (a view, no copy)
# The goalie's frame: depth (-x) and lateral (y), relative positions and velocities scaled.
_GOALIE_SCALES = np.array(
    [[-1 / (2 * HALF_LENGTH), 1 / (2 * HALF_WIDTH)], [-1 / SPEED_SCALE, 1 / SPEED_SCALE]]
)


def _striker_view(position: np.ndarray, velocity: np.ndarray, heading: np.ndarray) -> np.ndarray:
    k = len(position)
    me = position[:, STRIKER]
    vectors = np.empty((k, 5, 2))
    np.subtract(position[:, BALL], me, out=vectors[:, 0])
    vectors[:, 1] = velocity[:, BALL]
    np.subtract(GOAL_CENTRE, me, out=vectors[:, 2])
    np.subtract(position[:, GOALIE], me, out=vectors[:, 3])
    vectors[:, 4] = velocity[:, GOALIE]
    vectors *= _STRIKER_SCALES[:, None]
    cos, sin = np.cos(heading)[:, None], np.sin(heading)[:, None]
    x, y = vectors[..., 0], vectors[..., 1]
    observation = np.empty((k, STRIKER_OBSERVATION_SIZE), dtype=np.float32)
    observation[:, 0] = me[:, 0] * (1 / HALF_LENGTH)
    observation[:, 1] = me[:, 1] * (1 / HALF_WIDTH)
    observation[:, 2:3] = cos
    observation[:, 3:4] = sin
    observation[:, 4::2] = x * cos + y * sin  # forward
    observation[:, 5::2] = x * sin - y * cos  # right
    return observation


def _goalie_view(position: np.ndarray, velocity: np.ndarray) -> np.ndarray:
    me = position[:, GOALIE]
    observation = np.empty((len(position), GOALIE_OBSERVATION_SIZE), dtype=np.float32)
    observation[:, 0] = (HALF_LENGTH - me[:, 0]) * (1 / BOX_DEPTH)
    observation[:, 1] = me[:, 1] * (1 / BOX_HALF_WIDTH)
    # Per other body (ball, striker): relative position, then velocity, in the goal's frame.
    others = observation[:, 2:].reshape(-1, 2, 2, 2)
    np.multiply(
        position[:, _BALL_THEN_STRIKER] - me[:, None], _GOALIE_SCALES[0], out=others[:, :, 0]
    )
    np.multiply(velocity[:, _BALL_THEN_STRIKER], _GOALIE_SCALES[1], out=others[:, :, 1])
    return observation


class StrikersVsGoalieTeam(Task):
    """One side's agents (one per area): a view of the player's :class:`StrikersVsGoalieGame`."""

    team: ClassVar[int]
    agents_per_area = 1
    decision_period = 5
    max_step = MAX_STEP
    environment_parameters = (
        EnvironmentParameterInfo(
            "ball_touch",
            0.0,
            f"reward per ball touch, times {BALL_TOUCH_REWARD:g} (ML-Agents' soccer agents')",
            "each episode start, per area (the striker and the goalie share it)",
        ),
    )

    def __init__(self, num_agents: int, context: TaskContext) -> None:
        super().__init__(num_agents, context)
        self.game = StrikersVsGoalieGame.join(self.team, num_agents, context)

    def begin_episode(self, agents: np.ndarray) -> None:
        self.game.begin_episode(self.team, agents)

    def act(
        self, continuous: np.ndarray, discrete: np.ndarray, rewards: np.ndarray
    ) -> np.ndarray | None:
        return self.game.act(self.team, discrete, rewards)

    def observe(self, agents: np.ndarray) -> list[np.ndarray]:
        return [self.game.observe(self.team, agents)]


class StrikerTask(StrikersVsGoalieTeam):
    behavior_name = "Striker?team=0"
    behavior_spec = STRIKER_SPEC
    team = STRIKER


class GoalieTask(StrikersVsGoalieTeam):
    behavior_name = "Goalie?team=1"
    behavior_spec = GOALIE_SPEC
    team = GOALIE


# -- scripted players ------------------------------------------------------------------------------

BEHIND = CONTACT + 0.2  # the striker lines up this far behind the ball's centre
ALIGNED = 0.1  # ... and pushes once its centre is within this of the line ball-aim point
AIM_OFFSET = 1.4  # the aim point: this far from the goal centre, on the side away from the goalie
GUARD_DEPTH = 1.0  # the goalie guards this far out from the goal line


def _axis_action(value: np.ndarray, dead: np.ndarray | float) -> np.ndarray:
    """Per branch of 3: 1 where ``value`` > dead, 2 where < -dead, else 0."""
    return np.where(value > dead, 1, np.where(value < -dead, 2, 0))


def striker_policy(observations: np.ndarray) -> np.ndarray:
    """A scripted striker: get behind the ball, then push it into the goal beside the goalie.

    ``observations`` ``(n, 14)`` -> actions ``(n, 3)`` int32. Works in the striker's own frame:
    it aims ``AIM_OFFSET`` from the goal centre on the side away from the goalie, heads for the
    point just behind the ball on the line from that aim point through the ball (going round
    the ball when on its goal side), then runs through the ball along that line, turning to
    face where it goes. A baseline opponent for self-play and the reference for the tests.
    """
    obs = observations.astype(np.float64)
    ball = obs[:, 4:6] * DIAGONAL  # own frame: (forward, right)
    goal = obs[:, 8:10] * DIAGONAL
    goalie = obs[:, 10:12] * DIAGONAL
    # Aim into the goal, on the side away from the goalie: world +y in the own frame is
    # (sin, -cos) of the heading.
    goal_line = np.stack([obs[:, 3], -obs[:, 2]], axis=1)
    goalie_side = np.sign(np.einsum("ni,ni->n", goalie - goal, goal_line))
    goal = goal - goal_line * (goalie_side * AIM_OFFSET)[:, None]
    aim = goal - ball
    aim /= np.maximum(np.linalg.norm(aim, axis=1, keepdims=True), 1e-6)
    # The striker (at the origin) seen from the ball: along the aim and across it.
    me = -ball
    along = np.einsum("ni,ni->n", me, aim)
    across = me - along[:, None] * aim
    off_line = np.linalg.norm(across, axis=1)
    behind = ball - aim * BEHIND
    pushing = (along < -0.5 * CONTACT) & (off_line < ALIGNED)
    # On the goal side of the ball: go round it, on the side where the striker is.
    side = across / np.maximum(off_line, 1e-6)[:, None]
    around = behind + side * (CONTACT + 0.4)
    target = np.where(
        pushing[:, None], ball + aim, np.where((along > -CONTACT)[:, None], around, behind)
    )
    distance = np.linalg.norm(target, axis=1)
    actions = np.zeros((len(observations), 3), dtype=np.int32)
    dead = 0.38 * distance  # eight directions: within 67.5 degrees counts on an axis
    actions[:, 0] = _axis_action(target[:, 0], dead)
    actions[:, 1] = _axis_action(target[:, 1], dead)
    left = np.arctan2(-target[:, 1], target[:, 0])  # angle to turn left to face the target
    actions[:, 2] = _axis_action(left, np.radians(10.0))
    return actions


def goalie_policy(observations: np.ndarray) -> np.ndarray:
    """A scripted goalie: stay between the ball and the goal centre, ``GUARD_DEPTH`` out.

    ``observations`` ``(n, 10)`` -> actions ``(n, 2)`` int32. A ball rolling toward the goal
    line is met where its path crosses the guarding depth.
    """
    obs = observations.astype(np.float64)
    depth, lateral = obs[:, 0] * BOX_DEPTH, obs[:, 1] * BOX_HALF_WIDTH
    ball_depth = depth + obs[:, 2] * 2 * HALF_LENGTH
    ball_lateral = lateral + obs[:, 3] * 2 * HALF_WIDTH
    speed_depth, speed_lateral = obs[:, 4] * SPEED_SCALE, obs[:, 5] * SPEED_SCALE
    # On the line goal centre -> ball, at the guarding depth ...
    target = ball_lateral * GUARD_DEPTH / np.maximum(ball_depth, GUARD_DEPTH)
    # ... or where a ball coming in will cross that depth.
    coming = (speed_depth < -0.5) & (ball_depth > GUARD_DEPTH)
    time = (ball_depth - GUARD_DEPTH) / np.where(coming, -speed_depth, 1.0)
    target = np.where(coming, ball_lateral + speed_lateral * time, target)
    target = np.clip(target, -GOAL_HALF_WIDTH, GOAL_HALF_WIDTH)
    actions = np.zeros((len(observations), 2), dtype=np.int32)
    actions[:, 0] = _axis_action(GUARD_DEPTH - depth, 0.15)  # 1 moves out
    actions[:, 1] = _axis_action(target - lateral, 0.15)  # 1 moves right (+y)
    return actions
