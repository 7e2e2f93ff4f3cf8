"""The built-in environments' rules and physics, through the academy but without gRPC."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from unity_gym.communicator_objects.agent_info_pb2 import AgentInfoProto
from unity_gym.communicator_objects.unity_rl_input_pb2 import UnityRLInputProto
from unity_gym.communicator_objects.unity_rl_output_pb2 import UnityRLOutputProto
from unity_gym.players import get_player
from unity_gym.players.academy import Academy
from unity_gym.players.ball3d import SERVO_STALL_TORQUE, Ball3DTask
from unity_gym.players.channels import PlayerChannels
from unity_gym.players.gridworld import PALETTE, GridWorldTask
from unity_gym.players.sensors import PngWriter
from unity_gym.players.task import TaskContext
from unity_gym.rpc_utils import decode_observation
from unity_gym.side_channel.environment_parameters_channel import ParameterSampler

pytestmark = pytest.mark.protocol

Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _context(seed: int = 0, **parameters: float) -> TaskContext:
    channels = PlayerChannels()
    for key, value in parameters.items():
        channels.parameters.set(key, ParameterSampler(None, (value,)))
    return TaskContext(np.random.default_rng(seed), channels.parameters, channels.stats, 1)


class Episodes:
    """Plays an academy with a policy over decoded observations, recording finished episodes."""

    def __init__(self, name: str, areas: int = 1, seed: int = 0, **academy_kwargs: object) -> None:
        player = get_player(name)
        self.behavior = player.tasks[0].behavior_name
        self.spec = player.tasks[0].behavior_spec
        self.academy = Academy(player.tasks, **academy_kwargs)  # type: ignore[arg-type]
        self.academy.initialize(seed, areas)
        self.out = UnityRLOutputProto()
        self.academy.reset(self.out)
        self.returns: dict[int, float] = {}
        self.finished: list[tuple[float, int, bool]] = []  # (return, decisions, interrupted)
        self.decisions: dict[int, int] = {}

    def run(self, policy: Policy, exchanges: int, seed: int = 0) -> Episodes:
        rng = np.random.default_rng(seed)
        for _ in range(exchanges):
            infos = list(self.out.agentInfos[self.behavior].value)
            for info in infos:
                self.returns[info.id] = self.returns.get(info.id, 0.0) + info.reward
                if info.done:
                    self.finished.append(
                        (
                            self.returns.pop(info.id),
                            self.decisions.pop(info.id, 0),
                            info.max_step_reached,
                        )
                    )
            deciding = [i for i in infos if not i.done]
            for info in deciding:
                self.decisions[info.id] = self.decisions.get(info.id, 0) + 1
            rl_input = UnityRLInputProto()
            if deciding:
                obs = np.stack([decode_observation(i.observations[0]) for i in deciding])
                actions = policy(obs, rng)
                target = rl_input.agent_actions[self.behavior].value
                for row in actions:
                    if self.spec.action_spec.continuous_size:
                        target.add(continuous_actions=row.tolist())
                    else:
                        target.add(discrete_actions=row.astype(int).tolist())
            self.out = UnityRLOutputProto()
            self.academy.step(rl_input.agent_actions, self.out)
        return self


def _random_continuous(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-1, 1, (len(obs), 2))


def _balancing_controller(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """PD control: tilt the platform against the ball's offset and velocity."""
    rotation_z, rotation_x = obs[:, 0], obs[:, 1]
    x, z, vx, vz = obs[:, 2], obs[:, 4], obs[:, 5], obs[:, 7]
    target_z = np.clip(0.1 * (x + vx), -0.2, 0.2)  # raise the side the ball is heading to
    target_x = -np.clip(0.1 * (z + vz), -0.2, 0.2)
    return np.clip(5.0 * np.column_stack([target_z - rotation_z, target_x - rotation_x]), -1, 1)


# -- Basic ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "decisions", "episode_return"),
    [(2, 7, 1.0 - 0.07), (1, 3, 0.1 - 0.03)],
)
def test_basic_goals(action: int, decisions: int, episode_return: float) -> None:
    episodes = Episodes("Basic").run(lambda obs, rng: np.full((len(obs), 1), action), 30)
    first_return, first_decisions, interrupted = episodes.finished[0]
    assert first_decisions == decisions and not interrupted
    assert first_return == pytest.approx(episode_return, abs=1e-5)


def test_basic_staying_put_hits_the_step_limit() -> None:
    episodes = Episodes("Basic").run(lambda obs, rng: np.zeros((len(obs), 1)), 101)
    assert episodes.finished[0][1:] == (100, True)
    assert episodes.finished[0][0] == pytest.approx(-1.0, abs=1e-4)


def test_basic_observation_is_one_hot_position() -> None:
    episodes = Episodes("Basic").run(lambda obs, rng: np.full((len(obs), 1), 2), 2)
    obs = decode_observation(episodes.out.agentInfos["Basic?team=0"].value[0].observations[0])
    assert obs.tolist() == [1.0 if i == 12 else 0.0 for i in range(20)]


