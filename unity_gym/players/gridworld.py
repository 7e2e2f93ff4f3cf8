"""GridWorld: reach the green cell and avoid the red one, seen through a top-down camera.

One agent per area on a square grid (``gridSize`` environment parameter, default 5, read at
each episode start) surrounded by walls. Each episode places the agent, the green goal and
the red pit on three distinct random cells. Observation: one RGB image, 84 wide and 64 high,
sent as PNG with shape (3, 64, 84); cells are drawn as squares (wall grey, floor light grey,
agent blue, goal green, pit red) centred on black. Discrete branch of 5: 0 stays, 1 up,
2 down, 3 left, 4 right; moves into a wall are masked (and ignored if taken anyway). Each
step costs 0.01; entering the goal sets the reward to 1, the pit to -1, both ending the
episode.
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
from unity_gym.players.task import Task, TaskContext
from unity_gym.side_channel.stats_side_channel import StatsAggregationMethod

IMAGE_HEIGHT, IMAGE_WIDTH = 64, 84
DEFAULT_GRID_SIZE = 5
MAX_GRID_SIZE = 30  # keeps every cell at least 2 pixels wide
STEP_PENALTY = 0.01
GOAL_REWARD, PIT_REWARD = 1.0, -1.0
# Per action index (none, up, down, left, right): change of x and of z (z grows upwards).
_DX = np.array([0, 0, 0, -1, 1], dtype=np.int64)
_DZ = np.array([0, 1, -1, 0, 0], dtype=np.int64)
_OUTSIDE, _WALL, _FLOOR, _AGENT, _GOAL, _PIT = range(6)
PALETTE = np.array(
    [(0, 0, 0), (96, 96, 96), (224, 224, 224), (40, 90, 230), (30, 200, 60), (220, 40, 40)],
    dtype=np.uint8,
)


class GridWorldTask(Task):
    """Batched GridWorld agents: one per area."""

    behavior_name = "GridWorld"
    behavior_spec = BehaviorSpec(
        observation_specs=[
            ObservationSpec(
                shape=(3, IMAGE_HEIGHT, IMAGE_WIDTH),
                dimension_property=(
                    DimensionProperty.NONE,
                    DimensionProperty.TRANSLATIONAL_EQUIVARIANCE,
                    DimensionProperty.TRANSLATIONAL_EQUIVARIANCE,
                ),
                observation_type=ObservationType.DEFAULT,
                name="CameraSensor",
            )
        ],
        action_spec=ActionSpec.create_discrete((5,)),
    )
    agents_per_area = 1
    decision_period = 1
    max_step = 100

    def __init__(self, num_agents: int, context: TaskContext) -> None:
        super().__init__(num_agents, context)
        self.size = np.full(num_agents, DEFAULT_GRID_SIZE, dtype=np.int64)
        # Cell coordinates (x, z) of the agent, the goal and the pit.
        self.agent = np.zeros((num_agents, 2), dtype=np.int64)
        self.goal = np.zeros((num_agents, 2), dtype=np.int64)
        self.pit = np.zeros((num_agents, 2), dtype=np.int64)

    def begin_episode(self, agents: np.ndarray) -> None:
        sizes = self.context.parameters.sample("gridSize", DEFAULT_GRID_SIZE, len(agents))
        sizes = np.clip(np.rint(sizes), 2, MAX_GRID_SIZE).astype(np.int64)
        self.size[agents] = sizes
        for agent, size in zip(agents.tolist(), sizes.tolist(), strict=True):
            cells = self.rng.choice(size * size, 3, replace=False)
            placed = np.column_stack([cells % size, cells // size])
            self.agent[agent], self.goal[agent], self.pit[agent] = placed

    def act(self, continuous: np.ndarray, discrete: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        action = discrete[:, 0]
        moved = self.agent + np.column_stack([_DX[action], _DZ[action]])
        inside = ((moved >= 0) & (moved < self.size[:, None])).all(axis=1)
        self.agent = np.where(inside[:, None], moved, self.agent)
        rewards -= STEP_PENALTY
        at_goal = (self.agent == self.goal).all(axis=1)
        at_pit = (self.agent == self.pit).all(axis=1)
        rewards[at_goal] = GOAL_REWARD
        rewards[at_pit] = PIT_REWARD
        ended = at_goal | at_pit
        for value in at_goal[ended].tolist():
            self.context.stats.add(
                "GridWorld/GoalReachedRate", float(value), StatsAggregationMethod.AVERAGE
            )
        return ended

    def action_mask(self, agents: np.ndarray) -> np.ndarray | None:
        x, z = self.agent[agents, 0], self.agent[agents, 1]
        last = self.size[agents] - 1
        mask = np.zeros((len(agents), 5), dtype=bool)
        mask[:, 1] = z == last
        mask[:, 2] = z == 0
        mask[:, 3] = x == 0
        mask[:, 4] = x == last
        return mask

    def observe(self, agents: np.ndarray) -> list[np.ndarray]:
        images = np.empty((len(agents), IMAGE_HEIGHT, IMAGE_WIDTH, 3), dtype=np.uint8)
        sizes = self.size[agents]
        for size in np.unique(sizes).tolist():
            rows = np.flatnonzero(sizes == size)
            images[rows] = self.render(agents[rows], size)
        return [images]

    def render(self, agents: np.ndarray, size: int) -> np.ndarray:
        """Top-down images ``(k, 64, 84, 3)`` of agents whose grids all have ``size`` cells."""
        k, cells = len(agents), size + 2
        codes = np.full((k, cells, cells), _WALL, dtype=np.uint8)
        codes[:, 1:-1, 1:-1] = _FLOOR
        rows = np.arange(k)
        for layer, code in ((self.goal, _GOAL), (self.pit, _PIT), (self.agent, _AGENT)):
            x, z = layer[agents, 0], layer[agents, 1]
            codes[rows, size - z, x + 1] = code  # image row 0 is the top (largest z)
        pixels = min(IMAGE_HEIGHT, IMAGE_WIDTH) // cells
        span = pixels * cells
        top, left = (IMAGE_HEIGHT - span) // 2, (IMAGE_WIDTH - span) // 2
        canvas = np.full((k, IMAGE_HEIGHT, IMAGE_WIDTH), _OUTSIDE, dtype=np.uint8)
        canvas[:, top : top + span, left : left + span] = codes.repeat(pixels, 1).repeat(pixels, 2)
        return PALETTE[canvas]
