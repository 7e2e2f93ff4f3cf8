"""3DBall: tilt a platform so the ball on it does not fall off.

Same interface as ML-Agents' 3DBall: 12 agents per area, decision period 5, 5000 academy
steps per episode. Observation (8 floats): the platform rotation's quaternion z and x
components, the ball position relative to the platform centre (x, y, z) and the ball
velocity (x, y, z). Two continuous actions, clipped to [-1, 1], turn the platform by up to
2 degrees per academy step about z and about x (no further once the quaternion component
reaches +-0.25, about 29 degrees); as in Unity, a positive z turn raises the platform's +x
side and a positive x turn lowers its +z side. The platform is turned by a servo whose speed
falls with the torque it works against, as an electric motor's does: turning so as to lift
the side that carries the ball's weight is slower by the share ``m g d / SERVO_STALL_TORQUE``
(down to a standstill), turning the other way faster by that share (at most twice), where
``m`` is the ball's mass and ``d`` the horizontal offset of its centre from the platform's
axis. The servo's speed is set from the load at every change of action, and at least every
decision period. Every step the agent's reward is *set* to 0.1
(Unity's ``SetReward``), so each decision reports 0.1; a fall sets -1 and ends the episode.

Physics is a simplified rolling ball, in numpy for all agents at once. The ball is dropped
4 units above the platform and falls freely (straight down) for as long as it takes its
centre to come within one radius of the platform's plane as tilted at the drop; then it
lands on the platform as tilted by then, keeping only the velocity along the surface. On
the platform its centre stays one radius (measured vertically) above the plane and it
rolls: each tilt accelerates it along its own axis by 5/7 g sin(tilt) cos(tilt), as a solid
ball rolling on a slope tilted about that axis alone, and air drag slows it. The ball falls
off, ending the episode, as soon as its centre passes the platform edge (2.5 units from the
centre in x or z). Environment parameters read at each episode start, as in Unity:
``gravity`` (magnitude, default 9.81; 0 leaves the ball floating where it was dropped),
``scale`` (ball diameter, default 1; its radius lifts the centre off the surface, so on a
tilted platform a big ball's weight acts further downhill) and ``mass`` (default 1; the
servo's load, and air drag slows light balls more). At the defaults the servo loses at most
20% of its speed (ball at the edge); a ball of mass 5 at the edge stalls it.
"""

from __future__ import annotations

import numpy as np

from unity_gym.base_env import (
    ActionSpec,
    BehaviorSpec,
    DimensionProperty,
    ObservationSpec,
    ObservationType,
)
from unity_gym.players.task import (
    FIXED_DELTA_TIME,
    EnvironmentParameterInfo,
    Task,
    TaskContext,
)
from unity_gym.side_channel.stats_side_channel import StatsAggregationMethod

TILT_PER_STEP = float(np.radians(2.0))  # platform turn per academy step at action 1
TILT_LIMIT = 0.25  # quaternion component beyond which the platform turns no further
START_TILT = float(np.radians(10.0))  # initial tilt about each axis is uniform in +-this
START_SPREAD = 1.5  # initial ball x and z are uniform in +-this
START_HEIGHT = 4.0
PLATE_HALF_SIZE = 2.5  # the ball falls off once its centre is further than this in x or z
ROLLING = 5.0 / 7.0  # a rolling solid sphere accelerates at 5/7 of a sliding one
DRAG = 0.1  # air drag force per unit speed
# Torque (mass x gravity x offset) that stops the servo: a unit-mass ball at the edge under
# standard gravity costs it 20% of its speed.
SERVO_STALL_TORQUE = 5.0 * 9.81 * 2.5
SERVO_MAX_SPEEDUP = 2.0
BALANCED_REWARD = 0.1
DROP_REWARD = -1.0
DEFAULT_GRAVITY, DEFAULT_SCALE, DEFAULT_MASS = 9.81, 1.0, 1.0
# Below this tilt about both axes, no quaternion component can reach TILT_LIMIT.
_ALWAYS_TURNABLE = 2.0 * float(np.arcsin(TILT_LIMIT))
_STEP_RATE = 1.0 / FIXED_DELTA_TIME  # displacement per step -> velocity
_NEVER = 2**62  # a step count never reached (and safe to add step counts to)

