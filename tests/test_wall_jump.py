"""The built-in WallJump player: specs, rules, jumps and the block, rays, difficulty, heuristic,
and a round trip through UnityEnvironment."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from tests.conftest import FIXTURES, free_port, process_gone
from tests.test_pyramids import RecordedStats
from tests.test_pyramids import _reset_academy as reset_academy
from unity_gym.base_env import ActionTuple, DecisionSteps, behavior_name_without_team
from unity_gym.communicator_objects.unity_rl_input_pb2 import UnityRLInputProto
from unity_gym.communicator_objects.unity_rl_output_pb2 import UnityRLOutputProto
from unity_gym.players import get_player
from unity_gym.players.academy import Academy
from unity_gym.players.channels import PlayerChannels
from unity_gym.players.heuristics import heuristic_for
from unity_gym.players.task import TaskContext
from unity_gym.players.wall_jump import (
    AGENT_RADIUS,
    BLOCK,
    BLOCK_HALF,
    BLOCK_TOP,
    FLOATS_PER_RAY,
    GOAL,
    GOAL_X,
    GOAL_Z,
    JUMP_HEIGHT,
    MAX_STEP,
    MISS,
    PLATFORM_Z,
    RAY_LENGTH,
    RAYS_PER_SENSOR,
    SENSOR_NAMES,
    STACK,
    STEP_PENALTY,
    TAGS,
    WALL,
    WALL_Z,
    BigWallJumpTask,
    SmallWallJumpTask,
    WallJumpTask,
    scripted_policy,
    wall_top_of,
)
from unity_gym.rpc_utils import decode_observation
from unity_gym.side_channel.environment_parameters_channel import ParameterSampler, SamplerTypes

pytestmark = pytest.mark.protocol

BIG, SMALL = "BigWallJump?team=0", "SmallWallJump?team=0"
PERIOD = WallJumpTask.decision_period
NEAR_FACE = WALL_Z[0] - AGENT_RADIUS  # z of an agent pressed against the wall
# Actions (forward, turn, side, jump).
NOTHING, FORWARD, BACKWARD, JUMP_FORWARD = (0, 0, 0, 0), (1, 0, 0, 0), (2, 0, 0, 0), (1, 0, 0, 1)


def make_task(
    kind: type[WallJumpTask] = BigWallJumpTask, n: int = 1, seed: int = 0, **parameters: object
) -> WallJumpTask:
    """A task after its first episode start; parameters: a number, or (low, high) uniform."""
    channels = PlayerChannels()
    for key, value in parameters.items():
        if isinstance(value, tuple):
            sampler = ParameterSampler(SamplerTypes.UNIFORM, value, seed)
        else:
            sampler = ParameterSampler(None, (float(value),))  # type: ignore[arg-type]
        channels.parameters.set(key, sampler)
    stats = RecordedStats()  # duck-types the recorder
    context = TaskContext(np.random.default_rng(seed), channels.parameters, stats, n)  # type: ignore[arg-type]
    task = kind(n, context)
    task.begin_episode(np.arange(n))
    return task


def step(
    task: WallJumpTask, action: tuple[int, ...] | np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """One academy step with these actions (one row for all, or one per agent)."""
    n = task.num_agents
    discrete = np.broadcast_to(np.asarray(action, dtype=np.int32), (n, 4)).copy()
    rewards = np.zeros(n, dtype=np.float32)
    ended = task.act(np.zeros((n, 0), dtype=np.float32), discrete, rewards)
    return rewards, ended


def place(task: WallJumpTask, position, yaw_degrees: float = 0.0, block=(8.0, -9.0)) -> None:
    task.position[0] = position
    task.yaw[0] = np.radians(yaw_degrees)
    task.velocity[0] = 0.0
    task.block[0] = block


def rays_of(task: WallJumpTask, sensor: int) -> np.ndarray:
    """``(n, 7, 5)``: one ray sensor's current frame (0: offset, 1: low)."""
    frame = task.frame(np.arange(task.num_agents))[sensor]
    return frame.reshape(task.num_agents, RAYS_PER_SENSOR, FLOATS_PER_RAY)


