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

import functools

import numpy as np

from unity_gym.base_env import (
    ActionSpec,
    BehaviorSpec,
    DimensionProperty,
    ObservationSpec,
    ObservationType,
)
from unity_gym.players.task import EnvironmentParameterInfo, Task, TaskContext
from unity_gym.side_channel.stats_side_channel import StatsAggregationMethod

IMAGE_HEIGHT, IMAGE_WIDTH = 64, 84
DEFAULT_GRID_SIZE = 5
MAX_GRID_SIZE = 30  # keeps every cell at least 2 pixels wide
STEP_PENALTY = 0.01
GOAL_REWARD, PIT_REWARD = 1.0, -1.0
# Per action index (none, up, down, left, right): change of x and of z (z grows upwards).
_MOVES = np.array([(0, 0), (0, 1), (0, -1), (-1, 0), (1, 0)], dtype=np.int64)
_OUTSIDE, _WALL, _FLOOR, _AGENT, _GOAL, _PIT = range(6)
PALETTE = np.array(
    [(0, 0, 0), (96, 96, 96), (224, 224, 224), (40, 90, 230), (30, 200, 60), (220, 40, 40)],
    dtype=np.uint8,
)


class GridWorldTask(Task):
    """Batched GridWorld agents: one per area."""

    behavior_name = "GridWorld?team=0"
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
    environment_parameters = (
        EnvironmentParameterInfo(
            "gridSize",
            DEFAULT_GRID_SIZE,
            f"cells per side of the square grid, rounded and clipped to [2, {MAX_GRID_SIZE}]",
        ),
    )

    def __init__(self, num_agents: int, context: TaskContext) -> None:
        super().__init__(num_agents, context)
        self.size = np.full(num_agents, DEFAULT_GRID_SIZE, dtype=np.int64)
        # Cell coordinates (x, z) of the agent, the goal and the pit (views of one array).
        self._cells = np.zeros((num_agents, 3, 2), dtype=np.int64)
        self.agent, self.goal, self.pit = (self._cells[:, i] for i in range(3))

    def begin_episode(self, agents: np.ndarray) -> None:
        sizes = self.context.parameters.sample("gridSize", DEFAULT_GRID_SIZE, len(agents))
        sizes = np.clip(np.rint(sizes), 2, MAX_GRID_SIZE).astype(np.int64)
        self.size[agents] = sizes
        for agent, size in zip(agents.tolist(), sizes.tolist(), strict=True):
            cells = self.rng.choice(size * size, 3, replace=False)
            self._cells[agent] = np.column_stack([cells % size, cells // size])

    def act(
        self, continuous: np.ndarray, discrete: np.ndarray, rewards: np.ndarray
    ) -> np.ndarray | None:
        moved = self.agent + _MOVES[discrete[:, 0]]
        # Moves are single steps along an axis, so clamping to the grid ignores moves into
        # a wall.
        np.maximum(moved, 0, out=moved)
        np.minimum(moved, self.size[:, None] - 1, out=moved)
        self.agent[:] = moved
        rewards -= STEP_PENALTY
        reached = (self._cells[:, 1:] == moved[:, None]).all(axis=2)  # goal, pit
        if not np.count_nonzero(reached):
            return None
        at_goal, at_pit = reached[:, 0], reached[:, 1]
        ended = at_goal | at_pit
        rewards[at_goal] = GOAL_REWARD
        rewards[at_pit] = PIT_REWARD
        for value in at_goal[ended].tolist():
            self.context.stats.add(
                "GridWorld/GoalReachedRate", float(value), StatsAggregationMethod.AVERAGE
            )
        return ended

    def action_mask(self, agents: np.ndarray) -> np.ndarray | None:
        rows = [
            (False, z == last, z == 0, x == 0, x == last)
            for (x, z), last in zip(
                self.agent[agents].tolist(), (self.size[agents] - 1).tolist(), strict=True
            )
        ]
        return np.array(rows, dtype=bool).reshape(len(agents), 5)

    def observe(self, agents: np.ndarray) -> list[np.ndarray]:
        images = np.empty((len(agents), IMAGE_HEIGHT, IMAGE_WIDTH, 3), dtype=np.uint8)
        layers = zip(self.size[agents].tolist(), self._cells[agents].tolist(), strict=True)
        for image, (size, (agent, goal, pit)) in zip(images, layers, strict=True):
            frame = _frame(size)
            image[:] = frame.image
            for (x, z), colour in ((goal, _GOAL), (pit, _PIT), (agent, _AGENT)):
                top, left = frame.cell_origin(x, z)
                image[top : top + frame.pixels, left : left + frame.pixels] = PALETTE[colour]
        return [images]


class _Frame:
    """The empty grid of one size (walls and floor, centred on black), and where cells are."""

    def __init__(self, size: int) -> None:
        cells = size + 2
        self.size = size
        self.pixels = min(IMAGE_HEIGHT, IMAGE_WIDTH) // cells
        span = self.pixels * cells
        self.top, self.left = (IMAGE_HEIGHT - span) // 2, (IMAGE_WIDTH - span) // 2
        codes = np.full((cells, cells), _WALL, dtype=np.uint8)
        codes[1:-1, 1:-1] = _FLOOR
        canvas = np.full((IMAGE_HEIGHT, IMAGE_WIDTH), _OUTSIDE, dtype=np.uint8)
        pixels = codes.repeat(self.pixels, 0).repeat(self.pixels, 1)
        canvas[self.top : self.top + span, self.left : self.left + span] = pixels
        self.image = PALETTE[canvas]

    def cell_origin(self, x: int, z: int) -> tuple[int, int]:
        """Top-left pixel (row, column) of cell (x, z); image row 0 is the top (largest z)."""
        return self.top + (self.size - z) * self.pixels, self.left + (x + 1) * self.pixels


@functools.cache
def _frame(size: int) -> _Frame:
    return _Frame(size)