# The state is one array with a row per quantity and a column per agent, so that a quantity
# of every agent, or a few consecutive quantities, is one contiguous block.
_ANGLES = slice(0, 5)  # see _SINES
_MOTION = slice(5, 8)  # displacement per step (velocity times step time): x, z, y
# The sines of the angle rows, taken once a step, serve the rolling and the quaternion:
#   angles 0, 1: twice the tilt about z and about x (radians): the sines drive the rolling;
#   angle 2: pi/2, whose sine 1 makes the y pull the whole change of the y motion;
#   angles 3, 4: the half sum and half difference of the two tilts: the quaternion z and x
#   components are (sine 3 + sine 4) / 2 and (sine 3 - sine 4) / 2.
_SINES = slice(8, 13)
_POSITION = slice(13, 16)  # ball centre relative to the platform centre: x, z, y
# The y rows: while the ball falls, its motion and height; on the platform 0 and the radius
# (the centre's height above the plane there).
_FALL_MOTION, _HEIGHT = 7, 15
# Per-episode constants, from the environment parameters:
_DRAG = slice(16, 19)  # share of the motion kept per step: x, z, y
_PULL = slice(19, 22)  # motion change per step: x and z per unit of sine, y itself
_RADIUS = 22
_GRAVITY = 23
_LOAD = 24  # the servo's load per unit of offset, as a share of its stall torque: m g / stall
_CONSTANTS = slice(16, 25)
_ON_PLATE = 25  # 1 once the ball has landed, else 0
_ROWS = 26
# One product of these row blocks is the new motion's two terms: drag * motion, pull * sine.
_KEPT_AND_PULLED, _DRAG_AND_PULL = slice(5, 11), slice(16, 22)
# Angle rows from tilt rows (z, x).
_ANGLES_FROM_TILT = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 0.0], [0.5, 0.5], [0.5, -0.5]])
_ANGLE_OFFSETS = np.array([[0.0], [0.0], [np.pi / 2], [0.0], [0.0]])
# A landed ball's pull per unit of g dt^2: downhill is -x for a z tilt, +z for an x tilt
# (the sine of twice the tilt is twice sin(tilt) cos(tilt)).
_ROLL_PULL = np.array([[-0.5 * ROLLING], [0.5 * ROLLING], [0.0]])
# The rows a landing sets besides the horizontal motion: pull, height, on-plate flag and
# vertical motion (see _landed_rows); a column, to index rows together with agents.
_LANDING_ROWS = np.reshape(
    [*range(_PULL.start, _PULL.stop), _HEIGHT, _ON_PLATE, _FALL_MOTION], (-1, 1)
)
# Rows of observe's scratch (quaternion z, x, position x, z, velocity x, z, y, height y)
# in observation order.
_OBSERVATION_ORDER = np.array([0, 1, 2, 7, 3, 4, 6, 5])


