"""Pyramids: press a switch, which raises a pyramid somewhere else, then reach its gold brick.

Modelled on ML-Agents' Pyramids, whose agent must find and press a button that makes a pyramid
of bricks appear, go to that pyramid, knock it over and touch the gold brick from its top. The
reward is sparse: nothing but a small cost per step until the gold brick is reached, so random
play rarely succeeds and the task is a test bed for exploration bonuses (curiosity, RND).

World (top view, one agent per area): a square area of side ``areaSize`` (environment
parameter, default 20 units, read at each episode start, clipped to [10, 60]) closed by walls
and cut into a 3 x 3 grid of spots. Each episode shuffles the nine spots, as Unity's agent
does: the agent starts in the first (at rest, facing a random direction), the switch lies in
the second, the gold pyramid will rise in the third, and the other six hold stone pyramids
(``stonePyramids``, default 6, clipped to [0, 6]; spots left over stay empty). Objects sit
at a random point of their spot at least 1.5 units from its edges. All shapes are circles:
the agent (radius 0.5), the switch (0.5, flat: the agent crosses it), stone pyramids (1.0,
solid: the agent slides along them) and the gold pyramid's bricks (1.0) with the gold brick
(0.5) on top. The agent presses the switch when its centre comes within 1.0 of the switch's;
the switch then stays on and the gold pyramid appears. Touching the pyramid (centres within
1.5) knocks it over onto the agent: that is reaching the gold brick.

Rooms (environment parameter ``rooms``, read at each episode start): with 1, the default, the
spots are rooms, as in Unity's area (a 99-unit square in 3 x 3 rooms): inner walls (0.5
thick) along the lines at a third and two thirds of the side, each solid except for a doorway
into every neighbouring room, at Unity's proportions: along a line, solid from the outer wall
to 0.1465 of the side, a doorway to 0.2576, solid to 0.4091, the middle doorway to 0.5909, and
mirrored on. Inner walls stop the agent (it slides along them), block every ray and read
``wall``, so the agent sees its own room and through doorways only. With 0 the area is one open
square, where the rays see every wall from anywhere.

Actions: one discrete branch of 5, as Unity's agent reads them: 0 nothing, 1 forward,
2 backward, 3 turn right (clockwise seen from above), 4 turn left. Timing follows Unity's
Pyramids: a decision every 5 academy steps (actions repeat in between) and at most 5000
academy steps (1000 decisions) per episode. Each academy step turns the agent by 4 degrees
(Unity's 200 degrees/s at 0.02 s; 20 degrees per decision) or pushes it along its heading:
the velocity keeps 0.8 of itself each academy step and gains 0.03 units along the push, so
the top speed is 0.15 units per academy step (0.75 per decision; crossing the default area
takes about 27 decisions). Walls and stones stop the velocity's part toward them.

Rewards, as ML-Agents documents them: -0.0002 each academy step (-1/5000, so -0.001 per
decision and -1 over a whole episode), and reaching the gold brick *sets* the step's reward
to +2 (Unity's ``SetReward``) and ends the episode; a step at which the pyramid is touched
reports exactly 2.0. Nothing else is rewarded: pressing the switch gives nothing by itself.

Observations (sensors sorted by name, as Unity sorts them, so the vector comes last):

- three ray sensors of 7 rays each, 56 floats laid out like Unity's ``RayPerceptionSensor``:
  per ray 8 floats: one-hot of the tag hit, in the order ``block`` (the gold pyramid's bricks),
  ``wall``, ``goal`` (the gold brick), ``switchOff``, ``switchOn``, ``stone`` (stone pyramids),
  then 1 when the ray hit nothing, then the hit distance divided by the ray length (20 units;
  1 when nothing was hit). Rays come in Unity's order: ray 0 straight ahead, then alternately
  to the right and to the left at growing angles (ray 1 right, ray 2 left, ...).

  * ``RaysLowForward``: at floor height, 20 degrees apart (up to 60 each side); sees the
    switch, stones, the gold pyramid's bricks and walls.
  * ``RaysLowWide``: at floor height, 50 degrees apart (up to 150 each side), the same things.
  * ``RaysRaised``: above the pyramids, 20 degrees apart like the first; passes over the switch,
    stones and bricks and sees only walls and, once it is there, the gold brick (``goal``).

  A ray starting inside a circle (the agent standing on the switch) does not see it.
- ``VectorSensor_size4``: the switch state (1 on, 0 off), then the agent's velocity in its own
  frame (right, up, forward) divided by the top speed: each in [-1, 1], up always 0.

Stats: at each episode end ``Pyramids/SuccessRate`` (1 when the gold brick was reached, else
0) and ``Pyramids/SwitchRate`` (1 when the switch had been pressed), both averaged; an episode
cut short by the step limit or a reset counts as a failure once it had taken a step.

Difficulty: with the defaults (rooms), uniformly random decisions press the switch in about 16%
of episodes and reach the gold brick in about 1.4%; ``areaSize`` tunes it (random success about
3.8% at 16, 0.6% at 24, 0.2% at 28), e.g. as a curriculum. In one open area (``rooms`` 0) they
press the switch in about 22% and succeed in about 3% (8% at 16, 26% at 12, 42% at 10).
"""