# -- 3DBall --------------------------------------------------------------------------------


def test_3dball_random_play_drops_the_ball_within_a_few_dozen_decisions() -> None:
    episodes = Episodes("3DBall", areas=2).run(_random_continuous, 200)
    lengths = [d for _, d, _ in episodes.finished]
    assert len(lengths) > 24
    assert 5 < np.median(lengths) < 40
    assert all(r < 10 for r, _, _ in episodes.finished)


def test_3dball_controller_balances_until_the_step_limit() -> None:
    episodes = Episodes("3DBall", max_step=1000).run(_balancing_controller, 2 * 200 + 2)
    assert len(episodes.finished) == 24  # every agent, twice: only the step limit ends them
    for episode_return, decisions, interrupted in episodes.finished:
        assert interrupted and decisions == 200
        assert episode_return == pytest.approx(0.1 * 200, abs=0.2)


def test_3dball_initial_state_and_observation_layout() -> None:
    task = Ball3DTask(12, _context())
    task.begin_episode(np.arange(12))
    obs = task.observe(np.arange(12))[0]
    assert obs.shape == (12, 8) and np.issubdtype(obs.dtype, np.floating)
    assert np.all(np.abs(obs[:, :2]) <= np.sin(np.radians(5.0)) + 1e-6)  # +-10 degree tilt
    assert np.all(np.abs(obs[:, [2, 4]]) <= 1.5) and np.all(obs[:, 3] == 4.0)
    assert np.all(obs[:, 5:] == 0.0)


def test_3dball_actions_are_clipped_and_the_tilt_is_limited() -> None:
    tasks = [Ball3DTask(1, _context(gravity=0.0)) for _ in range(2)]
    for task, action in zip(tasks, (1.0, 50.0), strict=True):
        task.begin_episode(np.arange(1))
        for _ in range(40):
            task.act(np.array([[action, -action]], np.float32), np.zeros((1, 0)), np.zeros(1))
    assert np.array_equal(tasks[0].tilt, tasks[1].tilt)
    rotation = tasks[0].quaternion_zx()[0]
    assert 0.25 <= rotation[0] < 0.27 and -0.27 < rotation[1] <= -0.25


def test_3dball_ball_rolls_downhill_to_the_raised_side_s_opposite() -> None:
    task = Ball3DTask(1, _context())
    task.begin_episode(np.arange(1))
    task.tilt = np.array([[np.radians(10.0), 0.0]])  # +x side raised
    task.position[0] = [0.0, 0.0]  # x, z
    rewards = np.zeros(1)
    for _ in range(70):  # about 40 steps falling, then rolling
        task.act(np.zeros((1, 2), np.float32), np.zeros((1, 0)), rewards)
    x, z = task.position[0]
    assert x < -0.5 and abs(z) < 1e-9
    assert task.on_plate[0] and rewards[0] == pytest.approx(0.1)


def test_3dball_without_gravity_the_ball_stays_put() -> None:
    task = Ball3DTask(12, _context(gravity=0.0))
    task.begin_episode(np.arange(12))
    start = task.observe(np.arange(12))[0][:, 2:5]
    for _ in range(200):
        ended = task.act(np.ones((12, 2), np.float32), np.zeros((12, 0)), np.zeros(12))
        assert ended is None or not ended.any()
    assert np.array_equal(task.observe(np.arange(12))[0][:, 2:5], start)


def test_3dball_scale_and_mass_parameters_change_the_ball() -> None:
    def settled(**parameters: float) -> np.ndarray:
        task = Ball3DTask(12, _context(seed=3, **parameters))
        task.begin_episode(np.arange(12))
        task.tilt = np.full((12, 2), np.radians(5.0))
        task.position[:] = 0.0
        for _ in range(80):  # falls, lands, rolls
            task.act(np.zeros((12, 2), np.float32), np.zeros((12, 0)), np.zeros(12))
        assert task.on_plate.all()
        return task.observe(np.arange(12))[0]

    default, big, light = settled(), settled(scale=3.0), settled(mass=0.05)
    # A 3 times larger ball rests 1 unit higher (radius 1.5 instead of 0.5).
    assert np.allclose(big[:, 3] - default[:, 3], 1.0, atol=0.1)
    # Drag slows a light ball: it has rolled less far.
    assert np.all(np.abs(light[:, 2]) < np.abs(default[:, 2]))


# -- GridWorld -----------------------------------------------------------------------------


def _grid(agent: tuple[int, int], goal=(4, 4), pit=(0, 4), size: int = 5) -> GridWorldTask:
    task = GridWorldTask(1, _context())
    task.begin_episode(np.arange(1))
    task.size[0] = size
    task.agent[0], task.goal[0], task.pit[0] = agent, goal, pit
    return task


def _move(task: GridWorldTask, action: int) -> tuple[bool, float]:
    rewards = np.zeros(1)
    ended = task.act(np.zeros((1, 0), np.float32), np.array([[action]], np.int32), rewards)
    return ended is not None and bool(ended[0]), float(rewards[0])