def run_until_end(task: WallJumpTask, action: tuple[int, ...], steps: int = 400):
    """Rewards of each step until the episode ends (or ``steps`` pass), and whether it ended."""
    history = []
    for _ in range(steps):
        rewards, ended = step(task, action)
        history.append(float(rewards[0]))
        if ended is not None:
            return history, True
    return history, False


def play(policy, kind: type[WallJumpTask], n: int, seed: int, **parameters: object) -> dict:
    """First episodes of ``n`` agents under ``policy(task, t)``: success, fall and timeout rates."""
    task = make_task(kind, n=n, seed=seed, **parameters)
    outcome = np.zeros(n)
    finished = np.zeros(n, dtype=bool)
    actions = np.zeros((n, 4), np.int32)
    for t in range(MAX_STEP):
        if t % PERIOD == 0:
            actions = policy(task, t)
        rewards, ended = step(task, actions)
        if ended is not None:
            new = ended & ~finished
            outcome[new] = rewards[new]
            finished |= ended
            if finished.all():
                break
            task.begin_episode(np.flatnonzero(ended))
    return {
        "success": float(np.mean(outcome > 0)),
        "fell": float(np.mean(outcome < 0)),
        "timeout": float(np.mean(~finished)),
    }


# -- specs -----------------------------------------------------------------------------------------


def test_registry_specs_match_unity_wall_jump() -> None:
    player = get_player("walljump")
    assert player.name == "WallJump" and player.tasks == (BigWallJumpTask, SmallWallJumpTask)
    assert [b.name for b in player.behaviors] == [BIG, SMALL]
    for behavior in player.behaviors:
        spec = behavior.spec
        assert [o.shape for o in spec.observation_specs] == [(210,), (210,), (24,)]
        names = [o.name for o in spec.observation_specs]
        assert names == list(SENSOR_NAMES) and names == sorted(names)  # Unity sorts by name
        assert names[-1] == "StackingSensor_size6_VectorSensor_size4"
        assert spec.action_spec.continuous_size == 0
        assert spec.action_spec.discrete_branches == (3, 3, 3, 2)
        assert (behavior.agents_per_area, behavior.decision_period, behavior.max_step) == (
            1,
            5,
            2000,
        )
    assert TAGS == ("wall", "goal", "block") and FLOATS_PER_RAY == 5
    assert STACK * RAYS_PER_SENSOR * FLOATS_PER_RAY == 210
    assert round(STEP_PENALTY * PERIOD, 12) == 0.0025  # -0.0005 per academy step


@pytest.mark.parametrize("config", ["WallJump.yaml", "WallJump_curriculum.yaml"])
def test_mlagents_wall_jump_configs_apply_unchanged(config: str) -> None:
    pytest.importorskip("pydantic")
    pytest.importorskip("stable_baselines3")
    pytest.importorskip("sb3_contrib")
    from cli.sb3_translation import translate_behavior
    from cli.training_config import load_run_options

    options = load_run_options(FIXTURES / "configs" / "ppo" / config)
    player = get_player("WallJump")
    assert sorted(options.behaviors) == sorted(behavior_name_without_team(n) for n in (BIG, SMALL))
    for behavior in player.behaviors:
        name = behavior_name_without_team(behavior.name)
        settings = options.behaviors[name]
        plan = translate_behavior(name, settings, behavior.spec, 1)
        assert plan.algorithm in ("PPO", "MaskablePPO")
        assert plan.total_timesteps == settings.max_steps
    if config == "WallJump_curriculum.yaml":  # the parameters the player reads
        assert set(options.environment_parameters or {}) == {"big_wall_height", "small_wall_height"}


# -- walls and parameters --------------------------------------------------------------------------


