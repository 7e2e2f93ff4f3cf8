"""3DBall: tilt a platform so the ball on it does not fall off.

Same interface as ML-Agents' 3DBall: 12 agents per area, decision period 5, 5000 academy
steps per episode. Observation (8 floats): the platform rotation's quaternion z and x
components, the ball position relative to the platform centre (x, y, z) and the ball
velocity (x, y, z). Two continuous actions, clipped to [-1, 1], turn the platform by up to
2 degrees per academy step about z and about x (no further once the quaternion component
reaches +-0.25, about 29 degrees); as in Unity, a positive z turn raises the platform's +x
side and a positive x turn lowers its +z side. Every step the agent's reward is *set* to 0.1
(Unity's ``SetReward``), so each decision reports 0.1; a fall sets -1 and ends the episode.

Physics is a simplified rigid ball, in numpy for all agents at once: the ball is dropped 4
units above the platform, lands without bouncing (keeping the velocity along the surface),
then rolls downhill with 5/7 g sin(slope) and falls once its centre passes the platform edge.
Environment parameters read at each episode start, as in Unity: ``gravity`` (magnitude,
default 9.81), ``scale`` (ball diameter, default 1; its radius lifts the centre off the
surface) and ``mass`` (default 1; air drag slows light balls more).
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
from unity_gym.players.task import FIXED_DELTA_TIME, Task, TaskContext
from unity_gym.side_channel.stats_side_channel import StatsAggregationMethod

TILT_PER_STEP = float(np.radians(2.0))  # platform turn per academy step at action 1
TILT_LIMIT = 0.25  # quaternion component beyond which the platform turns no further
START_TILT = float(np.radians(10.0))  # initial tilt about each axis is uniform in +-this
START_SPREAD = 1.5  # initial ball x and z are uniform in +-this
START_HEIGHT = 4.0
PLATE_HALF_SIZE = 2.5
FALL_HEIGHT = -2.0  # the episode ends below this height or beyond FALL_DISTANCE in x or z
FALL_DISTANCE = 3.0
ROLLING = 5.0 / 7.0  # a rolling solid sphere accelerates at 5/7 of a sliding one
DRAG = 0.1  # air drag force per unit speed
LANDING_TOLERANCE = 0.5  # how far below the surface a falling ball is still caught
BALANCED_REWARD = 0.1
DROP_REWARD = -1.0
# Below this tilt about both axes, no quaternion component can reach TILT_LIMIT.
_ALWAYS_TURNABLE = 2.0 * float(np.arcsin(TILT_LIMIT))
_SLOPE_SIGN = np.array([1.0, -1.0])
_XYZ = [0, 2, 1]  # state columns (x, z, y) -> observation order (x, y, z)


class Ball3DTask(Task):
    """Batched 3DBall agents."""

    behavior_name = "3DBall"
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

    def __init__(self, num_agents: int, context: TaskContext) -> None:
        super().__init__(num_agents, context)
        # Columns are ordered (x, z, y) so the horizontal part is a [:, :2] view. Few, wide numpy
        # calls matter here: at a dozen agents each call costs more than its arithmetic.
        self.tilt = np.zeros((num_agents, 2))  # platform rotation about z and about x, radians
        self.position = np.zeros((num_agents, 3))  # ball centre relative to the platform
        self.velocity = np.zeros((num_agents, 3))
        self.on_plate = np.zeros(num_agents, dtype=bool)
        self.radius = np.full(num_agents, 0.5)
        self.gravity_dt = np.full(num_agents, 9.81 * FIXED_DELTA_TIME)  # speed gained per step
        self.damping = np.full(num_agents, 1.0 - DRAG * FIXED_DELTA_TIME)  # speed kept per step
        self._nobody = np.zeros(num_agents, dtype=bool)

    def begin_episode(self, agents: np.ndarray) -> None:
        k = len(agents)
        parameters = self.context.parameters
        mass = np.maximum(parameters.sample("mass", 1.0, k), 1e-3)
        self.damping[agents] = np.clip(1.0 - DRAG / mass * FIXED_DELTA_TIME, 0.0, 1.0)
        self.radius[agents] = 0.5 * np.maximum(parameters.sample("scale", 1.0, k), 1e-3)
        self.gravity_dt[agents] = parameters.sample("gravity", 9.81, k) * FIXED_DELTA_TIME
        self.tilt[agents] = self.rng.uniform(-START_TILT, START_TILT, (k, 2))
        self.position[agents, :2] = self.rng.uniform(-START_SPREAD, START_SPREAD, (k, 2))
        self.position[agents, 2] = START_HEIGHT
        self.velocity[agents] = 0.0
        self.on_plate[agents] = False

    def quaternion_zx(self) -> np.ndarray:
        """``(n, 2)``: z and x components of the platform rotation (z turn composed with x)."""
        half = self.tilt / 2
        return np.sin(half) * np.cos(half)[:, ::-1]

    def act(self, continuous: np.ndarray, discrete: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        turn = continuous.clip(-1.0, 1.0) * TILT_PER_STEP
        if np.abs(self.tilt).max() >= _ALWAYS_TURNABLE:
            rotation = self.quaternion_zx()
            turn *= np.where(turn > 0, rotation < TILT_LIMIT, rotation > -TILT_LIMIT)
        self.tilt += turn
        airborne = self._integrate()
        if airborne:  # a ball on the platform cannot be beyond the fall limits
            x, z, y = self.position.T
            fell = (y < FALL_HEIGHT) | (np.abs(x) > FALL_DISTANCE) | (np.abs(z) > FALL_DISTANCE)
        else:
            fell = self._nobody
        rewards[:] = np.where(fell, DROP_REWARD, BALANCED_REWARD)
        if airborne and fell.any():
            self.context.stats.add("Ball/Drops", int(fell.sum()), StatsAggregationMethod.SUM)
        return fell

    def _integrate(self) -> bool:
        """One semi-implicit Euler step of every ball; returns whether any ball is airborne."""
        # The platform surface is the plane y = slope . (x, z): a positive z turn raises the
        # +x side, a positive x turn lowers the +z side.
        slope = np.tan(self.tilt) * _SLOPE_SIGN
        norm2 = 1.0 + np.einsum("ij,ij->i", slope, slope)
        rolling = self.on_plate
        velocity, position = self.velocity, self.position
        velocity *= self.damping[:, None]
        velocity[:, :2] -= (ROLLING * self.gravity_dt * rolling / norm2)[:, None] * slope
        velocity[:, 2] -= self.gravity_dt * ~rolling
        position += velocity * FIXED_DELTA_TIME

        horizontal = position[:, :2]
        within = (np.abs(horizontal) <= PLATE_HALF_SIZE).all(axis=1)
        surface = np.einsum("ij,ij->i", slope, horizontal) + self.radius * np.sqrt(norm2)
        if rolling.all() and within.all():
            position[:, 2] = surface
            velocity[:, 2] = np.einsum("ij,ij->i", slope, velocity[:, :2])
            return False
        height = position[:, 2]
        landing = within & ~rolling & (height <= surface)
        landing &= height > surface - LANDING_TOLERANCE
        if landing.any():
            # An inelastic impact removes the velocity along the surface normal,
            # (-slope_x, 1, -slope_z) / sqrt(norm2).
            into = (velocity[:, 2] - np.einsum("ij,ij->i", slope, velocity[:, :2])) / norm2
            velocity[landing, :2] += (into[:, None] * slope)[landing]
        rolling = (rolling & within) | landing  # rolling past the edge starts a fall
        position[:, 2] = np.where(rolling, surface, height)
        along = np.einsum("ij,ij->i", slope, velocity[:, :2])
        velocity[:, 2] = np.where(rolling, along, velocity[:, 2])
        self.on_plate = rolling
        return not rolling.all()

    def observe(self, agents: np.ndarray) -> list[np.ndarray]:
        obs = np.empty((len(agents), 8), dtype=np.float32)
        obs[:, 0:2] = self.quaternion_zx()[agents]
        obs[:, 2:5] = self.position[agents][:, _XYZ]
        obs[:, 5:8] = self.velocity[agents][:, _XYZ]
        return [obs]
