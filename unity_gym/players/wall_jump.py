"""WallJump: get over a wall to the goal; a wall too high to jump needs a block pushed against it.

Modelled on ML-Agents' WallJump (``WallJumpAgent.cs`` and ``WallJumpArea.prefab``), whose
agent must reach a goal behind a wall. Each episode Unity draws the wall: none (1 in 5), small
(1 in 5) or big (3 in 5), and *switches the agent's behavior* to match: ``SmallWallJump`` for no
wall and the small one, ``BigWallJump`` for the big one (``Agent.SetModel`` at the first physics
step of the episode; the agent then reports under the other behavior name with the same agent
id). Python's lock-step adapters need a fixed set of agents per behavior, so here each training
area holds **two courses**, one per behavior (one agent each, like the rest of the area): the
``BigWallJump`` agent always faces a big wall, the ``SmallWallJump`` agent no wall or a small
one, with even odds (Unity's odds given that the wall is not big). The curriculum of ML-Agents'
``WallJump_curriculum.yaml`` then applies unchanged.

World (top view plus height, in the area's own units, Unity's local coordinates): the platform
is the square ``|x| <= 10.5``, ``-14.5 <= z <= 6.5`` (Unity's 20 x 20 ground with its border),
with nothing around it: leaving it is falling. The wall spans the platform's width at
``-2.73 <= z <= -1.23`` (1.5 thick); the goal is the square ``4.37 <= x <= 8.37``,
``0.93 <= z <= 4.93`` behind it. Heights are measured from the floor. The wall's height
parameter is Unity's scale of a box centred on the floor's mid-plane, so its top stands
``max(0, h / 2 - 0.5)`` above the floor: 3.5 for the big wall's default 8, 1.5 for the small
wall's default 4, nothing for 1 or less. Parameters, read at each episode start for each agent
(each read draws anew, as Unity's ``EnvironmentParameters.GetWithDefault``):
``big_wall_height`` (default 8), ``small_wall_height`` (default 4), ``no_wall_height``
(default 0); NaN reads as the default and the top is capped at 10.

The agent's footprint is a circle of radius 0.5 (Unity's 1-unit cube, kept upright), the
block's an axis-aligned 3 x 3 square 2 high (Unity freezes its rotation and height). Each episode
the agent starts on the floor at rest at ``x`` uniform in [-9, 9], ``z = -12``, keeping its
heading from the previous episode (Unity does not reset it; the first episode faces away from
the wall, -z); the block appears uniformly in Unity's spawn volume ``|x| <= 8.1``,
``-9.77 <= z``, up to the wall: ``z <= -4.23`` (Unity's volume reaches 1.46 into the wall, and
its physics pushes such blocks back against it; here they are drawn clear of it).

Actions: four discrete branches, as Unity's agent reads them: (3) 0 nothing, 1 forward,
2 backward; (3) 0 nothing, 1 turn left, 2 turn right; (3) 0 nothing, 1 step left, 2 step right;
(2) 0 nothing, 1 jump. A sideways step overrides forward or backward (Unity assigns the sideways
direction last) and is 0.6 as strong. Timing follows Unity's prefab: a decision every 5 academy
steps (actions repeat in between) and at most 2000 academy steps (400 decisions) per episode.
Each academy step turns the agent by 6 degrees (Unity's 300 degrees/s at 0.02 s) and pushes it:
the velocity keeps 0.8 of itself and gains 0.03 units along the push, so the top speed on the
ground is 0.15 units per academy step (0.75 per decision); in the air pushes are halved
(Unity's ``largeGrounded ? 1 : 0.5``).

Jumping (Unity's ``Jump`` and ``jumpingTime``): the jump action starts a jump when the agent
stands (within 0.05 of what it stands on), passes Unity's small ground check (a surface under
its centre within 0.55 of its feet: a 1-unit ray cast from just below its centre) and no jump
is rising; it then rises 0.225 per academy step for 10 steps (0.2 s), 2.25 in all, and falls
with a downward acceleration of 0.048 units per step squared (gravity plus Unity's
``fallingForce`` of 111, at 0.02 s) until it lands. It stands on the floor, on the block (top 2)
or on the wall (top ``t``) when its footprint overlaps them and it came from above. While below
their tops, the wall stops it and it pushes the block: the block moves out of its way (never
up, never turning) unless the wall stops the block, which then stops the agent. So a wall whose
top is under 2.25 (``h < 5.5``) can be jumped from the floor, a higher one only from the block
(2 + 2.25 = 4.25 > 3.5 for the default 8), and the jump from the block carries the agent about
2 units: a block farther from the wall has to be pushed against it first. (Unity's run and
jump strengths live in its scene settings; these are this player's.)

Rewards, as ML-Agents documents them: -0.0005 each academy step (Unity's ``MoveAgent`` runs at
every step; -0.0025 per decision, -1 over a whole episode); reaching the goal (footprint over
it and grounded, Unity's ``OnTriggerStay`` with the small ground check) *sets* the step's reward
to +1 and ends the episode; the agent's or the block's centre leaving the platform (Unity's
downward ray casts from both finding nothing) *sets* it to -1 and ends the episode.

Observations (sensors sorted by name, as Unity sorts them), each a Unity ``StackingSensor`` of
6 frames (the prefab's ``ObservationStacks: 6`` and ``NumStackedVectorObservations: 6``):
oldest frame first, newest last, frames of a new episode's earlier reports zero. A frame is
added each time the agent reports (a decision or its episode's end):

- ``StackingSensor_size6_OffsetRayPerceptionSensor`` and
  ``StackingSensor_size6_RayPerceptionSensor``: 210 floats each, 6 frames of 7 rays x 5 floats,
  laid out like Unity's ``RayPerceptionSensor`` with detectable tags ``wall``, ``goal``,
  ``block``: per ray a one-hot of the tag hit, then 1 when the ray hit nothing, then the hit
  distance over the ray length (20; 1 when nothing was hit). Rays in Unity's order, 30 degrees
  apart up to 90 each side: ray 0 ahead, then alternately right and left (1 right, 2 left, ...).
  Rays are sphere casts of radius 0.5: here, lines against the shapes grown by 0.5. The low
  sensor's casts run level at the agent's centre (they see a shape whose top is above the
  agent's feet); the offset sensor's start 2.5 higher and climb 2.5 over their length (they see
  a shape where ``feet + 2.5 + distance / 8`` is below its top: from the floor, the big wall
  within 8 units, the goal's 5-high trigger, never the block). A cast starting inside a shape
  does not see it (touching it does). The floor is not detectable.
- ``StackingSensor_size6_VectorSensor_size4``: 6 frames of Unity's ``CollectObservations``:
  the agent's centre relative to the ground's (``x``, ``height + 1``, ``z + 4``) over 20, then
  1 when grounded (small ground check) else 0.

Stats: at each episode end ``WallJump/SuccessRate`` (1 when the goal was reached, else 0) and
``WallJump/BigWallSuccessRate`` or ``WallJump/SmallWallSuccessRate`` (the same, per behavior),
all averaged; an episode cut short by the step limit or a reset counts as a failure once it had
taken a step. Stats go to every behavior's summaries, hence the per-behavior keys.

Difficulty (measured): uniformly random decisions practically never reach the goal, wall or
no wall (1 first episode in 1000 to 2000; two thirds fall off the platform, the rest time out),
yet PPO learns the course without a wall or with the small wall's default within about 100k
decisions (90% and more of the episodes), while with the big wall's default it is still at
10 to 20% after 300k to 400k: the jump from the block reaches the wall from about 2 units away
(a third of the blocks start that close), any other block has to be pushed there first.
:func:`scripted_policy` gets over all of these walls (99 to 100% of first episodes).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from unity_gym.base_env import (
    ActionSpec,
    BehaviorSpec,
)
from unity_gym.players.task import (
    EnvironmentParameterInfo,
    Task,
    TaskContext,
    vector_observation_spec,
)
from unity_gym.side_channel.stats_side_channel import StatsAggregationMethod

# -- the world (Unity's area-local x and z; heights above the floor) -------------------------------
PLATFORM_X = 10.5  # |x| <= 10.5
PLATFORM_Z = (-14.5, 6.5)
WALL_Z = (-2.73, -1.23)  # near and far faces; the wall spans the platform's width
WALL_CENTRE_Z = 0.5 * (WALL_Z[0] + WALL_Z[1])
GOAL_X = (4.37, 8.37)
GOAL_Z = (0.93, 4.93)
GOAL_TOP = 4.99  # Unity's goal trigger: 5 high, from 0.01 below the floor
START_X, START_Z = 9.0, -12.0  # x uniform in [-9, 9]
START_YAW = np.pi  # Unity's prefab faces away from the wall
AGENT_RADIUS = 0.5
BLOCK_HALF = 1.5
BLOCK_TOP = 2.0
# Unity's spawn volume reaches z = -2.77, 1.46 into the wall (Unity's physics then pushes the
# block back against it); blocks are drawn in the part clear of the wall instead.
BLOCK_SPAWN_X, BLOCK_SPAWN_Z = 8.1, (-9.77, WALL_Z[0] - BLOCK_HALF)
MAX_WALL_TOP = 10.0

# Parameters: (key, Unity's default).
BIG_WALL = ("big_wall_height", 8.0)
SMALL_WALL = ("small_wall_height", 4.0)
NO_WALL = ("no_wall_height", 0.0)

# -- motion, per academy step ----------------------------------------------------------------------
TURN = float(np.radians(6.0))
DAMPING = 0.8  # share of the horizontal velocity kept each academy step
TOP_SPEED = 0.15  # units per academy step on the ground
PUSH = TOP_SPEED * (1.0 - DAMPING)
SIDE_SHARE = 0.6  # a sideways step's strength
AIR_SHARE = 0.5  # pushes in the air
JUMP_STEPS = 10  # academy steps of rising (Unity's jumpingTime 0.2 s)
JUMP_HEIGHT = 2.25
RISE = JUMP_HEIGHT / JUMP_STEPS
FALL_ACCEL = 0.048  # (9.81 + 111) * 0.02**2
GROUND_CHECK = 0.55  # small ground check: a surface under the centre this close to the feet
LANDED = 0.05  # large ground check: full pushes
EPS = 1e-6

# Per action value: forward or backward, turn (yaw grows clockwise seen from above), sideways.
_FORWARD = np.array([0.0, 1.0, -1.0])
_TURNS = np.array([0.0, -TURN, TURN])
_SIDE = np.array([0.0, -SIDE_SHARE, SIDE_SHARE])
BRANCHES = (3, 3, 3, 2)

# -- rewards ---------------------------------------------------------------------------------------
MAX_STEP = 2000
STEP_PENALTY = 0.0005
GOAL_REWARD = 1.0
FALL_REWARD = -1.0

# -- rays ------------------------------------------------------------------------------------------
TAGS = ("wall", "goal", "block")
WALL, GOAL, BLOCK = range(len(TAGS))
MISS = len(TAGS)  # index of the "hit nothing" flag; the distance fraction follows it
FLOATS_PER_RAY = len(TAGS) + 2
RAYS_PER_SENSOR = 7
RAY_LENGTH = 20.0
CAST_RADIUS = 0.5
OFFSET_START = 2.5  # the offset sensor starts this far above the agent's centre ...
OFFSET_END = 5.0  # ... and ends this far above it, RAY_LENGTH away
OFFSET_CLIMB = (OFFSET_END - OFFSET_START) / RAY_LENGTH
STACK = 6
FRAME_SIZE = RAYS_PER_SENSOR * FLOATS_PER_RAY  # 35
VECTOR_SIZE = 4
SENSOR_NAMES = (
    "StackingSensor_size6_OffsetRayPerceptionSensor",
    "StackingSensor_size6_RayPerceptionSensor",
    "StackingSensor_size6_VectorSensor_size4",
)
# Unity's ray order: ahead, then right and left (clockwise is a growing yaw) at growing angles.
RAY_OFFSETS = np.radians([0.0, 30.0, -30.0, 60.0, -60.0, 90.0, -90.0])
# Row c: the floats of a ray with code c (a tag, or MISS), distance fraction left at 0.
_RAY_CODES = np.eye(MISS + 1, FLOATS_PER_RAY, dtype=np.float32)
# Shapes grown by the cast radius, as (low corner, high corner): the wall, the goal; the block's
# half size. The wall's x extent stands for "the whole width".
_WALL_LO = np.array([-1e6, WALL_Z[0] - CAST_RADIUS])
_WALL_HI = np.array([1e6, WALL_Z[1] + CAST_RADIUS])
_GOAL_LO = np.array([GOAL_X[0] - CAST_RADIUS, GOAL_Z[0] - CAST_RADIUS])
_GOAL_HI = np.array([GOAL_X[1] + CAST_RADIUS, GOAL_Z[1] + CAST_RADIUS])
_BLOCK_SEEN_HALF = BLOCK_HALF + CAST_RADIUS
_GOAL_CENTRE = np.array([sum(GOAL_X) / 2, sum(GOAL_Z) / 2])
_GOAL_HALF = np.array([(GOAL_X[1] - GOAL_X[0]) / 2, (GOAL_Z[1] - GOAL_Z[0]) / 2])
_TOUCH = 1e-6  # a cast starting this little inside a shape still sees it (touching)


def directions(yaw: np.ndarray) -> np.ndarray:
    """Unit ``(x, z)`` vectors of headings ``yaw`` (radians clockwise from +z): ``(..., 2)``."""
    return np.stack([np.sin(yaw), np.cos(yaw)], axis=-1)


def box_entry(
    origin: np.ndarray, direction: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Distance along unit ``direction`` from ``origin`` at which a line enters the box
    ``[lo, hi]`` (all ``(..., 2)``, broadcast), ``inf`` when it misses it or starts inside."""
    safe = np.where(direction == 0.0, 1e-12, direction)
    inverse = 1.0 / safe
    t1 = (lo - origin) * inverse
    t2 = (hi - origin) * inverse
    enter = np.minimum(t1, t2).max(axis=-1)
    leave = np.maximum(t1, t2).min(axis=-1)
    return np.where((enter < leave) & (enter >= -_TOUCH), np.maximum(enter, 0.0), np.inf)