def test_wall_top_follows_unity_s_scale_centred_on_the_floor() -> None:
    heights = np.array([0.0, 1.0, 1.5, 4.0, 8.0, np.nan, -3.0, 100.0])
    np.testing.assert_allclose(wall_top_of(heights), [0, 0, 0.25, 1.5, 3.5, 0, 0, 10.0])


def test_unity_s_defaults_apply_without_parameters() -> None:
    big = make_task(BigWallJumpTask, n=20)
    assert np.all(big.wall_height == 8.0) and np.all(big.wall_top == 3.5)
    small = make_task(SmallWallJumpTask, n=200, seed=1)
    heights = set(small.wall_height.tolist())
    assert heights == {0.0, 4.0}  # no wall or Unity's small wall, even odds
    assert 0.35 < np.mean(small.wall_height == 4.0) < 0.65


def test_wall_heights_are_read_from_the_parameters_at_each_episode_start() -> None:
    task = make_task(BigWallJumpTask, n=1, seed=3, big_wall_height=(0.0, 4.0))
    seen = []
    for _ in range(20):
        seen.append(float(task.wall_height[0]))
        task.begin_episode(np.array([0]))
    assert len(set(seen)) == 20 and min(seen) >= 0.0 and max(seen) <= 4.0  # a fresh draw each
    small = make_task(SmallWallJumpTask, n=100, seed=4, small_wall_height=2.5, no_wall_height=0.5)
    assert set(small.wall_height.tolist()) == {0.5, 2.5}
    np.testing.assert_allclose(small.wall_top, np.where(small.wall_height == 2.5, 0.75, 0.0))


def test_the_block_starts_on_the_near_side_clear_of_the_wall_and_the_agent_behind_it() -> None:
    task = make_task(BigWallJumpTask, n=500, seed=5)
    assert np.all(np.abs(task.block[:, 0]) <= 8.1)
    assert np.all((task.block[:, 1] >= -9.77) & (task.block[:, 1] <= WALL_Z[0] - BLOCK_HALF))
    assert np.all(task.position[:, 1] == -12.0) and np.all(np.abs(task.position[:, 0]) <= 9.0)
    assert np.all(task.feet == 0.0) and np.all(task.velocity == 0.0)
    task.yaw[:] = 1.0
    task.begin_episode(np.arange(500))
    assert np.all(task.yaw == 1.0)  # Unity keeps the heading across episodes


# -- rewards and episode ends ----------------------------------------------------------------------


def test_reaching_the_goal_sets_plus_one_and_ends_the_episode() -> None:
    task = make_task(BigWallJumpTask)
    stats = task.context.stats
    centre_x = sum(GOAL_X) / 2
    place(task, (centre_x, WALL_Z[1] + 0.6), 0.0)  # past the wall, facing the goal
    history, ended = run_until_end(task, FORWARD)
    assert ended and history[-1] == 1.0  # set, like Unity's SetReward: exactly 1
    assert history[:-1] == [pytest.approx(-STEP_PENALTY)] * (len(history) - 1)
    assert task.position[0, 1] > GOAL_Z[0] - AGENT_RADIUS - 0.2
    assert stats.of("WallJump/SuccessRate") == [1.0]
    assert stats.of("WallJump/BigWallSuccessRate") == [1.0]


def test_the_goal_needs_the_agent_grounded() -> None:
    task = make_task(BigWallJumpTask)
    place(task, (sum(GOAL_X) / 2, sum(GOAL_Z) / 2), 0.0)
    task.feet[0] = 3.0  # over the goal, in the air
    _, ended = step(task, NOTHING)
    assert ended is None and task.feet[0] < 3.0
    history, ended = run_until_end(task, NOTHING, 30)
    assert ended and history[-1] == 1.0