from __future__ import annotations

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

# -- the world ---------------------------------------------------------------------------------
DEFAULT_AREA_SIZE, MIN_AREA_SIZE, MAX_AREA_SIZE = 20.0, 10.0, 60.0
MAX_STONES = 6
SPOTS_PER_SIDE = 3
SPOT_MARGIN = 1.5  # an object's centre keeps this far from the edges of its spot
AGENT_RADIUS = 0.5
SWITCH_RADIUS = 0.5
STONE_RADIUS = 1.0
PYRAMID_RADIUS = 1.0  # the gold pyramid's bricks
GOLD_RADIUS = 0.5  # the gold brick on top, as the raised rays see it
PRESS_DISTANCE = AGENT_RADIUS + SWITCH_RADIUS
TOUCH_DISTANCE = AGENT_RADIUS + PYRAMID_RADIUS

# -- rooms (environment parameter ``rooms``) --------------------------------------------------
# Unity's area (AreaPB) is a 3 x 3 grid of rooms, one per spot: inner walls along the lines at a
# third and two thirds of the side, with a doorway into each neighbouring room. Solid stretches
# along each line as fractions of the side, from Unity's 99-unit area (14.5-unit stubs from the
# outer walls, 15-unit crosses where the lines meet); the gaps between them are the doorways
# (0.11 and, in the middle, 0.18 of the side wide).
_INNER_SOLID = np.array([[0.0, 0.1465], [0.2576, 0.4091], [0.5909, 0.7424], [0.8535, 1.0]])
_INNER_LINES = np.array([1.0, 2.0]) / SPOTS_PER_SIDE
INNER_WALL_HALF_THICKNESS = 0.25
# The inner walls as 16 rectangles (x or z low, high), in fractions of the side, plus padding.
_rects = [
    ((line, a), (line, b)) if axis == 0 else ((a, line), (b, line))
    for axis in (0, 1)
    for line in _INNER_LINES
    for a, b in _INNER_SOLID
]
_RECT_LOW = np.array([low for low, _ in _rects])
_RECT_HIGH = np.array([high for _, high in _rects])
_RECT_PAD = np.array(
    [[INNER_WALL_HALF_THICKNESS, 0.0]] * 8 + [[0.0, INNER_WALL_HALF_THICKNESS]] * 8
)
DEFAULT_ROOMS = 1.0
NO_ROOMS = -1e6  # where rectangles of an area without rooms lie: never near anything

# -- motion, per academy step ------------------------------------------------------------------
TURN = float(np.radians(4.0))
DAMPING = 0.8  # share of the velocity kept each academy step
TOP_SPEED = 0.15  # units per academy step, reached by pushing one way for long
PUSH = TOP_SPEED * (1.0 - DAMPING)
# Per action (nothing, forward, backward, turn right, turn left): heading change, push.
_TURNS = np.array([0.0, 0.0, 0.0, -TURN, TURN])
_PUSHES = np.array([0.0, PUSH, -PUSH, 0.0, 0.0])

# -- rewards -----------------------------------------------------------------------------------
MAX_STEP = 5000
STEP_PENALTY = 1.0 / MAX_STEP
GOLD_REWARD = 2.0

