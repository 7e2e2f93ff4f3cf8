"""Scripted policies for the built-in players, acting on what the Python side observes.

Each heuristic maps a behavior's :class:`~unity_gym.base_env.DecisionSteps` (observations as
``UnityEnvironment`` delivers them: floats, visual ones channel-first in [0, 1]) to an
:class:`~unity_gym.base_env.ActionTuple`, so it drives a player through the low-level API like
a trained model would: ``unity-sb3 record-demo --heuristic`` records demonstrations with them.
Players without an obvious one (Pyramids) have none: :func:`heuristic_for` says so.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from unity_gym.base_env import ActionTuple, DecisionSteps
from unity_gym.players import basic, gridworld, strikers_vs_goalie
from unity_gym.players.tennis import tracking_policy
from unity_gym.players.wall_jump import scripted_policy as wall_jump_policy

Heuristic = Callable[[DecisionSteps], ActionTuple]


def basic_heuristic(steps: DecisionSteps) -> ActionTuple:
    """Walk toward the goal whose return (reward minus step costs) is higher: 0.93 from 10."""
    position = steps.obs[0].argmax(axis=1)
    large = basic.LARGE_REWARD - basic.STEP_PENALTY * np.abs(basic.LARGE_GOAL - position)
    small = basic.SMALL_REWARD - basic.STEP_PENALTY * np.abs(basic.SMALL_GOAL - position)
    target = np.where(large >= small, basic.LARGE_GOAL, basic.SMALL_GOAL)
    # Actions: 0 stays, 1 steps left, 2 steps right.
    action = np.where(target > position, 2, np.where(target < position, 1, 0))
    return ActionTuple(discrete=action.astype(np.int32)[:, None])


# 3DBall: tilt the platform so that the ball is pushed back toward the centre (a PD law on
# the ball's position and velocity), reaching the wanted tilt within one decision.
BALL_POSITION_GAIN = 0.04  # wanted quaternion component per unit of ball offset
BALL_VELOCITY_GAIN = 0.04  # ... per unit/s of ball velocity
BALL_TILT_PER_DECISION = 0.087  # quaternion change of a full action over 5 academy steps


def ball3d_heuristic(steps: DecisionSteps) -> ActionTuple:
    """PD controller: a positive z turn sends the ball toward -x, a positive x turn toward +z."""
    obs = steps.obs[0]
    quat_z, quat_x = obs[:, 0], obs[:, 1]
    ball_x, ball_z, speed_x, speed_z = obs[:, 2], obs[:, 4], obs[:, 5], obs[:, 7]
    want_z = BALL_POSITION_GAIN * ball_x + BALL_VELOCITY_GAIN * speed_x
    want_x = -(BALL_POSITION_GAIN * ball_z + BALL_VELOCITY_GAIN * speed_z)
    actions = np.stack([want_z - quat_z, want_x - quat_x], axis=1) / BALL_TILT_PER_DECISION
    return ActionTuple(continuous=np.clip(actions, -1.0, 1.0).astype(np.float32))


# GridWorld actions: 0 stays, 1 up (image rows decrease), 2 down, 3 left, 4 right.
_GRID_MOVES = {1: (-1, 0), 2: (1, 0), 3: (0, -1), 4: (0, 1)}  # (row, column) cell change


def gridworld_heuristic(steps: DecisionSteps) -> ActionTuple:
    """Head for the green cell along the longer axis first, never stepping onto the red one."""
    images = np.rint(np.moveaxis(steps.obs[0], 1, -1) * 255.0).astype(np.uint8)
    masks = steps.action_mask[0] if steps.action_mask else np.zeros((len(images), 5), bool)
    actions = np.zeros(len(images), np.int32)
    for row, (image, forbidden) in enumerate(zip(images, masks, strict=True)):
        actions[row] = _grid_action(image, forbidden)
    return ActionTuple(discrete=actions[:, None])


def _grid_action(image: np.ndarray, forbidden: np.ndarray) -> int:
    def cell_of(colour: int) -> np.ndarray | None:
        pixels = np.argwhere((image == gridworld.PALETTE[colour]).all(axis=2))
        return pixels.mean(axis=0) if len(pixels) else None

    agent, goal, pit = (cell_of(c) for c in (gridworld._AGENT, gridworld._GOAL, gridworld._PIT))
    if agent is None or goal is None:
        return 0
    size = np.sqrt(np.count_nonzero((image == gridworld.PALETTE[gridworld._AGENT]).all(axis=2)))
    offset = np.rint((goal - agent) / size)
    pit_offset = None if pit is None else np.rint((pit - agent) / size)
    toward = sorted(
        (a for a, move in _GRID_MOVES.items() if np.dot(move, offset) > 0),
        key=lambda a: -abs(np.dot(_GRID_MOVES[a], offset)),
    )
    sideways = [a for a in _GRID_MOVES if a not in toward]
    for action in toward + sideways:
        lands_on_pit = pit_offset is not None and np.array_equal(_GRID_MOVES[action], pit_offset)
        if not forbidden[action] and not lands_on_pit:
            return action
    return 0


def tennis_heuristic(steps: DecisionSteps) -> ActionTuple:
    """Keep the racket under the ball (:func:`~unity_gym.players.tennis.tracking_policy`)."""
    return ActionTuple(continuous=tracking_policy(steps.obs[0]))


def strikers_vs_goalie_heuristic(steps: DecisionSteps) -> ActionTuple:
    """The striker gets behind the ball and pushes it past the goalie; the goalie stays between
    ball and goal (:mod:`~unity_gym.players.strikers_vs_goalie`'s scripted players). The two
    behaviors are told apart by their observation sizes (14 and 10)."""
    obs = steps.obs[0]
    if obs.shape[1] == strikers_vs_goalie.STRIKER_OBSERVATION_SIZE:
        return ActionTuple(discrete=strikers_vs_goalie.striker_policy(obs))
    return ActionTuple(discrete=strikers_vs_goalie.goalie_policy(obs))


def wall_jump_heuristic(steps: DecisionSteps) -> ActionTuple:
    """Either behavior: to the goal, over the wall, pushing the block against it and climbing it
    first when the wall is in the way (:func:`~unity_gym.players.wall_jump.scripted_policy`,
    which finds its heading and the block from the rays)."""
    return ActionTuple(discrete=wall_jump_policy(list(steps.obs)))


# Player name -> its heuristic, used for every behavior of the player.
HEURISTICS: dict[str, Heuristic] = {
    "Basic": basic_heuristic,
    "3DBall": ball3d_heuristic,
    "GridWorld": gridworld_heuristic,
    "Tennis": tennis_heuristic,
    "StrikersVsGoalie": strikers_vs_goalie_heuristic,
    "WallJump": wall_jump_heuristic,
}


class NoHeuristicError(KeyError):
    """The player has no built-in heuristic."""

    def __init__(self, player: str) -> None:
        self.player = player
        super().__init__(player)

    def __str__(self) -> str:
        return (
            f"the built-in player {self.player} has no heuristic (players with one: "
            f"{', '.join(HEURISTICS)}); drive it with a trained model instead (--model FILE.onnx)"
        )


def heuristic_for(player: str) -> Heuristic:
    """The heuristic of built-in player ``player`` (as :func:`get_player` names it)."""
    try:
        return HEURISTICS[player]
    except KeyError:
        raise NoHeuristicError(player) from None