def test_falling_off_the_platform_sets_minus_one() -> None:
    task = make_task(SmallWallJumpTask)
    stats = task.context.stats
    place(task, (0.0, -12.0), 180.0)  # facing the back edge, 2.5 away
    history, ended = run_until_end(task, FORWARD)
    assert ended and history[-1] == -1.0
    assert task.position[0, 1] < PLATFORM_Z[0]
    assert stats.of("WallJump/SmallWallSuccessRate") == [0.0]


def test_pushing_the_block_off_the_platform_sets_minus_one() -> None:
    task = make_task(BigWallJumpTask)
    place(task, (0.0, -8.0), 270.0, block=(-7.0, -8.0))  # facing -x, the block 7 ahead
    history, ended = run_until_end(task, FORWARD)
    assert ended and history[-1] == -1.0
    assert task.block[0, 0] < -10.5 and task.position[0, 0] > -10.5  # the block fell, not it


def test_every_step_costs_the_same_without_events() -> None:
    task = make_task(SmallWallJumpTask, n=8, seed=1)
    for _ in range(20):
        rewards, _ = step(task, NOTHING)
        assert np.all(rewards == np.float32(-STEP_PENALTY))


def _reset_academy(seed: int, num_areas: int) -> tuple[Academy, UnityRLOutputProto]:
    return reset_academy(seed, num_areas, "WallJump")


def test_episodes_end_interrupted_at_max_step_with_minus_one_for_both_behaviors() -> None:
    """Through the academy: 400 decisions of doing nothing, each costing 0.0025."""
    academy, out = _reset_academy(seed=0, num_areas=1)
    totals = {BIG: 0.0, SMALL: 0.0}
    decisions = 0
    while decisions <= 400:
        infos = {name: list(out.agentInfos[name].value) for name in (BIG, SMALL)}
        for name in (BIG, SMALL):
            totals[name] += infos[name][0].reward
        if infos[BIG][0].done:
            break
        rl_input = UnityRLInputProto()
        for name in (BIG, SMALL):
            rl_input.agent_actions[name].value.add(discrete_actions=list(NOTHING))
        out = UnityRLOutputProto()
        academy.step(rl_input.agent_actions, out)
        decisions += 1
    assert decisions == 400
    for name in (BIG, SMALL):
        assert infos[name][0].done and infos[name][0].max_step_reached
        assert len(infos[name]) == 2 and not infos[name][1].done  # the next episode's start
        assert totals[name] == pytest.approx(-1.0, abs=1e-4)


def test_unfinished_episodes_count_as_failures_in_the_stats() -> None:
    task = make_task(BigWallJumpTask, n=2)
    stats = task.context.stats
    task.begin_episode(np.arange(2))  # no step taken yet: nothing recorded
    assert stats.values == []
    step(task, NOTHING)
    task.begin_episode(np.arange(2))  # the step limit or a reset cut both short
    assert stats.of("WallJump/SuccessRate") == [0.0, 0.0]
    assert stats.of("WallJump/BigWallSuccessRate") == [0.0, 0.0]


# -- the wall, jumps and the block -----------------------------------------------------------------


def test_the_wall_stops_a_walking_agent() -> None:
    task = make_task(SmallWallJumpTask, small_wall_height=1.5, no_wall_height=1.5)
    assert task.wall_top[0] == 0.25  # a mere step still stops a walker
    place(task, (0.0, -6.0), 0.0)
    for _ in range(100):
        step(task, FORWARD)
    assert task.position[0, 1] == pytest.approx(NEAR_FACE) and task.feet[0] == 0.0
    no_wall = make_task(SmallWallJumpTask, small_wall_height=0.0, no_wall_height=0.0)
    place(no_wall, (0.0, -6.0), 0.0)
    for _ in range(100):
        step(no_wall, FORWARD)
    assert no_wall.position[0, 1] > WALL_Z[1]