def test_gridworld_masks_moves_into_walls_and_ignores_them() -> None:
    task = _grid((0, 0))
    assert task.action_mask(np.arange(1)).tolist() == [[False, False, True, True, False]]
    assert _move(task, 2) == (False, -0.01) and task.agent[0].tolist() == [0, 0]
    assert _move(task, 1) == (False, -0.01) and task.agent[0].tolist() == [0, 1]
    task.agent[0] = (4, 2)
    assert task.action_mask(np.arange(1)).tolist() == [[False, False, False, False, True]]


def test_gridworld_goal_and_pit_end_the_episode() -> None:
    assert _move(_grid((3, 4)), 4) == (True, 1.0)
    assert _move(_grid((1, 4)), 3) == (True, -1.0)


def test_gridworld_layout_is_three_distinct_cells_from_the_rng() -> None:
    task = GridWorldTask(50, _context(seed=1))
    task.begin_episode(np.arange(50))
    cells = np.stack([task.agent, task.goal, task.pit], axis=1)  # (50, 3, 2)
    assert all(len({tuple(c) for c in agent_cells}) == 3 for agent_cells in cells)
    assert cells.min() >= 0 and cells.max() <= 4
    assert len({c.tobytes() for c in cells}) > 40


def test_gridworld_image_shows_agent_goal_and_pit_where_they_are() -> None:
    task = _grid((0, 0), goal=(4, 4), pit=(2, 2))
    image = task.observe(np.arange(1))[0][0]
    assert image.shape == (64, 84, 3) and image.dtype == np.uint8
    cell, left = 64 // 7, (84 - 63) // 2

    def colour(x: int, z: int) -> list[int]:
        row, col = (5 - z) * cell + cell // 2, left + (x + 1) * cell + cell // 2
        return image[row, col].tolist()

    assert colour(0, 0) == PALETTE[3].tolist()  # agent, bottom left
    assert colour(4, 4) == PALETTE[4].tolist()  # goal, top right
    assert colour(2, 2) == PALETTE[5].tolist()  # pit, centre
    assert colour(1, 0) == PALETTE[2].tolist()  # floor
    assert colour(-1, 0) == PALETTE[1].tolist()  # wall
    assert image[0, 0].tolist() == PALETTE[0].tolist()


def test_gridworld_grid_size_parameter_sets_the_grid() -> None:
    task = GridWorldTask(3, _context(gridSize=8))
    task.begin_episode(np.arange(3))
    assert task.size.tolist() == [8, 8, 8]
    assert task.observe(np.arange(3))[0].shape == (3, 64, 84, 3)


def test_png_observations_decode_to_the_rendered_image() -> None:
    task = _grid((1, 3))
    image = task.observe(np.arange(1))[0]
    writer = PngWriter(GridWorldTask.behavior_spec.observation_specs[0])
    [png] = writer.values(image)
    assert writer.values(image)[0] is png  # cached
    info = AgentInfoProto()
    writer.fill(info.observations.add(), png)
    [proto] = AgentInfoProto.FromString(info.SerializeToString()).observations
    decoded = decode_observation(proto)
    assert decoded.shape == (3, 64, 84)
    assert np.array_equal(decoded, np.moveaxis(image[0], 2, 0) / np.float32(255.0))
    assert list(proto.dimension_properties) == [1, 2, 2] and proto.name == "CameraSensor"


def test_3dball_servo_turns_slower_against_a_heavy_ball_s_weight() -> None:
    """The platform's servo loses speed lifting the side the ball's weight is on (by
    m g offset / stall torque), gains it lowering that side (at most twice), and carries no
    load while the ball is still falling."""

    def turned(mass: float, action: float, x: float, landed: bool = True) -> float:
        task = Ball3DTask(1, _context(mass=mass, scale=1e-6))
        task.begin_episode(np.arange(1))
        task.tilt = np.zeros((1, 2))
        task.position[0] = [x, 0.0]
        if landed:
            for _ in range(60):  # fall and land on the level platform
                task.act(np.zeros((1, 2), np.float32), np.zeros((1, 0)), np.zeros(1))
            assert task.on_plate[0]
            task.position[0] = [x, 0.0]
        task.act(np.array([[action, 0.0]], np.float32), np.zeros((1, 0)), np.zeros(1))
        return float(task.tilt[0, 0])

    full = np.radians(2.0)
    share = 9.81 * 2.0 / SERVO_STALL_TORQUE  # a unit mass 2 units out
    assert turned(1.0, 1.0, 2.0) == pytest.approx(full * (1 - share))
    assert turned(1.0, -1.0, 2.0) == pytest.approx(-full * (1 + share))
    assert turned(4.0, 1.0, 2.0) == pytest.approx(full * (1 - 4 * share))
    assert turned(20.0, 1.0, 2.0) == 0.0  # stalled
    assert turned(20.0, -1.0, 2.0) == pytest.approx(-2 * full)  # at most twice as fast
    assert turned(20.0, 1.0, 0.0) == pytest.approx(full)  # centred: no load
    assert turned(20.0, 1.0, 2.0, landed=False) == pytest.approx(full)  # still falling