class Ball3DTask(Task):
    """Batched 3DBall agents.

    The state is one float array, a row per quantity and a column per agent (see the row
    constants). Each phase of a ball sets its per-agent constants once: while it falls its
    pull is minus g dt^2 in y, once it has landed the pull rolls it downhill in x and z, and
    the same whole-block numpy calls move every ball. The step at which a dropped ball lands
    is known when it is dropped, so no step checks for landings.

    At a dozen agents a numpy call costs more than its arithmetic, so a step is about a
    dozen calls on contiguous blocks; what changes only with the actions (or with which
    platforms are at the tilt limit) is computed when it changes, episode starts are drawn
    many at a time, and rare events (landing, falling off) are found by scalar or
    single-call checks.
    """

    behavior_name = "3DBall?team=0"
    behavior_spec = BehaviorSpec(
        observation_specs=[
            ObservationSpec(
                shape=(8,),
                dimension_property=(DimensionProperty.NONE,),
                observation_type=ObservationType.DEFAULT,
                name="VectorSensor_size8",
            )
        ],
        action_spec=ActionSpec.create_continuous(2),
    )
    agents_per_area = 12
    decision_period = 5
    max_step = 5000
    environment_parameters = (
        EnvironmentParameterInfo(
            "mass",
            DEFAULT_MASS,
            "the ball's mass: the platform's servo turns slower against a heavy ball's weight "
            "(mass 5 at the edge stalls it); air drag slows light balls more",
        ),
        EnvironmentParameterInfo(
            "gravity",
            DEFAULT_GRAVITY,
            "gravity's magnitude; 0 leaves the ball floating where it was dropped",
        ),
        EnvironmentParameterInfo(
            "scale",
            DEFAULT_SCALE,
            "the ball's diameter; its radius lifts its centre off the platform, so on a tilted "
            "platform a big ball's weight loads the servo further downhill",
        ),
    )

    def __init__(self, num_agents: int, context: TaskContext) -> None:
        super().__init__(num_agents, context)
        n = num_agents
        self._state = state = np.zeros((_ROWS, n))
        state[_ANGLES] = _ANGLE_OFFSETS
        state[_SINES] = np.sin(_ANGLE_OFFSETS)
        # Episode starts, drawn many at a time (see _draw_starts), and how many are used.
        self._starts, self._fall_steps = np.empty((_ROWS, 0)), np.empty(0, dtype=np.int64)
        self._drawn = 0
        # Steps taken, and the step at which each falling ball lands.
        self._steps = 0
        self._lands_at = np.full(n, _NEVER)
        self._next_landing = _NEVER
        # The turn of each agent's current action, recomputed when the actions change, and
        # the turn of the angle rows, recomputed when which platforms are blocked changes.
        self._action_key = b""
        self._servo_due = 0  # step by which the servo's speed is set again from the load
        self._tilt_turn = np.zeros((2, n))  # radians per step about z and x
        self._turn_sign = np.zeros((2, n))
        self._full_turn = np.zeros((5, n))
        self._turn, self._blocked_key = self._full_turn, b""
        self._tilt_bound = 0.0  # at least the largest |tilt| of any agent
        self._turn_bound = TILT_PER_STEP * SERVO_MAX_SPEEDUP  # at least the largest |turn|
        # Views of the state, and scratch arrays, made once.
        self._angles, self._sines = state[_ANGLES], state[_SINES]
        self._motion, self._position = state[_MOTION], state[_POSITION]
        self._horizontal = state[13:15]
        self._kept_and_pulled, self._drag_and_pull = state[_KEPT_AND_PULLED], state[_DRAG_AND_PULL]
        self._terms = np.zeros((6, n))
        self._kept, self._pulled = self._terms[0:3], self._terms[3:6]
        self._sum_sine, self._difference_sine = state[11], state[12]
        self._pair, self._flags = np.zeros((2, n)), np.zeros((2, n), dtype=bool)
        # Thresholds as arrays: comparing with a Python float costs a conversion every call.
        self._edge = np.full((2, n), PLATE_HALF_SIZE)
        self._block_at = np.full((2, n), 2.0 * TILT_LIMIT)

    @property
    def tilt(self) -> np.ndarray:
        """``(n, 2)``: platform rotation about z and about x, radians (settable)."""
        return self._state[0:2].T * 0.5

    @tilt.setter
    def tilt(self, value: np.ndarray) -> None:
        tilt = np.asarray(value, dtype=np.float64).T
        self._angles[:] = _ANGLES_FROM_TILT @ tilt + _ANGLE_OFFSETS
        np.sin(self._angles, out=self._sines)
        self._tilt_bound = float(np.abs(tilt).max())

    @property
    def on_plate(self) -> np.ndarray:
        """``(n,)`` bool: whether each ball has landed on its platform."""
        return self._state[_ON_PLATE] > 0.0

    @property
    def position(self) -> np.ndarray:
        """``(n, 2)`` writable view: ball centre x and z relative to the platform centre."""
        return self._horizontal.T

    def begin_episode(self, agents: np.ndarray) -> None:
        k = len(agents)
        if self._drawn + k > self._starts.shape[1]:
            self._draw_starts()
        drawn = slice(self._drawn, self._drawn + k)
        self._drawn += k
        start, fall_steps = self._starts[:, drawn], self._fall_steps[drawn]
        parameters = self.context.parameters
        if "gravity" in parameters or "scale" in parameters or "mass" in parameters:
            start = start.copy()
            start[_CONSTANTS] = _episode_constants(
                parameters.sample("gravity", DEFAULT_GRAVITY, k),
                parameters.sample("scale", DEFAULT_SCALE, k),
                parameters.sample("mass", DEFAULT_MASS, k),
            )
            fall_steps = _fall_steps(start)
        self._state[:, agents] = start
        lands_at = fall_steps + self._steps
        self._lands_at[agents] = lands_at
        self._next_landing = min(self._next_landing, int(lands_at.min()))
        self._tilt_bound = max(self._tilt_bound, START_TILT)
        self._blocked_key = b""  # the blocked platforms are unknown again

    def _draw_starts(self) -> None:
        """Draw the random starts of the next many episodes (default parameters)."""
        count = max(256, 4 * self.num_agents)
        starts = np.zeros((_ROWS, count))
        tilt = self.rng.uniform(-START_TILT, START_TILT, (2, count))
        starts[_ANGLES] = _ANGLES_FROM_TILT @ tilt + _ANGLE_OFFSETS
        starts[_SINES] = np.sin(starts[_ANGLES])
        starts[13:15] = self.rng.uniform(-START_SPREAD, START_SPREAD, (2, count))
        starts[_HEIGHT] = START_HEIGHT
        starts[_CONSTANTS] = _episode_constants(
            np.array([DEFAULT_GRAVITY]), np.array([DEFAULT_SCALE]), np.array([DEFAULT_MASS])
        )
        self._starts, self._fall_steps, self._drawn = starts, _fall_steps(starts), 0

    def quaternion_zx(self) -> np.ndarray:
        """``(n, 2)``: z and x components of the platform rotation (z turn composed with x)."""
        sines = self._sines
        return np.array([sines[3] + sines[4], sines[3] - sines[4]]).T * 0.5

    def act(
        self, continuous: np.ndarray, discrete: np.ndarray, rewards: np.ndarray
    ) -> np.ndarray | None:
        key = continuous.tobytes()
        if key != self._action_key or self._steps >= self._servo_due:
            self._action_key = key  # actions change only at decisions
            self._servo_due = self._steps + self.decision_period
            self._set_turn(continuous)
        if self._tilt_bound >= _ALWAYS_TURNABLE:
            self._limit_turn()
        self._tilt_bound += self._turn_bound
        # Semi-implicit Euler step: rolling balls accelerate downhill, falling ones down.
        self._angles += self._turn
        np.sin(self._angles, self._sines)
        np.multiply(self._drag_and_pull, self._kept_and_pulled, self._terms)
        np.add(self._kept, self._pulled, self._motion)
        self._position += self._motion
        self._steps += 1
        if self._steps >= self._next_landing:
            self._land()
        rewards.fill(BALANCED_REWARD)
        beyond = np.greater(np.abs(self._horizontal, self._pair), self._edge, self._flags)
        if not np.count_nonzero(beyond):
            return None
        fell = beyond.any(axis=0)
        rewards[fell] = DROP_REWARD
        self.context.stats.add("Ball/Drops", int(fell.sum()), StatsAggregationMethod.SUM)
        return fell

    def _set_turn(self, continuous: np.ndarray) -> None:
        tilt_turn = self._tilt_turn
        tilt_turn[:] = continuous.T
        np.minimum(tilt_turn, 1.0, out=tilt_turn)
        np.maximum(tilt_turn, -1.0, out=tilt_turn)
        np.sign(tilt_turn, self._turn_sign)
        tilt_turn *= self._servo_speed()
        tilt_turn *= TILT_PER_STEP
        self._turn_bound = float(np.abs(tilt_turn).max()) if tilt_turn.size else 0.0
        np.matmul(_ANGLES_FROM_TILT, tilt_turn, out=self._full_turn)
        self._turn, self._blocked_key = self._full_turn, b""
        self._tilt_bound = float(np.abs(self._angles[0:2]).max()) * 0.5

    def _servo_speed(self) -> np.ndarray:
        """``(2, n)``: share of full speed of each servo (z, x) turning the way of the actions.

        The ball's weight pulls down the side its centre is over: its offset from the axis is
        ``x cos(tilt_z) - r sin(tilt_z)`` along x (a raised +x side moves a centre that sits
        ``r`` above the surface towards -x) and ``z cos(tilt_x) + r sin(tilt_x)`` along z. A
        positive z turn lifts the +x side, a positive x turn lowers the +z side.
        """
        state = self._state
        half = state[0:2] * 0.5  # tilt about z and about x
        offset = state[13:15] * np.cos(half)
        offset += np.sin(half) * (state[_RADIUS] * np.array([[-1.0], [1.0]]))
        load = offset * (state[_LOAD] * state[_ON_PLATE])
        load[0] *= -1.0  # lifting the +x side (positive z turn) works against a +x load
        speed = 1.0 + self._turn_sign * load
        return np.clip(speed, 0.0, SERVO_MAX_SPEEDUP, out=speed)

    def _limit_turn(self) -> None:
        """As in Unity: turn only while the quaternion component is short of the limit."""
        twice = self._pair  # twice the quaternion components (same-shape operands only:
        np.add(self._sum_sine, self._difference_sine, twice[0])  # numpy broadcasting is slow)
        np.subtract(self._sum_sine, self._difference_sine, twice[1])
        twice *= self._turn_sign
        blocked = np.greater_equal(twice, self._block_at, self._flags)
        key = blocked.tobytes() if np.count_nonzero(blocked) else b""
        if key != self._blocked_key:
            self._blocked_key = key
            self._turn = (
                _ANGLES_FROM_TILT @ np.where(blocked, 0.0, self._tilt_turn)
                if key
                else self._full_turn
            )

    def _land(self) -> None:
        """Balls whose fall ends now land on the platform below them."""
        agents = np.flatnonzero(self._lands_at <= self._steps)
        self._lands_at[agents] = _NEVER
        self._next_landing = int(self._lands_at.min())
        if len(agents) == 0:  # those balls restarted before they landed
            return
        state = self._state
        slope = np.tan(state[0:2, agents] * 0.5)
        slope[1] *= -1.0
        # The inelastic impact keeps the velocity along the surface. A falling ball moves
        # only vertically; the part of (0, vy, 0) along the surface has the horizontal
        # components slope * vy / (1 + |slope|^2).
        slope *= state[_FALL_MOTION, agents] / (1.0 + (slope * slope).sum(axis=0))
        state[5:7, agents] = slope
        state[_LANDING_ROWS, agents] = self._landed_rows(
            state[_RADIUS, agents], state[_GRAVITY, agents]
        )

    @staticmethod
    def _landed_rows(radius: np.ndarray, gravity: np.ndarray) -> np.ndarray:
        """The _LANDING_ROWS of balls that have just landed."""
        rows = np.zeros((len(_LANDING_ROWS), len(radius)))
        rows[0:3] = _ROLL_PULL * (gravity * FIXED_DELTA_TIME**2)  # pull x, z, y
        rows[3] = radius  # height above the plane
        rows[4] = 1.0  # on the platform
        return rows  # and no vertical motion

    def observe(self, agents: np.ndarray) -> list[np.ndarray]:
        state = self._state if len(agents) == self.num_agents else self._state[:, agents]
        rows = np.empty((8, len(agents)))  # see _OBSERVATION_ORDER
        np.add(state[11], state[12], rows[0])  # twice the quaternion components
        np.subtract(state[11], state[12], rows[1])
        rows[0:2] *= 0.5
        rows[2:4] = state[13:15]
        rows[4:6] = state[5:7]
        # Landed balls move along the plane, one radius above it: their vertical motion and
        # height add slope . (motion x, z) and slope . (x, z), slope = (tan tilt_z, -tan tilt_x).
        slope = np.tan(state[0:2] * 0.5)
        along_motion, along_position = slope * state[5:7], slope * state[13:15]
        np.subtract(along_motion[0], along_motion[1], rows[6])
        np.subtract(along_position[0], along_position[1], rows[7])
        rows[6:8] *= state[_ON_PLATE]
        rows[6:8] += state[_FALL_MOTION : _HEIGHT + 1 : 8]
        rows[4:7] *= _STEP_RATE
        return [rows[_OBSERVATION_ORDER].T]