def test_a_jump_rises_then_falls_back_to_the_floor() -> None:
    task = make_task(SmallWallJumpTask, small_wall_height=0.0, no_wall_height=0.0)
    place(task, (0.0, -8.0), 0.0)
    heights = []
    for t in range(40):
        step(task, (0, 0, 0, 1) if t == 0 else NOTHING)
        heights.append(float(task.feet[0]))
    assert max(heights) == pytest.approx(JUMP_HEIGHT) and heights[9] == pytest.approx(JUMP_HEIGHT)
    assert heights[-1] == 0.0 and 14 < heights.index(0.0) < 25
    # No second jump from the air: the jump action needs the agent standing.
    task.feet[0], task.vertical_speed[0] = 1.0, 0.0
    step(task, (0, 0, 0, 1))
    assert task.rise_left[0] == 0 and task.feet[0] < 1.0


def test_a_low_wall_can_be_jumped_a_high_one_only_from_the_block() -> None:
    # Pressed against the wall, jumping forward.
    low = make_task(BigWallJumpTask, big_wall_height=4.0)
    place(low, (0.0, NEAR_FACE), 0.0)
    _, _ = run_until_end(low, JUMP_FORWARD, 60)
    assert low.position[0, 1] > WALL_Z[1]  # over it
    high = make_task(BigWallJumpTask)
    place(high, (0.0, NEAR_FACE), 0.0)
    for _ in range(200):
        step(high, JUMP_FORWARD)
        assert high.position[0, 1] <= NEAR_FACE + 1e-9 and high.feet[0] < high.wall_top[0]
    # From the block pushed against the wall: onto the block, then over the wall.
    on_block = make_task(BigWallJumpTask)
    block_z = WALL_Z[0] - BLOCK_HALF
    place(on_block, (0.0, block_z - BLOCK_HALF - AGENT_RADIUS), 0.0, block=(0.0, block_z))
    reached_block = False
    for _ in range(200):
        step(on_block, JUMP_FORWARD)
        reached_block |= bool(on_block.support[0] == BLOCK_TOP)
        if on_block.position[0, 1] > WALL_Z[1]:
            break
    assert reached_block and on_block.position[0, 1] > WALL_Z[1]
    np.testing.assert_allclose(on_block.block[0], (0.0, block_z))  # the wall held the block


def test_the_agent_pushes_the_block_until_the_wall_stops_it() -> None:
    task = make_task(BigWallJumpTask)
    place(task, (0.0, -11.0), 0.0, block=(0.3, -8.0))
    for _ in range(40):
        step(task, FORWARD)
    assert task.block[0, 1] > -7.0 and task.block[0, 0] == pytest.approx(0.3)  # straight on
    assert task.block[0, 1] - task.position[0, 1] == pytest.approx(BLOCK_HALF + AGENT_RADIUS)
    for _ in range(200):
        step(task, FORWARD)
    assert task.block[0, 1] == pytest.approx(WALL_Z[0] - BLOCK_HALF)  # against the wall
    assert task.position[0, 1] == pytest.approx(WALL_Z[0] - 2 * BLOCK_HALF - AGENT_RADIUS)
    assert task.feet[0] == 0.0


def test_an_agent_above_the_block_does_not_push_it() -> None:
    task = make_task(BigWallJumpTask)
    place(task, (0.0, -8.0), 0.0, block=(0.0, -8.0))
    task.feet[0] = task.support[0] = BLOCK_TOP
    for _ in range(10):
        step(task, FORWARD)
    assert task.block[0, 1] == -8.0 and task.feet[0] == BLOCK_TOP
    for _ in range(40):  # walks off its far edge and drops to the floor
        step(task, FORWARD)
    assert task.feet[0] == 0.0 and task.position[0, 1] > -8.0 + BLOCK_HALF


# -- observations ----------------------------------------------------------------------------------


