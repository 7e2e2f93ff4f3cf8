"""The built-in Pyramids player: specs, rules, ray layout, difficulty, and one gRPC round trip."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from tests.conftest import FIXTURES, free_port, process_gone
from unity_gym.base_env import behavior_name_without_team
from unity_gym.communicator_objects.unity_rl_input_pb2 import UnityRLInputProto
from unity_gym.communicator_objects.unity_rl_output_pb2 import UnityRLOutputProto
from unity_gym.players import get_player
from unity_gym.players.academy import Academy
from unity_gym.players.channels import PlayerChannels
from unity_gym.players.pyramids import (
    BLOCK,
    FLOATS_PER_RAY,
    GOAL,
    GOLD_REWARD,
    MISS,
    RAY_LENGTH,
    RAYS_PER_SENSOR,
    STEP_PENALTY,
    STONE,
    SWITCH_OFF,
    SWITCH_ON,
    TAGS,
    TOP_SPEED,
    WALL,
    PyramidsTask,
)
from unity_gym.players.task import TaskContext
from unity_gym.rpc_utils import decode_observation
from unity_gym.side_channel.environment_parameters_channel import ParameterSampler

pytestmark = pytest.mark.protocol

NAME = "Pyramids?team=0"
NOTHING, FORWARD, BACKWARD, RIGHT, LEFT = range(5)
PERIOD = PyramidsTask.decision_period


class RecordedStats:
    """Stands in for the player's stats recorder: keeps (key, value) pairs."""

    def __init__(self) -> None:
        self.values: list[tuple[str, float]] = []

    def add(self, key: str, value: float, method: object = None) -> None:
        self.values.append((key, value))

    def of(self, key: str) -> list[float]:
        return [v for k, v in self.values if k == key]


def make_task(n: int = 1, seed: int = 0, **parameters: float) -> PyramidsTask:
    """A task after its first episode start; one open area (``rooms`` 0) unless asked."""
    channels = PlayerChannels()
    for key, value in {"rooms": 0.0, **parameters}.items():
        channels.parameters.set(key, ParameterSampler(None, (value,)))
    stats = RecordedStats()  # duck-types the recorder
    context = TaskContext(np.random.default_rng(seed), channels.parameters, stats, n)  # type: ignore[arg-type]
    task = PyramidsTask(n, context)
    task.begin_episode(np.arange(n))
    return task