def _episode_constants(gravity: np.ndarray, scale: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """The per-episode constant rows (``_CONSTANTS``) of balls just dropped."""
    dt = FIXED_DELTA_TIME
    constants = np.zeros((_ROWS, len(gravity)))
    constants[_DRAG] = np.maximum(1.0 - DRAG * dt / np.maximum(mass, 1e-3), 0.0)
    constants[_DRAG.stop - 1] = 1.0  # falling is free
    constants[_PULL.stop - 1] = -gravity * (dt * dt)
    constants[_RADIUS] = 0.5 * np.maximum(scale, 1e-3)
    constants[_GRAVITY] = gravity
    constants[_LOAD] = np.maximum(mass, 0.0) * gravity / SERVO_STALL_TORQUE
    return constants[_CONSTANTS]


def _fall_steps(starts: np.ndarray) -> np.ndarray:
    """Steps until balls dropped in these state columns land (_NEVER without gravity).

    Falling from START_HEIGHT, the centre is (1 + 2 + ... + t) g dt^2 lower after t steps;
    it lands once it reaches the plane (as tilted at the drop) plus the radius.
    """
    depth = START_HEIGHT - _plane(starts[0:2] * 0.5, starts[13:15]) - starts[_RADIUS]
    g_dt2 = starts[_GRAVITY] * FIXED_DELTA_TIME**2
    steps = np.full(len(depth), _NEVER)
    falls = g_dt2 > 0  # without gravity the ball floats where it was dropped
    roots = np.sqrt(1.0 + 8.0 * np.maximum(depth[falls], 0.0) / g_dt2[falls])
    steps[falls] = np.maximum(np.ceil((roots - 1.0) / 2.0), 1.0)
    return steps


def _plane(tilt: np.ndarray, horizontal: np.ndarray) -> np.ndarray:
    """Height of the platform's plane at ``(x, z)`` rows, for ``(z, x)`` tilt rows."""
    rest = np.tan(tilt) * horizontal
    return rest[0] - rest[1]