def test_observations_stay_finite_and_in_their_documented_ranges() -> None:
    n = 16
    task = make_task(BigWallJumpTask, n=n, seed=5, big_wall_height=(0.0, 8.0))
    rng = np.random.default_rng(6)
    every = np.arange(n)
    for t in range(3000):
        if t % PERIOD == 0:
            actions = np.stack([rng.integers(0, b, n) for b in (3, 3, 3, 2)], axis=1)
            obs = task.observe(every)
            assert [o.shape for o in obs] == [(n, 210), (n, 210), (n, 24)]
            rays = np.stack(obs[:2], axis=1).reshape(n, 2, STACK, RAYS_PER_SENSOR, FLOATS_PER_RAY)
            assert np.all(np.isfinite(rays)) and rays.min() >= 0.0 and rays.max() <= 1.0
            started = rays[..., : MISS + 1].sum(axis=4)  # 1: one tag or the miss flag; 0: padding
            assert np.all(np.isin(started, (0.0, 1.0)))
            missed = rays[..., MISS] == 1.0
            assert np.all(rays[..., MISS + 1][missed] == 1.0)
            vector = obs[2].reshape(n, STACK, 4)[:, -1]
            assert np.all(np.abs(vector[:, [0, 2]]) <= 0.55) and np.all(vector[:, 1] >= 0.05)
            assert np.all(vector[:, 1] <= 0.5) and np.all(np.isin(vector[:, 3], (0.0, 1.0)))
        _, ended = step(task, actions)
        if ended is not None:
            task.begin_episode(np.flatnonzero(ended))


def test_frames_stack_oldest_first_and_restart_with_the_episode() -> None:
    task = make_task(BigWallJumpTask, n=2, seed=2)
    first = task.observe(np.arange(2))
    for sensor, size in zip(first, (35, 35, 4), strict=True):
        frames = sensor.reshape(2, STACK, size)
        assert np.all(frames[:, :-1] == 0.0)  # a new episode's earlier frames are zero
    frames_seen = []
    for _ in range(7):
        for _ in range(PERIOD):
            step(task, FORWARD)
        frames_seen.append(task.frame(np.arange(2))[2].copy())
        stacked = task.observe(np.arange(2))[2].reshape(2, STACK, 4)
        np.testing.assert_array_equal(stacked[:, -1], frames_seen[-1])  # newest last
    np.testing.assert_array_equal(stacked[:, 0], frames_seen[-STACK])  # oldest first
    # A subset reports on its own (an episode end) and restarts alone.
    task.observe(np.array([1]))
    task.begin_episode(np.array([1]))
    after = task.observe(np.arange(2))[2].reshape(2, STACK, 4)
    assert np.all(after[1, :-1] == 0.0) and np.all(after[0, :-1] != 0.0)


def test_vector_observation_is_unity_s_position_over_20_and_grounded_flag() -> None:
    task = make_task(BigWallJumpTask)
    place(task, (3.0, -10.0), 0.0)
    np.testing.assert_allclose(task.frame(np.array([0]))[2][0], [0.15, 0.05, -0.3, 1.0], rtol=1e-6)
    task.feet[0] = 1.0  # in the air
    np.testing.assert_allclose(task.frame(np.array([0]))[2][0], [0.15, 0.1, -0.3, 0.0], rtol=1e-6)
    task.feet[0] = 0.5  # within Unity's small ground check (0.55)
    assert task.frame(np.array([0]))[2][0, 3] == 1.0