# -- rays --------------------------------------------------------------------------------------
TAGS = ("block", "wall", "goal", "switchOff", "switchOn", "stone")
BLOCK, WALL, GOAL, SWITCH_OFF, SWITCH_ON, STONE = range(len(TAGS))
MISS = len(TAGS)  # index of the "hit nothing" flag; the distance fraction follows it
FLOATS_PER_RAY = len(TAGS) + 2
RAYS_PER_SENSOR = 7
RAY_FLOATS = RAYS_PER_SENSOR * FLOATS_PER_RAY  # one sensor's observation
RAY_LENGTH = 20.0
SENSOR_NAMES = ("RaysLowForward", "RaysLowWide", "RaysRaised")
_SPACING_DEGREES = (20.0, 50.0, 20.0)  # angle between neighbouring rays, per sensor
_LOW = (True, True, False)  # per sensor: at floor height (else raised)


def _ray_offsets(spacing: float) -> list[float]:
    """Unity's ray order: ahead, then right and left (clockwise is negative) at growing angles."""
    offsets = [0.0]
    for i in range(1, RAYS_PER_SENSOR // 2 + 1):
        offsets += [-i * spacing, i * spacing]
    return offsets


RAY_OFFSETS = np.radians(np.concatenate([_ray_offsets(s) for s in _SPACING_DEGREES]))
NUM_RAYS = len(RAY_OFFSETS)


# Objects of an area, in this order: the switch while off, the switch once on (same place; one
# of the two is present), the stones, the gold pyramid.
SWITCH_OFF_OBJECT, SWITCH_ON_OBJECT, PYRAMID_OBJECT = 0, 1, 2 + MAX_STONES
_STONES = slice(2, PYRAMID_OBJECT)
NUM_OBJECTS = PYRAMID_OBJECT + 1
# What each ray sees of each object: its squared radius (-1: never seen) and its tag. Low rays
# see the switch, stones and bricks; raised rays only the gold brick.
_low = np.repeat(_LOW, RAYS_PER_SENSOR)  # per ray
_RAY_RADIUS2 = np.full((NUM_RAYS, NUM_OBJECTS), -1.0)
_RAY_RADIUS2[_low, SWITCH_OFF_OBJECT : SWITCH_ON_OBJECT + 1] = SWITCH_RADIUS**2
_RAY_RADIUS2[_low, _STONES] = STONE_RADIUS**2
_RAY_RADIUS2[_low, PYRAMID_OBJECT] = PYRAMID_RADIUS**2
_RAY_RADIUS2[~_low, PYRAMID_OBJECT] = GOLD_RADIUS**2
_RAY_TAGS = np.zeros((NUM_RAYS, NUM_OBJECTS), dtype=np.int64)
_RAY_TAGS[:, SWITCH_OFF_OBJECT] = SWITCH_OFF
_RAY_TAGS[:, SWITCH_ON_OBJECT] = SWITCH_ON
_RAY_TAGS[:, _STONES] = STONE
_RAY_TAGS[:, PYRAMID_OBJECT] = np.where(_low, BLOCK, GOAL)
_RAY_TAGS_FLAT = _RAY_TAGS.ravel()
_RAY_ROWS = np.arange(NUM_RAYS) * NUM_OBJECTS  # add an object index: index into the flat tags
# Row c: the floats of a ray with code c (a tag, or MISS), distance fraction left at 0.
_RAY_CODES = np.eye(MISS + 1, FLOATS_PER_RAY, dtype=np.float32)
# Contact distances, squared, centre to centre (an on switch is not touched again).
_CONTACT2 = np.full(NUM_OBJECTS, -1.0)
_CONTACT2[SWITCH_OFF_OBJECT] = PRESS_DISTANCE**2
_CONTACT2[_STONES] = (AGENT_RADIUS + STONE_RADIUS) ** 2
_CONTACT2[PYRAMID_OBJECT] = TOUCH_DISTANCE**2


class PyramidsTask(Task):
    """Batched Pyramids agents: one per area.

    State per agent, in area coordinates (x, z from the corner at (0, 0), seen from above):
    ``position`` and ``velocity`` (``(n, 2)``; velocity per academy step), ``heading``
    (``(n,)``, radians counter-clockwise from +x) and the objects' centres
    ``switch_position`` ``(n, 2)``, ``stone_positions`` ``(n, 6, 2)`` and
    ``pyramid_position`` ``(n, 2)``, all writable (the centres are views). The pyramid's place
    is drawn at the episode start; it appears there when the switch is pressed
    (:meth:`press_switch`). ``size`` (``(n,)``, the area's side, drawn at the episode start),
    ``switch_on`` and ``pyramid_present`` (``(n,)`` bool, read-only views) are to be read.

    A step costs a dozen or so numpy calls on tiny arrays whatever happens; contacts (walls,
    stones, the switch, the pyramid) are found with two comparisons and handled only when one
    occurs. Observations are one batch of ray-circle and ray-wall intersections for all rays.
    """

    behavior_name = "Pyramids?team=0"
    behavior_spec = BehaviorSpec(
        observation_specs=[
            *(vector_observation_spec(RAY_FLOATS, name) for name in SENSOR_NAMES),
            vector_observation_spec(4),
        ],
        action_spec=ActionSpec.create_discrete((5,)),
    )
    agents_per_area = 1
    decision_period = 5
    max_step = MAX_STEP
    environment_parameters = (
        EnvironmentParameterInfo(
            "areaSize",
            DEFAULT_AREA_SIZE,
            f"side of the square area, clipped to [{MIN_AREA_SIZE:g}, {MAX_AREA_SIZE:g}]",
        ),
        EnvironmentParameterInfo(
            "rooms",
            DEFAULT_ROOMS,
            "1: Unity's 3 x 3 rooms, inner walls with doorways between them; 0: one open area",
        ),
        EnvironmentParameterInfo(
            "stonePyramids",
            MAX_STONES,
            f"stone pyramids (decoys) placed, rounded and clipped to [0, {MAX_STONES}]",
        ),
    )

    def __init__(self, num_agents: int, context: TaskContext) -> None:
        super().__init__(num_agents, context)
        n = num_agents
        self.size = np.full(n, DEFAULT_AREA_SIZE)
        self._high = np.full((n, 1), DEFAULT_AREA_SIZE - AGENT_RADIUS)  # largest x or z
        self.position = np.full((n, 2), DEFAULT_AREA_SIZE / 2)
        self.velocity = np.zeros((n, 2))
        self.heading = np.zeros(n)
        self.rooms = np.zeros(n, dtype=bool)
        # Inner walls per agent as rectangles (low and high corners; NO_ROOMS without rooms).
        self._wall_low = np.full((n, len(_RECT_LOW), 2), NO_ROOMS)
        self._wall_high = np.full((n, len(_RECT_LOW), 2), NO_ROOMS)
        self.centres = np.zeros((n, NUM_OBJECTS, 2))
        self.switch_position = self.centres[:, SWITCH_OFF_OBJECT]
        self.stone_positions = self.centres[:, _STONES]
        self.pyramid_position = self.centres[:, PYRAMID_OBJECT]
        self._present = np.zeros((n, NUM_OBJECTS), dtype=bool)
        self.switch_on = self._present[:, SWITCH_ON_OBJECT].view()
        self.switch_on.flags.writeable = False
        self.pyramid_present = self._present[:, PYRAMID_OBJECT].view()
        self.pyramid_present.flags.writeable = False
        # Caches of _present: squared radius per agent, ray and object (-1 where absent or
        # unseen), and squared contact distance per agent and object (-1: no contact).
        self._radius2 = np.full((n, NUM_RAYS, NUM_OBJECTS), -1.0)
        self._contact2 = np.full((n, NUM_OBJECTS), -1.0)
        # Per action row, recomputed when the actions change: heading change and push.
        self._action_key = b""
        self._turn = np.zeros(n)
        self._push = np.zeros((n, 1))
        self._turning = self._pushing = False
        self._direction = np.zeros((n, 2))
        self._offset = np.zeros((n, NUM_OBJECTS, 2))
        self._steps = 0
        self._episode_start = np.zeros(n, dtype=np.int64)
        self._scored = np.zeros(n, dtype=bool)  # this episode's stats are already recorded

    # -- episodes ------------------------------------------------------------------------------

    def begin_episode(self, agents: np.ndarray) -> None:
        k = len(agents)
        self._record_unfinished(agents)
        parameters = self.context.parameters
        sizes = parameters.sample("areaSize", DEFAULT_AREA_SIZE, k)
        sizes = np.clip(np.nan_to_num(sizes, nan=DEFAULT_AREA_SIZE), MIN_AREA_SIZE, MAX_AREA_SIZE)
        stones = parameters.sample("stonePyramids", MAX_STONES, k)
        stones = np.clip(np.rint(np.nan_to_num(stones)), 0, MAX_STONES)
        rooms = np.nan_to_num(parameters.sample("rooms", DEFAULT_ROOMS, k)) >= 0.5
        # Spots in shuffled order: agent, switch, pyramid, then the stones.
        spots = self.rng.random((k, SPOTS_PER_SIDE**2)).argsort(axis=1)
        cell = (sizes / SPOTS_PER_SIDE)[:, None, None]
        corner = np.stack([spots % SPOTS_PER_SIDE, spots // SPOTS_PER_SIDE], axis=2) * cell
        spread = cell - 2.0 * SPOT_MARGIN
        places = corner + SPOT_MARGIN + self.rng.random((k, SPOTS_PER_SIDE**2, 2)) * spread
        self.size[agents] = sizes
        self._high[agents, 0] = sizes - AGENT_RADIUS
        self.rooms[agents] = rooms
        side = sizes[:, None, None]
        self._wall_low[agents] = np.where(
            rooms[:, None, None], side * _RECT_LOW - _RECT_PAD, NO_ROOMS
        )
        self._wall_high[agents] = np.where(
            rooms[:, None, None], side * _RECT_HIGH + _RECT_PAD, NO_ROOMS
        )
        self.position[agents] = places[:, 0]
        self.velocity[agents] = 0.0
        self.heading[agents] = self.rng.uniform(0.0, 2.0 * np.pi, k)
        self.centres[agents, SWITCH_OFF_OBJECT] = places[:, 1]
        self.centres[agents, PYRAMID_OBJECT] = places[:, 2]
        self.centres[agents, _STONES] = places[:, 3:]
        present = np.zeros((k, NUM_OBJECTS), dtype=bool)
        present[:, SWITCH_OFF_OBJECT] = True
        present[:, _STONES] = np.arange(MAX_STONES) < stones[:, None]
        self._set_present(agents, present)
        self._episode_start[agents] = self._steps
        self._scored[agents] = False

    def press_switch(self, agents: np.ndarray) -> None:
        """Turn on these agents' switches (the agent touching it does): the pyramid appears."""
        present = self._present[agents]
        present[:, SWITCH_OFF_OBJECT] = False
        present[:, SWITCH_ON_OBJECT] = True
        present[:, PYRAMID_OBJECT] = True
        self.centres[agents, SWITCH_ON_OBJECT] = self.centres[agents, SWITCH_OFF_OBJECT]
        self._set_present(agents, present)

    def _set_present(self, agents: np.ndarray, present: np.ndarray) -> None:
        self._present[agents] = present
        self._radius2[agents] = np.where(present[:, None, :], _RAY_RADIUS2, -1.0)
        self._contact2[agents] = np.where(present, _CONTACT2, -1.0)

    def _record_unfinished(self, agents: np.ndarray) -> None:
        """Stats of the episodes these agents leave unfinished (step limit or reset)."""
        unfinished = agents[(self._episode_start[agents] < self._steps) & ~self._scored[agents]]
        stats = self.context.stats
        for pressed in self.switch_on[unfinished].tolist():
            stats.add("Pyramids/SuccessRate", 0.0, StatsAggregationMethod.AVERAGE)
            stats.add("Pyramids/SwitchRate", float(pressed), StatsAggregationMethod.AVERAGE)

    # -- steps ---------------------------------------------------------------------------------

    def act(
        self, continuous: np.ndarray, discrete: np.ndarray, rewards: np.ndarray
    ) -> np.ndarray | None:
        self._steps += 1
        key = discrete.tobytes()
        if key != self._action_key:  # actions change only at decisions
            self._action_key = key
            action = np.clip(discrete[:, 0], 0, len(_TURNS) - 1)
            self._turn = _TURNS[action]
            self._push = _PUSHES[action][:, None]
            self._turning = bool(np.count_nonzero(self._turn))
            self._pushing = bool(np.count_nonzero(self._push))
        heading, velocity, position = self.heading, self.velocity, self.position
        if self._turning:
            heading += self._turn
        velocity *= DAMPING
        if self._pushing:
            direction = self._direction
            np.cos(heading, out=direction[:, 0])
            np.sin(heading, out=direction[:, 1])
            direction *= self._push
            velocity += direction
        position += velocity
        if self.rooms.any():
            self._inner_walls()
        rewards -= STEP_PENALTY
        offset = np.subtract(position[:, None, :], self.centres, out=self._offset)
        distance2 = np.einsum("nmi,nmi->nm", offset, offset)
        contact = distance2 < self._contact2
        walled = (position < AGENT_RADIUS) | (position > self._high)
        if not (np.count_nonzero(contact) or np.count_nonzero(walled)):
            return None
        return self._contacts(contact, rewards)

    def _inner_walls(self) -> None:
        """Rooms' inner walls stop the agent as stones do: back onto the wall's edge, no
        velocity into it."""
        position, velocity = self.position, self.velocity
        nearest = np.clip(position[:, None, :], self._wall_low, self._wall_high)  # (n, 16, 2)
        away = position[:, None, :] - nearest
        distance2 = np.einsum("nwi,nwi->nw", away, away)
        agents, walls = np.nonzero(distance2 < AGENT_RADIUS**2)
        if not len(agents):
            return
        away = away[agents, walls]
        length = np.sqrt(distance2[agents, walls])
        # A centre on the wall itself (never at these speeds) is pushed back along its motion.
        inside = length < 1e-9
        away[inside] = -velocity[agents[inside]]
        length[inside] = np.maximum(np.linalg.norm(away[inside], axis=1), 1e-12)
        self._slide(agents, nearest[agents, walls], away / length[:, None], AGENT_RADIUS)

    def _slide(
        self, agents: np.ndarray, surface: np.ndarray, normal: np.ndarray, gap: float
    ) -> None:
        """Put these agents ``gap`` from the ``surface`` points along the unit ``normal`` (away
        from what they hit) and drop their velocity's part into it: they slide along."""
        self.position[agents] = surface + normal * gap
        moving = self.velocity[agents]
        inward = np.minimum(np.einsum("ki,ki->k", moving, normal), 0.0)
        self.velocity[agents] = moving - inward[:, None] * normal

    def _contacts(self, contact: np.ndarray, rewards: np.ndarray) -> np.ndarray | None:
        """The rare steps with a contact: walls and stones stop, the switch, the gold brick."""
        position, velocity = self.position, self.velocity
        agents, stones = np.nonzero(contact[:, _STONES])
        if len(agents):  # slide along the stone: back onto its edge, no velocity into it
            stones += _STONES.start
            centre = self.centres[agents, stones]
            away = position[agents] - centre
            normal = away / np.maximum(np.linalg.norm(away, axis=1), 1e-12)[:, None]
            self._slide(agents, centre, normal, AGENT_RADIUS + STONE_RADIUS)
        walled = (position < AGENT_RADIUS) | (position > self._high)  # after any stone push
        if np.count_nonzero(walled):
            np.clip(position, AGENT_RADIUS, self._high, out=position)
            velocity[walled] = 0.0
        pressed = np.flatnonzero(contact[:, SWITCH_OFF_OBJECT])
        if len(pressed):
            self.press_switch(pressed)
        reached = contact[:, PYRAMID_OBJECT]
        if not np.count_nonzero(reached):
            return None
        rewards[reached] = GOLD_REWARD
        stats = self.context.stats
        for _ in range(int(np.count_nonzero(reached))):
            stats.add("Pyramids/SuccessRate", 1.0, StatsAggregationMethod.AVERAGE)
            stats.add("Pyramids/SwitchRate", 1.0, StatsAggregationMethod.AVERAGE)
        self._scored[reached] = True
        return reached

    # -- observations --------------------------------------------------------------------------

    def observe(self, agents: np.ndarray) -> list[np.ndarray]:
        every = len(agents) == self.num_agents
        heading = self.heading if every else self.heading[agents]
        velocity = self.velocity if every else self.velocity[agents]
        state = np.zeros((len(agents), 4), dtype=np.float32)
        state[:, 0] = self.switch_on if every else self.switch_on[agents]
        cos, sin = np.cos(heading), np.sin(heading)
        state[:, 1] = (velocity[:, 0] * sin - velocity[:, 1] * cos) / TOP_SPEED  # right
        state[:, 3] = (velocity[:, 0] * cos + velocity[:, 1] * sin) / TOP_SPEED  # forward
        rays = self.rays(agents).reshape(len(agents), len(SENSOR_NAMES), -1)
        return [rays[:, 0], rays[:, 1], rays[:, 2], state]

    def rays(self, agents: np.ndarray) -> np.ndarray:
        """``(k, 3 * 56)`` float32: the three ray sensors' floats of these agents, in order."""
        k = len(agents)
        every = k == self.num_agents
        position = self.position if every else self.position[agents]
        heading = self.heading if every else self.heading[agents]
        centres = self.centres if every else self.centres[agents]
        radius2 = self._radius2 if every else self._radius2[agents]
        angles = heading[:, None] + RAY_OFFSETS
        direction = np.empty((k, NUM_RAYS, 2))
        np.cos(angles, out=direction[:, :, 0])
        np.sin(angles, out=direction[:, :, 1])
        # Circles: a ray from p along unit d meets the circle (c, r) where t = b - sqrt(b^2 - q)
        # with b = d.(c - p) and q = |c - p|^2 - r^2. It sees the circle when that root is
        # real and positive, i.e. when the ray starts outside (q > 0) and heads toward it
        # (b > 0). Absent and unseen objects have r^2 = -1: never a real root.
        towards = centres - position[:, None, :]  # (k, objects, 2)
        b = np.matmul(direction, towards.transpose(0, 2, 1))  # (k, rays, objects)
        q = np.einsum("kmi,kmi->km", towards, towards)[:, None, :] - radius2
        root2 = b * b - q
        t = b - np.sqrt(np.maximum(root2, 0.0))
        distance = np.where((t > 0.0) & (root2 >= 0.0), t, np.inf)
        nearest = distance.argmin(axis=2)
        object_distance = distance.min(axis=2)  # (k, rays)
        tag = _RAY_TAGS_FLAT[nearest + _RAY_ROWS]
        # Walls at 0 and size on each axis: from u = p - size/2 along d, the wall ahead on an
        # axis is (size/2) / |d| - u / d away; the nearer axis's wall is the one hit.
        inverse = np.divide(1.0, direction, out=np.full_like(direction, 1e12), where=direction != 0)
        half = (self.size if every else self.size[agents]) * 0.5
        centred = position - half[:, None]
        to_wall = np.abs(inverse) * half[:, None, None] - centred[:, None, :] * inverse
        wall_distance = to_wall.min(axis=2)
        rooms = self.rooms if every else self.rooms[agents]
        if rooms.any():
            inner = self._inner_wall_distance(position, direction, 2.0 * half)
            wall_distance = np.where(
                rooms[:, None], np.minimum(wall_distance, inner), wall_distance
            )
        hit_distance = np.minimum(object_distance, wall_distance)
        code = np.where(object_distance < wall_distance, tag, WALL)
        code[hit_distance > RAY_LENGTH] = MISS
        out = _RAY_CODES[code]  # (k, rays, 8)
        np.minimum(hit_distance * (1.0 / RAY_LENGTH), 1.0, out=out[:, :, MISS + 1])
        return out.reshape(k, NUM_RAYS * FLOATS_PER_RAY)

    @staticmethod
    def _inner_wall_distance(
        position: np.ndarray, direction: np.ndarray, size: np.ndarray
    ) -> np.ndarray:
        """``(k, rays)``: how far each ray runs to the rooms' inner walls (inf: it meets none).

        A ray crossing an inner wall line meets the wall's near face unless it crosses where
        a doorway is."""
        distance = np.full(direction.shape[:2], np.inf)
        side = size[:, None, None]
        for axis in (0, 1):
            along = direction[:, :, axis, None]  # (k, rays, 1)
            face = side * _INNER_LINES - np.sign(along) * INNER_WALL_HALF_THICKNESS
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (face - position[:, None, axis, None]) / along  # (k, rays, lines)
            cross = (position[:, None, 1 - axis, None] + t * direction[:, :, 1 - axis, None]) / side
            solid = (
                (cross[..., None] >= _INNER_SOLID[:, 0]) & (cross[..., None] <= _INNER_SOLID[:, 1])
            ).any(axis=3)
            hits = np.where(solid & (t > 0.0), t, np.inf)
            np.minimum(distance, hits.min(axis=2), out=distance)
        return distance