def step(task: PyramidsTask, action: int | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """One academy step with these actions; returns (this step's rewards, ended)."""
    n = task.num_agents
    discrete = np.broadcast_to(np.asarray(action, dtype=np.int32), (n,)).reshape(n, 1).copy()
    rewards = np.zeros(n, dtype=np.float32)
    ended = task.act(np.zeros((n, 0), dtype=np.float32), discrete, rewards)
    return rewards, ended


def rays_of(task: PyramidsTask, sensor: int) -> np.ndarray:
    """``(n, 7, 8)``: one sensor's rays of every agent."""
    obs = task.observe(np.arange(task.num_agents))
    return obs[sensor].reshape(task.num_agents, RAYS_PER_SENSOR, FLOATS_PER_RAY)


def place(task: PyramidsTask, position, heading_degrees: float, switch, pyramid) -> None:
    task.position[0] = position
    task.heading[0] = np.radians(heading_degrees)
    task.velocity[0] = 0.0
    task.switch_position[0] = switch
    task.pyramid_position[0] = pyramid


def oracle(task: PyramidsTask) -> np.ndarray:
    """Heads for the switch while it is off, then for the pyramid: turn toward it, then go."""
    target = np.where(task.switch_on[:, None], task.pyramid_position, task.switch_position)
    way = target - task.position
    off = np.angle(np.exp(1j * (np.arctan2(way[:, 1], way[:, 0]) - task.heading)))
    return np.where(np.abs(off) > np.radians(10), np.where(off > 0, LEFT, RIGHT), FORWARD)


# -- specs ---------------------------------------------------------------------------------------


def test_registry_spec_matches_unity_pyramids() -> None:
    player = get_player("pyramids")
    assert player.name == "Pyramids" and player.tasks == (PyramidsTask,)
    (behavior,) = player.behaviors
    assert behavior.name == NAME and behavior_name_without_team(NAME) == "Pyramids"
    assert [o.shape for o in behavior.spec.observation_specs] == [(56,), (56,), (56,), (4,)]
    names = [o.name for o in behavior.spec.observation_specs]
    assert names == sorted(names) and names[-1] == "VectorSensor_size4"  # Unity sorts by name
    assert behavior.spec.action_spec.continuous_size == 0
    assert behavior.spec.action_spec.discrete_branches == (5,)
    assert (behavior.agents_per_area, behavior.decision_period, behavior.max_step) == (1, 5, 5000)
    assert len(TAGS) + 2 == FLOATS_PER_RAY and RAYS_PER_SENSOR * FLOATS_PER_RAY == 56
    assert round(STEP_PENALTY * PERIOD, 12) == 0.001  # ML-Agents' -0.001 per decision


@pytest.mark.parametrize("config", ["Pyramids.yaml", "PyramidsRND.yaml"])
def test_mlagents_pyramids_configs_apply_unchanged(config: str) -> None:
    pytest.importorskip("pydantic")
    pytest.importorskip("stable_baselines3")
    pytest.importorskip("sb3_contrib")
    from cli.sb3_translation import translate_behavior
    from cli.training_config import load_run_options

    options = load_run_options(FIXTURES / "configs" / "ppo" / config)
    assert list(options.behaviors) == [behavior_name_without_team(NAME)]
    settings = options.behaviors["Pyramids"]
    plan = translate_behavior("Pyramids", settings, PyramidsTask.behavior_spec, 1)
    assert plan.algorithm in ("PPO", "MaskablePPO")  # discrete actions may be masked
    assert plan.total_timesteps == settings.max_steps


# -- rules ---------------------------------------------------------------------------------------


def test_pressing_the_switch_then_reaching_the_gold_brick_sets_plus_two() -> None:
    task = make_task(seed=3, stonePyramids=0)
    stats = task.context.stats
    assert not task.switch_on[0] and not task.pyramid_present[0]
    history, pressed_at = [], None
    for t in range(PyramidsTask.max_step):
        if t % PERIOD == 0:
            action = oracle(task)
        rewards, ended = step(task, action)
        history.append(float(rewards[0]))
        if pressed_at is None and task.switch_on[0]:
            pressed_at = t
            assert task.pyramid_present[0]
        if ended is not None:
            assert ended.tolist() == [True]
            break
    else:
        pytest.fail("the oracle never reached the gold brick")
    assert pressed_at is not None and pressed_at < t
    assert history[-1] == GOLD_REWARD  # set, like Unity's SetReward: exactly 2
    assert history[:-1] == [pytest.approx(-STEP_PENALTY)] * t
    assert sum(history) == pytest.approx(GOLD_REWARD - STEP_PENALTY * t, abs=1e-5)
    assert stats.of("Pyramids/SuccessRate") == [1.0] and stats.of("Pyramids/SwitchRate") == [1.0]


def test_the_pyramid_gives_nothing_before_the_switch_is_pressed() -> None:
    task = make_task(stonePyramids=0)
    # Facing +x, the pyramid's spot 4 ahead, the switch behind.
    place(task, (6.0, 10.0), 0.0, switch=(2.0, 10.0), pyramid=(10.0, 10.0))
    for _ in range(150):  # walks through the pyramid's spot and on to the wall
        rewards, ended = step(task, FORWARD)
        assert ended is None and rewards[0] == pytest.approx(-STEP_PENALTY)
    assert task.position[0, 0] > 11.5 and not task.switch_on[0]
    assert not task.pyramid_present[0]
    # Once the switch is on, the same walk back reaches the pyramid.
    task.press_switch(np.array([0]))
    assert task.switch_on[0] and task.pyramid_present[0]
    for _ in range(150):
        rewards, ended = step(task, BACKWARD)
        if ended is not None:
            break
    assert ended is not None and rewards[0] == GOLD_REWARD


def test_every_step_costs_the_same_without_events() -> None:
    task = make_task(n=8, seed=1)
    for _ in range(20):
        rewards, _ = step(task, NOTHING)
        assert np.all(rewards == np.float32(-STEP_PENALTY))


def _reset_academy(
    seed: int, num_areas: int, player: str = "Pyramids"
) -> tuple[Academy, UnityRLOutputProto]:
    """A built-in's academy after its first reset, and the reset's output."""
    academy = Academy(get_player(player).tasks)
    academy.initialize(seed=seed, num_areas=num_areas)
    out = UnityRLOutputProto()
    academy.reset(out)
    return academy, out


def test_episode_ends_interrupted_at_max_step_with_minus_one() -> None:
    """Through the academy: 1000 decisions of doing nothing, each costing 0.001."""
    academy, out = _reset_academy(seed=0, num_areas=1)
    total, decisions = 0.0, 0
    for _ in range(1100):
        infos = list(out.agentInfos[NAME].value)
        total += infos[0].reward
        if infos[0].done:  # followed by the next episode's first decision
            break
        decisions += 1
        rl_input = UnityRLInputProto()
        rl_input.agent_actions[NAME].value.add(discrete_actions=[NOTHING])
        out = UnityRLOutputProto()
        academy.step(rl_input.agent_actions, out)
    else:
        pytest.fail("the episode never ended")
    assert infos[0].max_step_reached and decisions == 1000
    assert len(infos) == 2 and not infos[1].done
    assert total == pytest.approx(-1.0, abs=1e-4)


def test_unfinished_episodes_count_as_failures_in_the_stats() -> None:
    task = make_task(n=2, stonePyramids=0)
    stats = task.context.stats
    task.begin_episode(np.arange(2))  # no step taken yet: nothing recorded
    assert stats.values == []
    step(task, NOTHING)
    task.press_switch(np.array([1]))
    task.begin_episode(np.arange(2))  # the step limit or a reset cut both short
    assert stats.of("Pyramids/SuccessRate") == [0.0, 0.0]
    assert stats.of("Pyramids/SwitchRate") == [0.0, 1.0]


def _random_success(n: int, seed: int, **parameters: float) -> float:
    """Share of n first episodes of uniformly random decisions that reach the gold brick."""
    task = make_task(n=n, seed=seed, **parameters)
    rng = np.random.default_rng(seed + 1)
    succeeded = np.zeros(n, dtype=bool)
    finished = np.zeros(n, dtype=bool)
    for t in range(PyramidsTask.max_step):
        if t % PERIOD == 0:
            actions = rng.integers(0, 5, n)
        _, ended = step(task, actions)
        if ended is not None:
            succeeded |= ended & ~finished
            finished |= ended
            task.begin_episode(np.flatnonzero(ended))
    return float(succeeded.mean())


def test_random_play_rarely_succeeds() -> None:
    """200 first episodes of uniformly random decisions: well under 5% reach the gold brick."""
    assert 0 < _random_success(200, seed=7) < 0.05


def test_stones_block_the_agent() -> None:
    task = make_task(stonePyramids=1)
    place(task, (6.0, 10.0), 0.0, switch=(2.0, 2.0), pyramid=(2.0, 18.0))
    task.stone_positions[0, 0] = (10.0, 10.0)
    assert rays_of(task, 0)[0, 0, STONE] == 1.0
    for _ in range(200):
        step(task, FORWARD)
        assert np.linalg.norm(task.position[0] - (10.0, 10.0)) >= 1.5 - 1e-9
    assert task.position[0, 0] == pytest.approx(8.5)


def test_rooms_inner_walls_stop_the_agent_and_doorways_let_it_through() -> None:
    """``rooms=1``: at areaSize 20 the inner wall line x = 6.67 is solid at z = 7 and has its
    middle doorway (z 8.2 to 11.8) at z = 10."""
    academy, _ = _reset_academy(seed=0, num_areas=2)  # no parameters sent: Unity's rooms
    assert academy._behaviors[0].task.rooms.all()
    task = make_task(n=2, rooms=1.0, stonePyramids=0)
    assert task.rooms.all() and not make_task(rooms=0.0).rooms.any()
    for agent, z in enumerate((7.0, 10.0)):
        task.position[agent] = (3.0, z)
        task.heading[agent] = 0.0
        task.switch_position[agent] = (3.0, 18.0)
        task.pyramid_position[agent] = (18.0, 3.0)
    for _ in range(200):
        step(task, FORWARD)
        assert task.position[0, 0] <= 20.0 / 3 - 0.25 - 0.5 + 1e-9
    assert task.position[0, 0] == pytest.approx(20.0 / 3 - 0.75)
    assert task.velocity[0, 0] == pytest.approx(0.0, abs=1e-3)
    assert task.position[1, 0] == pytest.approx(19.5)  # through both doorways to the outer wall
    assert task.position[1, 1] == pytest.approx(10.0)


def test_rooms_inner_walls_hide_what_is_behind_them_from_the_rays() -> None:
    for rooms in (1.0, 0.0):
        task = make_task(rooms=rooms, stonePyramids=0)
        place(task, (3.0, 7.0), 0.0, switch=(9.0, 7.0), pyramid=(18.0, 18.0))
        ray = rays_of(task, 0)[0, 0]
        if rooms:  # the inner wall's near face, 6.67 - 0.25 - 3 ahead, hides the switch
            assert ray[WALL] == 1.0
            assert ray[MISS + 1] == pytest.approx((20.0 / 3 - 0.25 - 3.0) / RAY_LENGTH)
        else:
            assert ray[SWITCH_OFF] == 1.0
    # Through the middle doorways the ray reaches the outer wall; the raised rays too.
    task = make_task(rooms=1.0, stonePyramids=0)
    place(task, (3.0, 10.0), 0.0, switch=(3.0, 18.0), pyramid=(18.0, 3.0))
    for sensor in (0, 2):
        ray = rays_of(task, sensor)[0, 0]
        assert ray[WALL] == 1.0 and ray[MISS + 1] == pytest.approx(17.0 / RAY_LENGTH)


def test_rooms_make_random_play_rarer_still() -> None:
    assert _random_success(300, seed=3, areaSize=16.0, rooms=1.0) < _random_success(
        300, seed=3, areaSize=16.0
    )


def test_walls_keep_the_agent_inside() -> None:
    task = make_task(seed=2)
    for t in range(3000):
        step(task, FORWARD if t % 200 < 150 else RIGHT)
        assert np.all(task.position >= 0.5) and np.all(task.position <= task.size[0] - 0.5)


def test_parameters_set_area_size_and_stone_count() -> None:
    task = make_task(n=50, seed=4, areaSize=12.0, stonePyramids=2)
    assert np.all(task.size == 12.0)
    assert np.all(task._present[:, 2:8].sum(axis=1) == 2)
    places = np.concatenate(
        [
            task.position[:, None],
            task.switch_position[:, None],
            task.pyramid_position[:, None],
            task.stone_positions[:, :2],
        ],
        axis=1,
    )
    assert np.all(places >= 1.5) and np.all(places <= 10.5)
    gaps = np.linalg.norm(places[:, :, None] - places[:, None, :], axis=3)
    assert np.all(gaps[:, ~np.eye(5, dtype=bool)] >= 3.0 - 1e-9)  # one spot each
    clipped = make_task(areaSize=1000.0, stonePyramids=-3)
    assert clipped.size[0] == 60.0 and not clipped._present[0, 2:8].any()


# -- observations --------------------------------------------------------------------------------


def test_observations_stay_finite_and_in_their_documented_ranges() -> None:
    n = 16
    task = make_task(n=n, seed=5)
    rng = np.random.default_rng(6)
    for t in range(3000):
        if t % PERIOD == 0:
            actions = rng.integers(0, 5, n)
            obs = task.observe(np.arange(n))
            assert [o.shape for o in obs] == [(n, 56), (n, 56), (n, 56), (n, 4)]
            rays = np.stack(obs[:3], axis=1).reshape(n, 3, RAYS_PER_SENSOR, FLOATS_PER_RAY)
            assert np.all(np.isfinite(rays)) and rays.min() >= 0.0 and rays.max() <= 1.0
            # Exactly one of the tags or the miss flag; a miss reads distance 1.
            assert np.all(rays[..., : MISS + 1].sum(axis=3) == 1.0)
            missed = rays[..., MISS] == 1.0
            assert np.all(rays[..., MISS + 1][missed] == 1.0)
            assert np.all(rays[..., MISS + 1][~missed] > 0.0)
            state = obs[3]
            assert np.all(np.isfinite(state)) and np.all(np.isin(state[:, 0], (0.0, 1.0)))
            assert np.all(np.abs(state[:, 1:]) <= 1.0 + 1e-6) and np.all(state[:, 2] == 0.0)
            # Subsets of agents see the same as the whole batch.
            some = np.array([3, 11])
            for whole, part in zip(obs, task.observe(some), strict=True):
                np.testing.assert_array_equal(whole[some], part)
        _, ended = step(task, actions)
        if ended is not None:
            task.begin_episode(np.flatnonzero(ended))


def test_rays_see_the_switch_ahead_right_and_left_in_unity_order() -> None:
    task = make_task(stonePyramids=0)
    # Facing +x at (5, 10), the switch 3 ahead, the pyramid's spot far behind.
    place(task, (5.0, 10.0), 0.0, switch=(8.0, 10.0), pyramid=(2.0, 17.0))
    low, wide, raised = (rays_of(task, s)[0] for s in range(3))
    expected = np.zeros(FLOATS_PER_RAY, dtype=np.float32)
    expected[SWITCH_OFF], expected[MISS + 1] = 1.0, (3.0 - 0.5) / RAY_LENGTH
    np.testing.assert_allclose(low[0], expected, rtol=1e-6)
    np.testing.assert_allclose(wide[0], expected, rtol=1e-6)
    # The raised sensor passes over the switch: the wall 15 ahead.
    assert raised[0, WALL] == 1.0 and raised[0, MISS + 1] == pytest.approx(15.0 / RAY_LENGTH)
    # Ray 1 looks 20 degrees to the right (clockwise), ray 2 20 degrees to the left.
    for heading, ray in ((20.0, 1), (-20.0, 2)):
        task.heading[0] = np.radians(heading)
        assert rays_of(task, 0)[0, ray, SWITCH_OFF] == 1.0
        assert rays_of(task, 0)[0, 0, SWITCH_OFF] == 0.0
    # The wide sensor's last rays look 150 degrees to either side.
    task.heading[0] = np.radians(-150.0)  # the switch is 150 degrees to the left
    assert rays_of(task, 1)[0, 6, SWITCH_OFF] == 1.0
    task.heading[0] = 0.0
    task.press_switch(np.array([0]))
    assert rays_of(task, 0)[0, 0, SWITCH_ON] == 1.0
    # The raised pyramid: bricks for the low sensors, the gold brick for the raised one.
    task.pyramid_position[0] = (12.0, 10.0)
    task.switch_position[0] = (5.0, 2.0)
    task.press_switch(np.array([0]))  # moves the on switch too
    low, raised = rays_of(task, 0)[0], rays_of(task, 2)[0]
    assert low[0, BLOCK] == 1.0 and low[0, MISS + 1] == pytest.approx((7.0 - 1.0) / RAY_LENGTH)
    assert raised[0, GOAL] == 1.0
    assert raised[0, MISS + 1] == pytest.approx((7.0 - 0.5) / RAY_LENGTH)


def test_rays_miss_beyond_their_length_and_not_from_inside_the_switch() -> None:
    task = make_task(areaSize=60.0, stonePyramids=0)
    place(task, (5.0, 30.0), 0.0, switch=(5.0, 30.0), pyramid=(55.0, 55.0))
    low = rays_of(task, 0)[0]
    assert low[0, MISS] == 1.0 and low[0, MISS + 1] == 1.0  # the far wall is 55 away
    assert low[:, SWITCH_OFF].sum() == 0.0  # standing on it


def test_velocity_is_reported_in_the_agent_frame() -> None:
    task = make_task(stonePyramids=0)
    place(task, (10.0, 10.0), 90.0, switch=(2.0, 2.0), pyramid=(18.0, 2.0))
    for _ in range(30):
        step(task, FORWARD)
    state = task.observe(np.array([0]))[3][0]
    assert state[3] == pytest.approx(1.0, abs=0.01) and abs(state[1]) < 1e-6
    assert np.linalg.norm(task.velocity[0]) <= TOP_SPEED + 1e-12
    task.heading[0] += np.radians(90.0)  # now the motion is to the agent's right
    state = task.observe(np.array([0]))[3][0]
    assert state[1] == pytest.approx(1.0, abs=0.01) and abs(state[3]) < 1e-6


# -- through UnityEnvironment ----------------------------------------------------------------------


def test_unity_environment_steps_builtin_pyramids() -> None:
    from unity_gym import UnityEnvironment
    from unity_gym.exception import UnityEnvironmentException
    from unity_gym.side_channel import EnvironmentParametersChannel, StatsSideChannel

    stats, parameters = StatsSideChannel(), EnvironmentParametersChannel()
    env = UnityEnvironment(
        "builtin:Pyramids",
        base_port=free_port(),
        timeout_wait=30,
        side_channels=[stats, parameters],
        additional_args=["--max-step", "50"],
    )
    pid = env.player_pid
    try:
        parameters.set_float_parameter("areaSize", 14.0)
        env.reset()
        spec = env.behavior_specs[NAME]
        assert [o.shape for o in spec.observation_specs] == [(56,), (56,), (56,), (4,)]
        assert spec.action_spec.discrete_branches == (5,)
        rng = np.random.default_rng(0)
        terminals = []
        for _ in range(12):
            decisions, terminal = env.get_steps(NAME)
            if len(terminal):
                terminals.append(terminal)
            for ob in decisions.obs[:3]:
                assert ob.shape == (len(decisions), 56) and 0.0 <= ob.min() <= ob.max() <= 1.0
            env.set_actions(NAME, spec.action_spec.random_action(len(decisions), rng))
            env.step()
        assert terminals and terminals[0].interrupted.tolist() == [True]
        received = stats.get_and_reset_stats()
        assert "Pyramids/SuccessRate" in received and "Pyramids/SwitchRate" in received
    finally:
        with contextlib.suppress(UnityEnvironmentException):
            env.close()
    if pid is not None:
        assert process_gone(pid), f"player {pid} survived close()"


def test_decoded_observations_match_the_task() -> None:
    """The academy's proto encoding keeps the float layout (no reordering of sensors)."""
    academy, out = _reset_academy(seed=1, num_areas=2)
    infos = out.agentInfos[NAME].value
    task = academy._behaviors[0].task
    expected = task.observe(np.arange(2))
    for index, info in enumerate(infos):
        decoded = [decode_observation(o) for o in info.observations]
        for got, want in zip(decoded, expected, strict=True):
            np.testing.assert_array_equal(got, want[index])