def cast(
    position: np.ndarray,
    feet: np.ndarray,
    yaw: np.ndarray,
    wall_top: np.ndarray,
    block: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Both ray sensors' current floats: ``(offset, low)``, each ``(k, 35)`` float32.

    ``position`` ``(k, 2)``, ``feet`` (the agent's height) ``(k,)``, ``yaw`` ``(k,)``,
    ``wall_top`` ``(k,)`` (0: no wall), ``block`` centres ``(k, 2)``.
    """
    k = len(position)
    origin = position[:, None, :]
    ray = directions(yaw[:, None] + RAY_OFFSETS)  # (k, 7, 2)
    distance = np.empty((k, RAYS_PER_SENSOR, len(TAGS)))
    distance[:, :, WALL] = box_entry(origin, ray, _WALL_LO, _WALL_HI)
    distance[:, :, GOAL] = box_entry(origin, ray, _GOAL_LO, _GOAL_HI)
    half = _BLOCK_SEEN_HALF
    distance[:, :, BLOCK] = box_entry(
        origin, ray, block[:, None, :] - half, block[:, None, :] + half
    )
    tops = np.empty((k, 1, len(TAGS)))
    tops[:, 0, WALL] = wall_top
    tops[:, 0, GOAL] = GOAL_TOP
    tops[:, 0, BLOCK] = BLOCK_TOP
    low_feet = feet[:, None, None]
    out = []
    for bottom in (low_feet + OFFSET_START + OFFSET_CLIMB * np.minimum(distance, 1e6), low_feet):
        seen = np.where(bottom < tops, distance, np.inf)
        nearest = seen.argmin(axis=2)
        hit = seen.min(axis=2)
        code = np.where(hit <= RAY_LENGTH, nearest, MISS)
        floats = _RAY_CODES[code]  # (k, 7, 5)
        floats[:, :, MISS + 1] = np.minimum(hit * (1.0 / RAY_LENGTH), 1.0)
        out.append(floats.reshape(k, FRAME_SIZE))
    return out[0], out[1]


def wall_top_of(height: np.ndarray) -> np.ndarray:
    """Height above the floor of the top of a wall whose Unity scale is ``height``."""
    return np.clip(np.nan_to_num(height, nan=0.0) * 0.5 - 0.5, 0.0, MAX_WALL_TOP)


class WallJumpTask(Task):
    """Batched WallJump agents of one behavior, one per area (subclassed per behavior).

    State per agent, in area coordinates (``x``, ``z`` seen from above, heights from the
    floor): ``position`` and ``velocity`` ``(n, 2)`` (per academy step), ``yaw`` ``(n,)``
    (radians clockwise from +z), ``feet`` (height of the agent's bottom), ``vertical_speed``,
    ``rise_left`` (academy steps of jump rise left), ``block`` ``(n, 2)`` (its centre),
    ``wall_height`` (the parameter drawn) and ``wall_top`` ``(n,)``, all writable;
    ``support`` ``(n,)``, the height the agent stands or would land on, is to be read.

    A step costs a few dozen numpy calls on tiny arrays; contacts with the wall and the block
    and the goal are found with a few comparisons and handled only for the agents concerned.
    """

    behavior_name: ClassVar[str]
    big_wall: ClassVar[bool]
    stat_key: ClassVar[str]
    behavior_spec = BehaviorSpec(
        observation_specs=[
            vector_observation_spec(STACK * FRAME_SIZE, SENSOR_NAMES[0]),
            vector_observation_spec(STACK * FRAME_SIZE, SENSOR_NAMES[1]),
            vector_observation_spec(STACK * VECTOR_SIZE, SENSOR_NAMES[2]),
        ],
        action_spec=ActionSpec.create_discrete(BRANCHES),
    )
    agents_per_area = 1
    decision_period = 5
    max_step = MAX_STEP

    def __init__(self, num_agents: int, context: TaskContext) -> None:
        super().__init__(num_agents, context)
        n = num_agents
        self.position = np.zeros((n, 2))
        self.position[:, 1] = START_Z
        self.velocity = np.zeros((n, 2))
        self.yaw = np.full(n, START_YAW)
        self.feet = np.zeros(n)
        self.vertical_speed = np.zeros(n)
        self.rise_left = np.zeros(n, dtype=np.int64)
        self.block = np.zeros((n, 2))
        self.wall_height = np.zeros(n)
        self.wall_top = np.zeros(n)
        self.support = np.zeros(n)
        self.ground = np.zeros(n)
        self._stacks = [
            np.zeros((n, STACK, FRAME_SIZE), np.float32),
            np.zeros((n, STACK, FRAME_SIZE), np.float32),
            np.zeros((n, STACK, VECTOR_SIZE), np.float32),
        ]
        # Per action row, recomputed when the actions change.
        self._action_key = b""
        self._turn = np.zeros(n)
        self._forward = np.zeros(n)
        self._side = np.zeros(n)
        self._jump = np.zeros(n, dtype=bool)
        self._turning = self._moving = self._jumping = False
        self._steps = 0
        self._episode_start = np.zeros(n, dtype=np.int64)
        self._scored = np.zeros(n, dtype=bool)  # this episode's stats are already recorded

    # -- episodes ------------------------------------------------------------------------------

    def draw_wall_heights(self, count: int) -> np.ndarray:
        """This behavior's wall parameter for ``count`` new episodes (``ConfigureAgent``)."""
        parameters = self.context.parameters
        if self.big_wall:
            key, default = BIG_WALL
            heights = parameters.sample(key, default, count)
        else:
            heights = np.empty(count)
            small = self.rng.random(count) < 0.5
            for (key, default), chosen in ((SMALL_WALL, small), (NO_WALL, ~small)):
                drawn = int(np.count_nonzero(chosen))
                if drawn:
                    heights[chosen] = parameters.sample(key, default, drawn)
        return np.where(np.isnan(heights), BIG_WALL[1] if self.big_wall else 0.0, heights)

    def begin_episode(self, agents: np.ndarray) -> None:
        k = len(agents)
        self._record_unfinished(agents)
        heights = self.draw_wall_heights(k)
        tops = wall_top_of(heights)
        self.wall_height[agents] = heights
        self.wall_top[agents] = tops
        self.position[agents, 0] = self.rng.uniform(-START_X, START_X, k)
        self.position[agents, 1] = START_Z
        self.velocity[agents] = 0.0
        self.feet[agents] = 0.0
        self.vertical_speed[agents] = 0.0
        self.rise_left[agents] = 0
        self.support[agents] = 0.0
        self.ground[agents] = 0.0
        block = np.empty((k, 2))
        block[:, 0] = self.rng.uniform(-BLOCK_SPAWN_X, BLOCK_SPAWN_X, k)
        block[:, 1] = self.rng.uniform(*BLOCK_SPAWN_Z, k)
        self.block[agents] = block
        for stack in self._stacks:
            stack[agents] = 0.0
        self._episode_start[agents] = self._steps
        self._scored[agents] = False

    def _record_unfinished(self, agents: np.ndarray) -> None:
        """Stats of the episodes these agents leave unfinished (step limit or reset)."""
        unfinished = agents[(self._episode_start[agents] < self._steps) & ~self._scored[agents]]
        for _ in range(len(unfinished)):
            self._record(0.0)

    def _record(self, success: float) -> None:
        stats = self.context.stats
        stats.add("WallJump/SuccessRate", success, StatsAggregationMethod.AVERAGE)
        stats.add(self.stat_key, success, StatsAggregationMethod.AVERAGE)

    # -- steps ---------------------------------------------------------------------------------

    def _decode(self, discrete: np.ndarray) -> None:
        action = np.clip(discrete[:, :4], 0, np.array(BRANCHES) - 1)
        side = _SIDE[action[:, 2]]
        self._side = side
        self._forward = np.where(side != 0.0, 0.0, _FORWARD[action[:, 0]])
        self._turn = _TURNS[action[:, 1]]
        self._jump = action[:, 3] == 1
        self._turning = bool(np.count_nonzero(self._turn))
        self._moving = bool(np.count_nonzero(self._forward) or np.count_nonzero(side))
        self._jumping = bool(np.count_nonzero(self._jump))

    def act(
        self, continuous: np.ndarray, discrete: np.ndarray, rewards: np.ndarray
    ) -> np.ndarray | None:
        self._steps += 1
        key = discrete.tobytes()
        if key != self._action_key:  # actions change only at decisions
            self._action_key = key
            self._decode(discrete)
        position, velocity, yaw, feet = self.position, self.velocity, self.yaw, self.feet
        if self._turning:
            yaw += self._turn
        above = feet - self.support
        if self._jumping:
            start = self._jump & (self.rise_left <= 0) & (above <= LANDED) & self.grounded()
            if np.count_nonzero(start):
                self.rise_left[start] = JUMP_STEPS
        velocity *= DAMPING
        if self._moving:
            share = np.where(above <= LANDED, PUSH, PUSH * AIR_SHARE)
            sin, cos = np.sin(yaw), np.cos(yaw)
            forward, side = self._forward * share, self._side * share
            velocity[:, 0] += forward * sin + side * cos
            velocity[:, 1] += forward * cos - side * sin
        position += velocity
        rewards -= STEP_PENALTY
        block_moved = self._block_contacts()
        self._wall_contacts()
        self._vertical()
        return self._outcomes(rewards, block_moved)

    def _block_contacts(self) -> bool:
        """Agents below the block's top that reach it push it (the wall may stop it)."""
        position, block = self.position, self.block
        reach = BLOCK_HALF + AGENT_RADIUS
        offset = position - block
        near = (np.abs(offset) < reach).all(axis=1) & (self.feet < BLOCK_TOP - EPS)
        if not np.count_nonzero(near):
            return False
        agents = np.flatnonzero(near)
        p, b = position[agents], block[agents]
        normal, depth = _circle_box(p, b)
        pushing = depth > 0.0
        if not np.count_nonzero(pushing):
            return False
        agents, p, b = agents[pushing], p[pushing], b[pushing]
        normal, depth = normal[pushing], depth[pushing]
        b = b - normal * depth[:, None]  # out of the agent's way
        walled = (self.wall_top[agents] > 0.0) & (
            np.abs(b[:, 1] - WALL_CENTRE_Z) < BLOCK_HALF + 0.5 * (WALL_Z[1] - WALL_Z[0])
        )
        if np.count_nonzero(walled):  # back out of the wall, on the side it came from
            near_side = self.block[agents, 1] < WALL_CENTRE_Z
            stop = np.where(near_side, WALL_Z[0] - BLOCK_HALF, WALL_Z[1] + BLOCK_HALF)
            b[walled, 1] = stop[walled]
            normal, depth = _circle_box(p, b)
            stuck = walled & (depth > 0.0)
            if np.count_nonzero(stuck):  # the block stops the agent
                p[stuck] += normal[stuck] * depth[stuck, None]
                position[agents] = p
                moving = self.velocity[agents]
                inward = np.minimum(np.einsum("ki,ki->k", moving, normal), 0.0)
                moving[stuck] -= inward[stuck, None] * normal[stuck]
                self.velocity[agents] = moving
        block[agents] = b
        return True

    def _wall_contacts(self) -> None:
        """Agents below the wall's top that reach it are stopped on their side."""
        z = self.position[:, 1]
        reached = (z + AGENT_RADIUS > WALL_Z[0]) & (z - AGENT_RADIUS < WALL_Z[1])
        blocked = reached & (self.wall_top > self.feet + EPS)
        if not np.count_nonzero(blocked):
            return
        near_side = z[blocked] < WALL_CENTRE_Z
        self.position[blocked, 1] = np.where(
            near_side, WALL_Z[0] - AGENT_RADIUS, WALL_Z[1] + AGENT_RADIUS
        )
        self.velocity[blocked, 1] = 0.0

    def _vertical(self) -> None:
        """Rise, fall and land on the floor, the block or the wall."""
        position, feet = self.position, self.feet
        z = position[:, 1]
        support = np.zeros(self.num_agents)
        ground = np.zeros(self.num_agents)
        on_wall = (
            (z + AGENT_RADIUS > WALL_Z[0])
            & (z - AGENT_RADIUS < WALL_Z[1])
            & (self.wall_top <= feet + EPS)
        )
        if np.count_nonzero(on_wall):
            support = np.where(on_wall, self.wall_top, support)
            under = on_wall & (z > WALL_Z[0]) & (z < WALL_Z[1])
            ground = np.where(under, self.wall_top, ground)
        high = feet >= BLOCK_TOP - EPS
        if np.count_nonzero(high):
            over = high & _circle_box_overlap(position, self.block)
            support = np.where(over, np.maximum(support, BLOCK_TOP), support)
            under = over & (np.abs(position - self.block) < BLOCK_HALF).all(axis=1)
            ground = np.where(under, np.maximum(ground, BLOCK_TOP), ground)
        self.support = support
        self.ground = ground
        rising = self.rise_left > 0
        airborne = rising | (feet > support)
        if not np.count_nonzero(airborne):
            return
        if np.count_nonzero(rising):
            feet[rising] += RISE
            self.rise_left[rising] -= 1
            self.vertical_speed[rising] = 0.0
        falling = airborne & ~rising
        if np.count_nonzero(falling):
            speed = self.vertical_speed
            speed[falling] -= FALL_ACCEL
            feet[falling] += speed[falling]
            landed = falling & (feet <= support)
            feet[landed] = support[landed]
            speed[landed] = 0.0

    def grounded(self, agents: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Unity's small ground check: a surface under the agent's centre within 0.55 of its
        feet (what jumping, the goal and the grounded observation need)."""
        return self.feet[agents] - self.ground[agents] <= GROUND_CHECK

    def _outcomes(self, rewards: np.ndarray, block_moved: bool) -> np.ndarray | None:
        """Falling off the platform (agent or block) and reaching the goal end the episode."""
        x, z = self.position[:, 0], self.position[:, 1]
        fell = (np.abs(x) > PLATFORM_X) | (z < PLATFORM_Z[0]) | (z > PLATFORM_Z[1])
        if block_moved:
            bx, bz = self.block[:, 0], self.block[:, 1]
            fell |= (np.abs(bx) > PLATFORM_X) | (bz < PLATFORM_Z[0]) | (bz > PLATFORM_Z[1])
        reached = (
            (z > GOAL_Z[0] - AGENT_RADIUS)
            & (z < GOAL_Z[1] + AGENT_RADIUS)
            & (x > GOAL_X[0] - AGENT_RADIUS)
            & (x < GOAL_X[1] + AGENT_RADIUS)
        )
        if np.count_nonzero(reached):
            reached &= _circle_box_overlap(self.position, _GOAL_CENTRE, _GOAL_HALF)
            reached &= self.grounded()
            reached &= ~fell
        if not (np.count_nonzero(fell) or np.count_nonzero(reached)):
            return None
        rewards[fell] = FALL_REWARD
        rewards[reached] = GOAL_REWARD
        for _ in range(int(np.count_nonzero(fell))):
            self._record(0.0)
        for _ in range(int(np.count_nonzero(reached))):
            self._record(1.0)
        ended = fell | reached
        self._scored[ended] = True
        return ended

    # -- observations --------------------------------------------------------------------------

    def frame(self, agents: np.ndarray) -> list[np.ndarray]:
        """The current, unstacked frame of each sensor: ``(k, 35)``, ``(k, 35)``, ``(k, 4)``."""
        position, feet = self.position[agents], self.feet[agents]
        offset, low = cast(
            position, feet, self.yaw[agents], self.wall_top[agents], self.block[agents]
        )
        vector = np.empty((len(agents), VECTOR_SIZE), np.float32)
        vector[:, 0] = position[:, 0] / 20.0
        vector[:, 1] = (feet + 1.0) / 20.0
        vector[:, 2] = (position[:, 1] + 4.0) / 20.0
        vector[:, 3] = self.grounded(agents)
        return [offset, low, vector]

    def observe(self, agents: np.ndarray) -> list[np.ndarray]:
        """Each call is one report: it adds the current frame to these agents' stacks (Unity's
        ``StackingSensor`` advances each time the agent sends observations) and returns them."""
        every = len(agents) == self.num_agents
        out = []
        for stack, frame in zip(self._stacks, self.frame(agents), strict=True):
            if every:
                stack[:, :-1] = stack[:, 1:]
                stack[:, -1] = frame
                out.append(stack.reshape(len(agents), -1).copy())
            else:
                stacked = stack[agents]
                stacked[:, :-1] = stacked[:, 1:]
                stacked[:, -1] = frame
                stack[agents] = stacked
                out.append(stacked.reshape(len(agents), -1))
        return out


def _circle_box(position: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For agent circles at ``position`` and blocks at ``centre`` (``(k, 2)``): the unit normal
    from the block toward the agent and how deep the circle overlaps the block (<= 0: apart)."""
    offset = position - centre
    closest = np.clip(offset, -BLOCK_HALF, BLOCK_HALF)
    gap = offset - closest
    distance = np.linalg.norm(gap, axis=1)
    outside = distance > 1e-9
    normal = np.zeros_like(offset)
    normal[outside] = gap[outside] / distance[outside, None]
    if not outside.all():  # centre inside the block: out along the nearer face
        inside = ~outside
        depth_axis = BLOCK_HALF - np.abs(offset[inside])
        axis = depth_axis.argmin(axis=1)
        sign = np.where(offset[inside, axis] >= 0.0, 1.0, -1.0)
        normal[np.flatnonzero(inside), axis] = sign
        distance[inside] = -depth_axis.min(axis=1)
    return normal, AGENT_RADIUS - distance


def _circle_box_overlap(
    position: np.ndarray, centre: np.ndarray, half: np.ndarray | float = BLOCK_HALF
) -> np.ndarray:
    """Whether agent circles at ``position`` overlap boxes of ``half`` sizes at ``centre``."""
    offset = position - centre
    gap = offset - np.clip(offset, -half, half)
    return np.einsum("ki,ki->k", gap, gap) < AGENT_RADIUS**2


class BigWallJumpTask(WallJumpTask):
    """The agents facing the big wall (``big_wall_height``)."""

    behavior_name = "BigWallJump?team=0"
    big_wall = True
    stat_key = "WallJump/BigWallSuccessRate"
    environment_parameters = (
        EnvironmentParameterInfo(
            *BIG_WALL, "height (Unity scale) of the wall BigWallJump agents face; NaN: default"
        ),
    )


class SmallWallJumpTask(WallJumpTask):
    """The agents facing no wall (``no_wall_height``) or the small one (``small_wall_height``)."""

    behavior_name = "SmallWallJump?team=0"
    big_wall = False
    stat_key = "WallJump/SmallWallSuccessRate"
    environment_parameters = (
        EnvironmentParameterInfo(
            *SMALL_WALL,
            "height (Unity scale) of the small wall, which SmallWallJump agents face in half "
            "of their episodes (drawn each episode); NaN: 0",
        ),
        EnvironmentParameterInfo(
            *NO_WALL,
            "height (Unity scale) of the wall SmallWallJump agents face in the other half; NaN: 0",
        ),
    )


# -- a scripted player, acting on the observations -------------------------------------------------
# It knows the course (platform, wall, goal) but sees only what an agent sees: its position,
# height and grounded flag, and the rays, six frames of each. Its heading is not observed: it is
# found by matching the rays that see the wall or the goal against where they would be seen
# from each candidate heading, else taken from the last decision's motion.
_CANDIDATE_YAWS = np.radians(np.arange(0.0, 360.0, 2.0))
_CANDIDATE_RAYS = directions(_CANDIDATE_YAWS[:, None] + RAY_OFFSETS)  # (180, 7, 2)
_MATCH = 0.3  # distance tolerance of a matching ray
_BLOCK_GRID = np.stack(
    np.meshgrid(np.linspace(-2.6, 2.6, 27), np.linspace(-2.6, 2.6, 27)), axis=-1
).reshape(-1, 2)
_NEAR_FACE = WALL_Z[0] - AGENT_RADIUS  # the agent's z when pressed against the wall
_READY_GAP = 0.8  # a block this close to the wall is climbed as it is
_BEHIND = 2.6  # how far behind the block's centre the agent lines up to push it


def _frames(observations: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stacked observations -> offset rays ``(k, 6, 7, 5)``, low rays, vectors ``(k, 6, 4)``."""
    k = len(observations[2])
    offset = observations[0].reshape(k, STACK, RAYS_PER_SENSOR, FLOATS_PER_RAY)
    low = observations[1].reshape(k, STACK, RAYS_PER_SENSOR, FLOATS_PER_RAY)
    return offset, low, observations[2].reshape(k, STACK, VECTOR_SIZE)


def _codes(rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame's rays ``(7, 5)`` -> the code (tag or MISS) and distance of each ray."""
    return rays[:, : MISS + 1].argmax(axis=1), rays[:, MISS + 1] * RAY_LENGTH


def _estimate_yaw(position: np.ndarray, feet: float, rays: np.ndarray) -> float | None:
    """The heading that best explains the rays that see the wall or the goal, if one does."""
    code, seen = _codes(rays)
    code = np.where(seen < 0.05, -1, code)  # touching: seen from every nearby heading
    wall_seen = bool(np.any(code == WALL))
    if not (wall_seen or np.any(code == GOAL)):
        return None
    origin = position[None, None, :]
    predicted = np.full((len(_CANDIDATE_YAWS), RAYS_PER_SENSOR, 2), np.inf)
    if wall_seen:
        predicted[:, :, 0] = box_entry(origin, _CANDIDATE_RAYS, _WALL_LO, _WALL_HI)
    if feet < GOAL_TOP:
        predicted[:, :, 1] = box_entry(origin, _CANDIDATE_RAYS, _GOAL_LO, _GOAL_HI)
    nearest = predicted.min(axis=2)
    which = predicted.argmin(axis=2)  # WALL or GOAL
    nearest = np.where(nearest <= RAY_LENGTH, nearest, np.inf)
    tagged = (code == WALL) | (code == GOAL)
    matches = tagged & (which == code) & (np.abs(nearest - seen) < _MATCH)
    bad = np.where(tagged, ~matches, False)
    bad |= (code == BLOCK) & (nearest < seen - _MATCH)
    bad |= (code == MISS) & np.isfinite(nearest)
    error = np.where(matches, np.abs(nearest - seen), 0.0).sum(axis=1)
    score = bad.sum(axis=1) + 0.01 * error
    best = score <= score.min() + 0.5
    angles = _CANDIDATE_YAWS[best]
    mean = np.angle(np.exp(1j * angles).mean())
    if np.max(np.abs(np.angle(np.exp(1j * (angles - mean))))) > np.radians(25.0):
        return None
    return float(_CANDIDATE_YAWS[np.argmin(score)])


def _estimate_block(position: np.ndarray, yaw: float, rays: np.ndarray) -> np.ndarray | None:
    """The block's centre that best explains one frame's rays (None when none sees it)."""
    code, seen = _codes(rays)
    hits = code == BLOCK
    if not np.any(hits):
        return None
    ray = directions(yaw + RAY_OFFSETS)
    points = position + ray[hits] * seen[hits, None]
    centres = points.mean(axis=0) + _BLOCK_GRID  # candidates around the seen points
    # The block stays on the platform, and on the near side of the wall, clear of it.
    centres = centres[
        (np.abs(centres[:, 0]) <= PLATFORM_X) & (centres[:, 1] <= WALL_Z[0] - BLOCK_HALF + 0.05)
    ]
    if not len(centres):
        return None
    lo = centres[:, None, :] - _BLOCK_SEEN_HALF
    hi = centres[:, None, :] + _BLOCK_SEEN_HALF
    predicted = box_entry(position[None, None, :], ray[None], lo, hi)  # (candidates, 7)
    bad = np.where(hits, np.abs(predicted - seen) >= _MATCH, predicted < seen - _MATCH)
    score = bad.sum(axis=1) + 0.01 * np.where(hits, np.abs(predicted - seen), 0.0).sum(axis=1)
    best = score <= score.min() + 0.05
    return centres[best].mean(axis=0)


def _steer(
    yaw: float | None, position: np.ndarray, target: np.ndarray, moved: bool
) -> tuple[int, int]:
    """(forward, turn) actions heading for ``target``."""
    if yaw is None:  # heading unknown: go straight to learn it, or turn when at the back edge
        if moved or position[1] > PLATFORM_Z[0] + 1.3:
            return 1, 0
        return 0, 2
    way = target - position
    error = float(np.angle(np.exp(1j * (np.arctan2(way[0], way[1]) - yaw))))
    turn = 0 if abs(error) <= np.radians(15.0) else (2 if error > 0 else 1)
    forward = 1 if abs(error) < np.radians(60.0) else 0
    return forward, turn


def scripted_policy(observations: list[np.ndarray]) -> np.ndarray:
    """A scripted WallJump player for either behavior: over a wall, with the block when needed.

    ``observations``: the three stacked sensors, ``(n, 210)``, ``(n, 210)``, ``(n, 24)`` ->
    actions ``(n, 4)`` int32. Without a wall in sight it heads for the goal. With one, it
    fetches the block if it sees it: lines up behind it, pushes it against the wall, jumps onto
    it and from there over the wall (the height of a wall shows only from close by, so it takes
    the block along whether the wall needs it or not); without the block, it jumps at the wall
    when its offset rays do not see it from its foot (a top under 2.5, so a top between 2.25
    and 2.5, ``h`` from 5.5 to 6, defeats it) and else goes back to look for the block.
    """
    offset, low, vectors = _frames(observations)
    actions = np.zeros((len(vectors), 4), np.int32)
    for row in range(len(vectors)):
        actions[row] = _decide(offset[row], low[row], vectors[row])
    return actions


def _pose(
    vectors: np.ndarray, low: np.ndarray, frame: int
) -> tuple[np.ndarray, float, float | None, bool]:
    """Position, height, heading estimate (or None) and whether it moved, at one stacked frame."""
    now = vectors[frame]
    position = np.array([now[0] * 20.0, now[2] * 20.0 - 4.0])
    feet = float(now[1] * 20.0 - 1.0)
    before = vectors[frame - 1] if frame > 0 else None
    moved = False
    step = None
    if before is not None and before[1] > 0:  # a zero frame precedes the episode
        step = position - np.array([before[0] * 20.0, before[2] * 20.0 - 4.0])
        moved = float(np.linalg.norm(step)) > 0.15
    yaw = _estimate_yaw(position, feet, low[frame])
    if yaw is None and moved and step is not None:
        yaw = float(np.arctan2(step[0], step[1]))
    return position, feet, yaw, moved


def _remembered_block(vectors: np.ndarray, low: np.ndarray, yaw: float | None) -> np.ndarray | None:
    """The block's centre as the newest frame that saw it shows it."""
    for frame in range(STACK - 1, -1, -1):
        if vectors[frame, 1] <= 0:  # before the episode
            return None
        if not np.any(low[frame, :, BLOCK] == 1.0):
            continue
        if frame == STACK - 1:
            heading = yaw
            position = np.array([vectors[frame, 0] * 20.0, vectors[frame, 2] * 20.0 - 4.0])
        else:
            position, _, heading, _ = _pose(vectors, low, frame)
        if heading is not None:
            return _estimate_block(position, heading, low[frame])
    return None


def _decide(offset: np.ndarray, low: np.ndarray, vectors: np.ndarray) -> tuple[int, int, int, int]:
    position, feet, yaw, moved = _pose(vectors, low, STACK - 1)
    x, z = position
    on_floor = feet < BLOCK_TOP - 0.2  # on the floor, or in a jump from it
    # Past the wall, or on top of it: to the goal.
    if z > WALL_Z[1] + AGENT_RADIUS or (feet > 0.3 and z > _NEAR_FACE + 0.05):
        return (*_steer(yaw, position, _GOAL_CENTRE, moved), 0, 0)
    ahead = np.array([x, WALL_Z[1]])
    if not on_floor:  # on the block (or in the air): on toward the wall, jumping
        grounded = vectors[-1, 3] == 1.0
        block = _remembered_block(vectors, low, yaw)
        if not grounded and not moved and block is not None:
            # Caught on the block's edge (its centre off the block: no jumping): step onto it.
            facing = 0.0 if yaw is None else yaw
            right = np.array([np.cos(facing), -np.sin(facing)])
            side = 2 if float(np.dot(block - position, right)) > 0 else 1
            return 0, 0, side, 0
        return (*_steer(yaw, position, ahead, moved), 0, 1)
    if feet > 0.3 and (yaw is None or abs(np.angle(np.exp(1j * yaw))) < np.radians(90.0)):
        turn = _steer(yaw, position, ahead, moved)[1]
        return 1, turn, 0, 0  # in a jump toward the wall or the block: keep going
    code, seen = _codes(low[-1])
    behind_flush_block = abs(z - (WALL_Z[0] - 2 * BLOCK_HALF - AGENT_RADIUS)) < 0.3
    if behind_flush_block and not moved and bool(np.any((code == BLOCK) & (seen < 0.05))):
        return 1, 0, 0, 1  # stopped against the block, which the wall stops: climb it
    wall_known = bool(np.any(low[:, :, WALL] == 1.0))
    if not wall_known:
        return (*_steer(yaw, position, _GOAL_CENTRE, moved), 0, 0)
    block = _remembered_block(vectors, low, yaw)
    pressed = z >= _NEAR_FACE - 0.1
    if block is None:
        if pressed:
            high = bool(np.any(offset[-1, :, WALL] == 1.0))
            if not high:
                return (*_steer(yaw, position, ahead, moved), 0, 1)
            return (*_steer(yaw, position, np.array([np.clip(x, -7.0, 7.0), -9.0]), moved), 0, 0)
        target = np.array([np.clip(x, -8.5, 8.5), WALL_Z[0]])
        return (*_steer(yaw, position, target, moved), 0, 0)
    cx, cz = block
    behind = z < cz - (BLOCK_HALF + AGENT_RADIUS) + 0.1
    aligned = abs(x - cx) < 1.0
    ready = cz >= WALL_Z[0] - BLOCK_HALF - _READY_GAP
    if behind and aligned:  # push it on, or climb it once it is at the wall
        touching = z >= cz - (BLOCK_HALF + AGENT_RADIUS) - 0.3
        jump = int(ready and touching)
        return (*_steer(yaw, position, np.array([cx, WALL_Z[1]]), moved), 0, jump)
    # Line up behind it, going round it when beside or in front of it.
    line_z = max(cz - _BEHIND, PLATFORM_Z[0] + 1.2)
    around = 1.0 if x >= cx else -1.0  # the block's side to pass on
    if abs(cx + around * 3.2) > 8.5:
        around = -around
    if not behind and abs(x - cx) < 2.8:
        target = np.array([cx + around * 3.2, z])
    elif not behind:
        target = np.array([cx + around * 3.2, line_z])
    else:
        target = np.array([cx, line_z])
    return (*_steer(yaw, position, target, moved), 0, 0)