def test_rays_see_the_wall_ahead_and_the_offset_rays_only_a_high_one_nearby() -> None:
    task = make_task(BigWallJumpTask)  # wall top 3.5
    place(task, (0.0, -9.0), 0.0, block=(9.0, -13.0))
    low, offset = rays_of(task, 1)[0], rays_of(task, 0)[0]
    expected = np.zeros(FLOATS_PER_RAY, dtype=np.float32)
    distance = (WALL_Z[0] - 0.5) - (-9.0)  # to the wall grown by the cast radius
    expected[WALL], expected[MISS + 1] = 1.0, distance / RAY_LENGTH
    np.testing.assert_allclose(low[0], expected, rtol=1e-6)
    # Ray 1 looks 30 degrees to the right, ray 2 to the left: the same distance / cos 30.
    for ray in (1, 2):
        assert low[ray, WALL] == 1.0
        assert low[ray, MISS + 1] == pytest.approx(distance / np.cos(np.radians(30)) / RAY_LENGTH)
    assert low[5, MISS] == 1.0 and low[6, MISS] == 1.0  # parallel to the wall
    # 5.77 away the offset rays see the big wall (within 8 units from the floor) ...
    assert offset[0, WALL] == 1.0 and offset[0, MISS + 1] == pytest.approx(distance / RAY_LENGTH)
    # ... but not from 9 away, nor a low wall at all.
    task.position[0, 1] = WALL_Z[0] - 0.5 - 9.0
    assert rays_of(task, 0)[0, 0, WALL] == 0.0 and rays_of(task, 1)[0, 0, WALL] == 1.0
    low_wall = make_task(BigWallJumpTask, big_wall_height=4.0)
    place(low_wall, (0.0, NEAR_FACE - 0.5), 0.0, block=(9.0, -13.0))
    assert rays_of(low_wall, 0)[0, 0, WALL] == 0.0 and rays_of(low_wall, 1)[0, 0, WALL] == 1.0


def test_rays_see_the_block_low_only_and_the_goal() -> None:
    task = make_task(BigWallJumpTask, big_wall_height=4.0)
    place(task, (0.0, -12.0), 0.0, block=(0.0, -8.0))
    low, offset = rays_of(task, 1)[0], rays_of(task, 0)[0]
    assert low[0, BLOCK] == 1.0
    assert low[0, MISS + 1] == pytest.approx((4.0 - BLOCK_HALF - 0.5) / RAY_LENGTH)
    assert offset[0, BLOCK] == 0.0  # the offset rays pass over the block
    # From past the wall, facing the goal, both sensors see it.
    place(task, (sum(GOAL_X) / 2, -0.5), 0.0, block=(0.0, -8.0))
    assert rays_of(task, 1)[0, 0, GOAL] == 1.0 and rays_of(task, 0)[0, 0, GOAL] == 1.0
    goal_face = GOAL_Z[0] - 0.5  # grown by the cast radius
    assert rays_of(task, 1)[0, 0, MISS + 1] == pytest.approx((goal_face - (-0.5)) / RAY_LENGTH)


def test_rays_do_not_see_a_shape_they_start_inside() -> None:
    task = make_task(BigWallJumpTask)
    place(task, (0.0, -8.0), 0.0, block=(0.0, -8.0))  # the agent stands on the block
    task.feet[0] = BLOCK_TOP
    low = rays_of(task, 1)[0]
    assert low[:, BLOCK].sum() == 0.0 and low[0, WALL] == 1.0


# -- difficulty ------------------------------------------------------------------------------------


def _random(task: WallJumpTask, t: int) -> np.ndarray:
    rng = np.random.default_rng(t)
    n = task.num_agents
    return np.stack([rng.integers(0, b, n) for b in (3, 3, 3, 2)], axis=1).astype(np.int32)


def test_random_play_rarely_reaches_the_goal_and_mostly_falls_off() -> None:
    """400 first episodes each: without a wall a few in a thousand at most, with the big wall
    next to none (the block has to be pushed to the wall and climbed)."""
    easy = play(_random, SmallWallJumpTask, 400, 7, small_wall_height=0.0, no_wall_height=0.0)
    hard = play(_random, BigWallJumpTask, 400, 7)
    assert easy["success"] < 0.02 and hard["success"] < 0.01
    assert easy["fell"] > 0.4 and hard["fell"] > 0.4


def _scripted(task: WallJumpTask, t: int) -> np.ndarray:
    return scripted_policy(task.observe(np.arange(task.num_agents)))


@pytest.mark.parametrize(
    ("kind", "parameters", "floor"),
    [
        (SmallWallJumpTask, {"small_wall_height": 0.0, "no_wall_height": 0.0}, 0.9),
        (SmallWallJumpTask, {}, 0.8),  # no wall or Unity's small wall
        (BigWallJumpTask, {}, 0.7),  # Unity's big wall: the block is needed
    ],
)
def test_the_scripted_player_gets_over_low_and_high_walls(kind, parameters, floor) -> None:
    result = play(_scripted, kind, 16, 11, **parameters)
    assert result["success"] >= floor and result["fell"] <= 0.1


def test_the_heuristic_acts_on_decision_steps() -> None:
    task = make_task(BigWallJumpTask, n=3, seed=1)
    obs = task.observe(np.arange(3))
    zeros = np.zeros(3, np.float32)
    steps = DecisionSteps(obs, zeros, np.arange(3), np.zeros(3, np.int32), zeros, None)
    actions = heuristic_for("WallJump")(steps)
    assert isinstance(actions, ActionTuple) and actions.discrete.shape == (3, 4)
    np.testing.assert_array_equal(actions.discrete, scripted_policy(obs))


# -- through UnityEnvironment ----------------------------------------------------------------------


def test_unity_environment_steps_builtin_wall_jump() -> None:
    from unity_gym import UnityEnvironment
    from unity_gym.exception import UnityEnvironmentException
    from unity_gym.side_channel import EnvironmentParametersChannel, StatsSideChannel

    stats, parameters = StatsSideChannel(), EnvironmentParametersChannel()
    env = UnityEnvironment(
        "builtin:WallJump",
        base_port=free_port(),
        timeout_wait=30,
        num_areas=2,
        side_channels=[stats, parameters],
        additional_args=["--max-step", "50"],
    )
    pid = env.player_pid
    heuristic = heuristic_for("WallJump")
    try:
        parameters.set_uniform_sampler_parameters("big_wall_height", 4.0, 7.0, 3)
        parameters.set_float_parameter("small_wall_height", 1.5)
        env.reset()
        assert set(env.behavior_specs) == {BIG, SMALL}
        for name in (BIG, SMALL):
            spec = env.behavior_specs[name]
            assert [o.shape for o in spec.observation_specs] == [(210,), (210,), (24,)]
            assert spec.action_spec.discrete_branches == (3, 3, 3, 2)
        terminals = []
        for _ in range(12):
            for name in (BIG, SMALL):
                decisions, terminal = env.get_steps(name)
                assert len(decisions) == 2  # every agent decides at every decision step
                if len(terminal):
                    terminals.append(terminal)
                for ob in decisions.obs[:2]:
                    assert ob.shape == (2, 210) and 0.0 <= ob.min() <= ob.max() <= 1.0
                env.set_actions(name, heuristic(decisions))
            env.step()
        assert terminals and all(t.interrupted.all() for t in terminals)
        received = stats.get_and_reset_stats()
        assert {"WallJump/SuccessRate", "WallJump/BigWallSuccessRate"} <= set(received)
        assert "WallJump/SmallWallSuccessRate" in received
    finally:
        with contextlib.suppress(UnityEnvironmentException):
            env.close()
    if pid is not None:
        assert process_gone(pid), f"player {pid} survived close()"


def test_decoded_observations_match_the_task() -> None:
    """The academy's proto encoding keeps the float layout (no reordering of sensors)."""
    academy, out = _reset_academy(seed=1, num_areas=2)
    for index, name in enumerate((BIG, SMALL)):
        infos = out.agentInfos[name].value
        task = academy._behaviors[index].task
        assert task.behavior_name == name
        stacks = [s.reshape(2, -1) for s in task._stacks]  # what the reset reported
        for agent, info in enumerate(infos):
            decoded = [decode_observation(o) for o in info.observations]
            for got, want in zip(decoded, stacks, strict=True):
                np.testing.assert_array_equal(got, want[agent])
