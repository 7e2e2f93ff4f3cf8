"""The StrikersVsGoalie player: two behaviors with different specs, zero-sum outcomes, skill."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

import numpy as np
import pytest

from tests.conftest import free_port, process_gone
from tests.test_pyramids import RecordedStats
from unity_gym.base_env import DecisionSteps
from unity_gym.communicator_objects.unity_rl_input_pb2 import UnityRLInputProto
from unity_gym.communicator_objects.unity_rl_output_pb2 import UnityRLOutputProto
from unity_gym.players import get_player
from unity_gym.players.academy import Academy
from unity_gym.players.channels import EnvironmentParameters
from unity_gym.players.heuristics import heuristic_for
from unity_gym.players.strikers_vs_goalie import (
    BALL,
    BALL_TOUCH_REWARD,
    CONTACT,
    DIAGONAL,
    EXISTENTIAL,
    GOALIE,
    HALF_LENGTH,
    KICK_CARRY,
    KICK_SPEED,
    MAX_STEP,
    SPEED_SCALE,
    STRIKER,
    GoalieTask,
    StrikersVsGoalieGame,
    StrikersVsGoalieTeam,
    StrikerTask,
    goalie_policy,
    striker_policy,
)
from unity_gym.players.task import TaskContext
from unity_gym.players.tennis import TennisGame
from unity_gym.side_channel.environment_parameters_channel import ParameterSampler

pytestmark = pytest.mark.protocol

NAMES = ("Striker?team=0", "Goalie?team=1")
BRANCHES = ((3, 3, 3), (3, 3))
Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def make_views(
    areas: int, seed: int = 0, parameters: EnvironmentParameters | None = None
) -> list[StrikersVsGoalieTeam]:
    """Both tasks as one player's academy builds them (shared parameters object), started."""
    parameters = parameters or EnvironmentParameters()
    stats = RecordedStats()  # duck-types the recorder
    contexts = [
        TaskContext(np.random.default_rng([seed, team]), parameters, stats, areas)  # type: ignore[arg-type]
        for team in (STRIKER, GOALIE)
    ]
    views: list[StrikersVsGoalieTeam] = [
        StrikerTask(areas, contexts[0]),
        GoalieTask(areas, contexts[1]),
    ]
    for view in views:
        view.begin_episode(np.arange(areas))
    return views


def stats_of(views: list[StrikersVsGoalieTeam]) -> RecordedStats:
    stats = views[0].context.stats
    assert isinstance(stats, RecordedStats)
    return stats


def academy_step(
    views: list[StrikersVsGoalieTeam], actions: list[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """One academy step of both behaviors: where episodes ended, and each one's rewards."""
    n = views[0].num_agents
    rewards = [np.zeros(n, np.float32) for _ in views]
    ended = [
        v.act(np.zeros((n, 0), np.float32), a, r)
        for v, a, r in zip(views, actions, rewards, strict=True)
    ]
    if ended[0] is None:
        assert ended[1] is None
        return np.zeros(n, dtype=bool), rewards
    assert ended[1] is not None
    np.testing.assert_array_equal(ended[0], ended[1])  # both episodes end at the same step
    return ended[0], rewards


def idle(n: int) -> list[np.ndarray]:
    return [np.zeros((n, len(b)), np.int32) for b in BRANCHES]


def place(
    game: StrikersVsGoalieGame,
    area: int,
    striker: tuple[float, float],
    goalie: tuple[float, float],
    ball: tuple[float, float],
    ball_velocity: tuple[float, float] = (0.0, 0.0),
    heading: float = 0.0,
) -> None:
    game.position[area] = (striker, goalie, ball)
    game.velocity[area] = 0.0
    game.velocity[area, BALL] = ball_velocity
    game.heading[area] = heading


# -- specs and wiring ----------------------------------------------------------------------


def test_registry_has_a_striker_and_a_goalie_with_different_specs() -> None:
    player = get_player("strikersvsgoalie")
    assert player.name == "StrikersVsGoalie"
    assert [b.name for b in player.behaviors] == list(NAMES)
    striker, goalie = (b.spec for b in player.behaviors)
    assert [o.shape for o in striker.observation_specs] == [(14,)]
    assert [o.shape for o in goalie.observation_specs] == [(10,)]
    assert striker.action_spec.discrete_branches == (3, 3, 3)
    assert goalie.action_spec.discrete_branches == (3, 3)
    assert striker.action_spec.continuous_size == goalie.action_spec.continuous_size == 0
    for behavior in player.behaviors:
        assert (behavior.agents_per_area, behavior.decision_period, behavior.max_step) == (
            1,
            5,
            MAX_STEP,
        )


def test_unity_sb3_envs_lists_it(capsys: pytest.CaptureFixture[str]) -> None:
    from cli.main import main

    assert main(["envs", "--json"]) == 0
    players = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    behaviors = players["StrikersVsGoalie"]["behaviors"]
    assert [(b["name"], b["discrete_branches"]) for b in behaviors] == [
        ("Striker?team=0", [3, 3, 3]),
        ("Goalie?team=1", [3, 3]),
    ]


def test_views_of_one_player_share_a_game_and_each_initialization_gets_a_new_one() -> None:
    parameters = EnvironmentParameters()
    first = make_views(2, parameters=parameters)
    assert first[0].game is first[1].game
    again = make_views(2, parameters=parameters)  # the academy initialized again
    assert again[0].game is again[1].game and again[0].game is not first[0].game
    assert make_views(2)[0].game is not again[0].game  # another player in the same process
    # Another kind of game joined through the same parameters object is kept apart.
    parameters = EnvironmentParameters()
    context = TaskContext(np.random.default_rng(0), parameters, RecordedStats(), 2)  # type: ignore[arg-type]
    tennis = TennisGame.join(0, 2, context)
    views = make_views(2, parameters=parameters)
    assert views[0].game is views[1].game
    assert TennisGame.join(1, 2, context) is tennis


def test_seeded_episodes_are_reproducible() -> None:
    def trajectory(seed: int) -> np.ndarray:
        views = make_views(4, seed=seed)
        rng = np.random.default_rng(5)
        positions = []
        for _ in range(200):
            actions = [rng.integers(0, 3, (4, len(b))).astype(np.int32) for b in BRANCHES]
            ended, _ = academy_step(views, actions)
            for view in views:
                view.begin_episode(np.flatnonzero(ended))
            positions.append(views[0].game.position.copy())
        return np.array(positions)

    np.testing.assert_array_equal(trajectory(1), trajectory(1))
    assert not np.array_equal(trajectory(1), trajectory(2))


# -- outcomes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ball", "velocity", "winner"),
    [
        ((4.95, 0.5), (5.0, 0.0), STRIKER),  # into the goal
        ((4.95, -1.9), (5.0, -1.0), STRIKER),  # just inside the post
        ((4.95, 2.5), (5.0, 0.0), GOALIE),  # over the goal line beside the goal
        ((-4.95, 0.0), (-5.0, 0.0), GOALIE),  # cleared past the striker's end
    ],
)
def test_outcomes_are_zero_sum_and_end_both_episodes_at_the_same_step(
    ball: tuple[float, float], velocity: tuple[float, float], winner: int
) -> None:
    views = make_views(2)
    game = views[0].game
    place(game, 0, striker=(0.0, 0.0), goalie=(4.0, -2.5), ball=ball, ball_velocity=velocity)
    place(game, 1, striker=(0.0, 0.0), goalie=(4.0, 0.0), ball=(-2.0, 0.0))  # nothing happens
    ended, rewards = academy_step(views, idle(2))
    assert ended.tolist() == [True, False]
    # The outcome replaces the step's existential reward; elsewhere the step adds it.
    assert rewards[winner][0] == 1.0
    assert rewards[1 - winner][0] == -1.0
    assert rewards[STRIKER][1] == pytest.approx(-EXISTENTIAL)
    assert rewards[GOALIE][1] == pytest.approx(EXISTENTIAL)
    stats = stats_of(views)
    assert stats.of("StrikersVsGoalie/GoalRate") == [float(winner == STRIKER)]
    assert stats.of("StrikersVsGoalie/SaveRate") == [float(winner == GOALIE)]
    # The area restarts only once both behaviors began their new episode there.
    where = game.position[0, BALL].copy()
    views[1].begin_episode(np.array([0]))
    np.testing.assert_array_equal(game.position[0, BALL], where)
    views[0].begin_episode(np.array([0]))
    assert abs(game.position[0, BALL, 0]) <= 1.0 and not game.velocity[0].any()
    assert len(stats.values) == 2  # a decided episode is not counted again at the restart


def test_a_touch_kicks_the_ball_away_from_the_agent() -> None:
    views = make_views(1)
    game = views[0].game
    # The striker runs forward (+x) into a ball ahead and to its left.
    place(game, 0, striker=(0.0, 0.0), goalie=(4.0, 0.0), ball=(0.9, 0.3))
    actions = idle(1)
    actions[0][0] = (1, 0, 0)
    for _ in range(10):
        striker = game.position[0, STRIKER].copy()  # where the kick happens: before it moves
        academy_step(views, actions)
        if game.velocity[0, BALL].any():
            break
    else:
        pytest.fail("the striker never reached the ball")
    # Put back at contact distance from the striker, leaving away from it at 6 units/s plus
    # half the striker's 4 units/s forward.
    away = game.position[0, BALL] - striker
    assert np.linalg.norm(away) == pytest.approx(CONTACT)
    expected = away / CONTACT * KICK_SPEED + KICK_CARRY * np.array([4.0, 0.0])
    np.testing.assert_allclose(game.velocity[0, BALL], expected)
    assert away[1] > 0.0  # to the left, as the ball was


def test_the_goalie_saves_a_shot_at_it_and_the_nearer_agent_kicks() -> None:
    views = make_views(2)
    game = views[0].game
    # Area 0: a shot straight at the goalie. Area 1: both agents touch the ball; the goalie is
    # nearer and kicks it toward -x.
    place(game, 0, striker=(0.0, 3.0), goalie=(4.0, 0.0), ball=(2.0, 0.0), ball_velocity=(6, 0))
    place(game, 1, striker=(2.7, 0.0), goalie=(4.0, 0.0), ball=(3.4, 0.0))
    academy_step(views, idle(2))
    np.testing.assert_allclose(game.velocity[1, BALL], (-KICK_SPEED, 0.0))
    for _ in range(100):
        ended, _ = academy_step(views, idle(2))
        assert not ended[0]
    assert game.velocity[0, BALL, 0] < 0 and game.position[0, BALL, 0] < 3.0


def test_the_ball_bounces_off_the_side_walls() -> None:
    views = make_views(1)
    game = views[0].game
    place(game, 0, striker=(-4.0, 0.0), goalie=(4.5, 0.0), ball=(0.0, 3.2), ball_velocity=(0, 5))
    academy_step(views, idle(1))
    assert game.position[0, BALL, 1] < 3.25 and game.velocity[0, BALL, 1] < 0


def test_agents_stay_in_their_areas() -> None:
    views = make_views(1)
    game = views[0].game
    place(game, 0, striker=(0.0, 0.0), goalie=(4.0, 0.0), ball=(0.0, -3.0), heading=np.pi / 2)
    actions = [np.array([[1, 0, 0]], np.int32), np.array([[1, 1]], np.int32)]
    for _ in range(200):  # the striker runs up (+y), the goalie out and right
        academy_step(views, actions)
    np.testing.assert_allclose(game.position[0, STRIKER], (0.0, 3.0), atol=1e-9)
    np.testing.assert_allclose(game.position[0, GOALIE], (2.5, 2.5), atol=1e-9)
    np.testing.assert_allclose(game.velocity[0, :BALL], 0.0, atol=1e-9)  # blocked: at rest


def test_the_step_limit_interrupts_both_behaviors_together_with_the_existential_reward() -> None:
    academy = Academy(get_player("StrikersVsGoalie").tasks, max_step=20)
    academy.initialize(seed=0, num_areas=2)
    out = UnityRLOutputProto()
    academy.reset(out)
    for _ in range(10):
        infos = {name: list(out.agentInfos[name].value) for name in NAMES}
        done = {name: [i for i in infos[name] if i.done] for name in NAMES}
        if done[NAMES[0]]:
            break
        assert not done[NAMES[1]]
        rl_input = UnityRLInputProto()
        for name, branches in zip(NAMES, BRANCHES, strict=True):
            for _ in infos[name]:
                rl_input.agent_actions[name].value.add(discrete_actions=[0] * len(branches))
        out = UnityRLOutputProto()
        academy.step(rl_input.agent_actions, out)
    else:
        pytest.fail("the step limit never came")
    for name in NAMES:
        assert len(done[name]) == 2
        assert all(i.max_step_reached for i in done[name])
    # What the existential reward added over the last decision (5 academy steps).
    striker, goalie = ([i.reward for i in done[name]] for name in NAMES)
    assert striker == pytest.approx([-5 * EXISTENTIAL] * 2)
    assert goalie == pytest.approx([5 * EXISTENTIAL] * 2)


def test_existential_reward_adds_up_to_one_over_a_full_episode() -> None:
    views = make_views(3)
    totals = np.zeros((2, 3))
    for game_step in range(100):
        views[0].game.position[:, BALL] = (-2.0, 0.0)  # nobody near the ball, no outcome
        views[0].game.velocity[:, BALL] = 0.0
        ended, rewards = academy_step(views, idle(3))
        assert not ended.any(), game_step
        totals += rewards
    # Scaled to a full episode: -1 for the striker, +1 for the goalie.
    np.testing.assert_allclose(totals[STRIKER] * MAX_STEP / 100, -1.0, rtol=1e-5)
    np.testing.assert_allclose(totals[GOALIE] * MAX_STEP / 100, 1.0, rtol=1e-5)


@pytest.mark.parametrize("ball_touch", [None, 0.5])
def test_a_kick_earns_the_kicker_the_ball_touch_reward(ball_touch: float | None) -> None:
    parameters = EnvironmentParameters()
    if ball_touch is not None:
        parameters.set("ball_touch", ParameterSampler(None, (ball_touch,)))
    views = make_views(2, parameters=parameters)
    game = views[0].game
    # Area 0: the striker touches the ball; area 1: the goalie does.
    place(game, 0, striker=(0.0, 0.0), goalie=(4.0, 0.0), ball=(CONTACT - 0.05, 0.0))
    place(game, 1, striker=(-3.0, 0.0), goalie=(4.0, 0.0), ball=(4.0 - CONTACT + 0.05, 0.0))
    ended, rewards = academy_step(views, idle(2))
    assert not ended.any()
    touch = BALL_TOUCH_REWARD * (ball_touch or 0.0)  # ML-Agents' default: no touch reward
    assert rewards[STRIKER].tolist() == pytest.approx([touch - EXISTENTIAL, -EXISTENTIAL])
    assert rewards[GOALIE].tolist() == pytest.approx([EXISTENTIAL, touch + EXISTENTIAL])
    # The ball left: the next step has no kick.
    _, rewards = academy_step(views, idle(2))
    assert rewards[STRIKER].tolist() == pytest.approx([-EXISTENTIAL] * 2)


def test_unfinished_episodes_count_as_neither_goal_nor_save() -> None:
    views = make_views(2)
    stats = stats_of(views)
    for view in views:  # a reset before any step: nothing to count
        view.begin_episode(np.arange(2))
    assert stats.values == []
    game = views[0].game
    place(game, 0, striker=(-3.0, 0.0), goalie=(4.0, 0.0), ball=(0.0, 0.0))
    place(game, 1, striker=(-3.0, 0.0), goalie=(4.0, 0.0), ball=(0.0, 0.0))
    academy_step(views, idle(2))
    for view in views:  # the step limit or a reset cut both short
        view.begin_episode(np.arange(2))
    assert stats.of("StrikersVsGoalie/GoalRate") == [0.0, 0.0]
    assert stats.of("StrikersVsGoalie/SaveRate") == [0.0, 0.0]


# -- observations --------------------------------------------------------------------------


def test_observations_are_in_each_agent_frame() -> None:
    views = make_views(1)
    game = views[0].game
    # The striker faces +y; the ball is 2 ahead of it and 1 to its right (+x).
    place(game, 0, striker=(0.0, 0.0), goalie=(4.0, 1.0), ball=(1.0, 2.0), heading=np.pi / 2)
    game.velocity[0, BALL] = (3.0, 0.0)  # to the striker's right
    game.velocity[0, GOALIE] = (0.0, -2.0)
    striker = views[0].observe(np.array([0]))[0][0]
    goalie = views[1].observe(np.array([0]))[0][0]
    np.testing.assert_allclose(striker[:4], (0.0, 0.0, 0.0, 1.0), atol=1e-6)
    np.testing.assert_allclose(striker[4:6] * DIAGONAL, (2.0, 1.0), atol=1e-5)
    np.testing.assert_allclose(striker[6:8] * SPEED_SCALE, (0.0, 3.0), atol=1e-5)
    np.testing.assert_allclose(striker[8:10] * DIAGONAL, (0.0, HALF_LENGTH), atol=1e-5)
    np.testing.assert_allclose(striker[10:12] * DIAGONAL, (1.0, 4.0), atol=1e-5)
    np.testing.assert_allclose(striker[12:14] * SPEED_SCALE, (-2.0, 0.0), atol=1e-5)
    # The goalie: 1 out from the goal line, 1 to its right; the ball 3 farther out, 1 to its
    # right, rolling out; the striker 4 farther out and 1 to its left.
    np.testing.assert_allclose(goalie[:2], (1.0 / 2.5, 1.0 / 2.5), atol=1e-6)
    np.testing.assert_allclose(goalie[2:4] * (10.0, 7.0), (3.0, 1.0), atol=1e-5)
    np.testing.assert_allclose(goalie[4:6] * SPEED_SCALE, (-3.0, 0.0), atol=1e-5)
    np.testing.assert_allclose(goalie[6:8] * (10.0, 7.0), (4.0, -1.0), atol=1e-5)
    np.testing.assert_allclose(goalie[8:10], (0.0, 0.0), atol=1e-6)


def test_observations_stay_finite_and_within_minus_one_to_one() -> None:
    areas = 64
    views = make_views(areas, seed=3)
    rng = np.random.default_rng(4)
    everyone = np.arange(areas)
    policies = (striker_policy, goalie_policy)
    highest = [0.0, 0.0]
    for step in range(2000):
        if step % 5 == 0:
            obs = [v.observe(everyone)[0] for v in views]
            for team, o in enumerate(obs):
                assert o.dtype == np.float32 and np.isfinite(o).all()
                highest[team] = max(highest[team], float(np.abs(o).max()))
            # Half the areas play scripted, half random: fast balls and agents at the walls.
            actions = [p(o) for p, o in zip(policies, obs, strict=True)]
            for a, b in zip(actions, BRANCHES, strict=True):
                a[::2] = rng.integers(0, 3, (areas // 2, len(b)))
        ended, _ = academy_step(views, actions)
        for view in views:
            view.begin_episode(np.flatnonzero(ended))
    assert 0.9 < highest[STRIKER] <= 1.0 and 0.9 < highest[GOALIE] <= 1.0


# -- difficulty ----------------------------------------------------------------------------


def random_striker(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 3, (len(obs), 3)).astype(np.int32)


def random_goalie(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 3, (len(obs), 2)).astype(np.int32)


def scripted_striker(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return striker_policy(obs)


def scripted_goalie(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return goalie_policy(obs)


def goal_rate(striker: Policy, goalie: Policy, areas: int = 300, seed: int = 0) -> float:
    """Share of goals in the first episode of every area (the others: saves or time-outs)."""
    views = make_views(areas, seed=seed)
    rng = np.random.default_rng(seed + 100)
    everyone = np.arange(areas)
    outcome = np.zeros(areas)  # +1 goal, -1 save, 0 not over (yet)
    for step in range(MAX_STEP):
        if step % 5 == 0:
            actions = [
                policy(view.observe(everyone)[0], rng)
                for policy, view in zip((striker, goalie), views, strict=True)
            ]
        ended, rewards = academy_step(views, actions)
        if ended.any():
            first = ended & (outcome == 0)
            outcome[first] = rewards[STRIKER][first]
            for view in views:
                view.begin_episode(np.flatnonzero(ended))
    np.testing.assert_array_equal(np.abs(outcome[outcome != 0]), 1.0)
    return float((outcome > 0).mean())


def test_random_play_scores_rarely_and_scripted_players_do_better() -> None:
    random = goal_rate(random_striker, random_goalie)
    scripted = goal_rate(scripted_striker, random_goalie)
    guarded = goal_rate(scripted_striker, scripted_goalie)
    rates = f"random {random:.0%}, scripted {scripted:.0%}, against a scripted goalie {guarded:.0%}"
    assert 0.04 <= random <= 0.25, rates
    assert scripted >= 0.7, rates
    assert 0.05 <= guarded <= scripted - 0.3, rates
    assert goal_rate(random_striker, scripted_goalie) < random, rates


# -- heuristics and the player process -----------------------------------------------------


def test_the_heuristic_drives_each_behavior_by_its_observation_size() -> None:
    heuristic = heuristic_for("StrikersVsGoalie")
    views = make_views(3)
    for view, branches in zip(views, BRANCHES, strict=True):
        obs = view.observe(np.arange(3))[0]
        steps = DecisionSteps(
            obs=[obs],
            reward=np.zeros(3, np.float32),
            agent_id=np.arange(3, dtype=np.int32),
            group_id=np.zeros(3, np.int32),
            group_reward=np.zeros(3, np.float32),
        )
        discrete = heuristic(steps).discrete
        assert discrete.shape == (3, len(branches)) and discrete.dtype == np.int32
        assert ((discrete >= 0) & (discrete < 3)).all()
        empty = heuristic(DecisionSteps.empty(view.behavior_spec)).discrete
        assert empty.shape == (0, len(branches))


def test_unity_environment_plays_builtin_strikers_vs_goalie() -> None:
    from unity_gym import UnityEnvironment
    from unity_gym.exception import UnityEnvironmentException
    from unity_gym.side_channel import StatsSideChannel

    stats = StatsSideChannel()
    env = UnityEnvironment(
        "builtin:StrikersVsGoalie",
        base_port=free_port(),
        timeout_wait=30,
        seed=1,
        num_areas=3,
        side_channels=[stats],
    )
    pid = env.player_pid
    heuristic = heuristic_for("StrikersVsGoalie")
    try:
        env.reset()
        assert set(env.behavior_specs) == set(NAMES)
        finals: list[tuple[float, float]] = []
        for _ in range(120):
            terminals = [env.get_steps(name)[1] for name in NAMES]
            assert len(terminals[0]) == len(terminals[1])  # both end at the same step
            # Agent ids grow with the area in each behavior: sorted, the rows pair up by area.
            striker, goalie = (t.reward[np.argsort(t.agent_id)] for t in terminals)
            finals += zip(striker.tolist(), goalie.tolist(), strict=True)
            for name in NAMES:
                decisions = env.get_steps(name)[0]
                assert np.abs(decisions.obs[0]).max(initial=0.0) <= 1.0
                env.set_actions(name, heuristic(decisions))
            env.step()
        assert finals, "no episode ended"
        assert all(s + g == 0.0 and abs(s) == 1.0 for s, g in finals)  # zero-sum, decided
        received = stats.get_and_reset_stats()
        assert "StrikersVsGoalie/GoalRate" in received
    finally:
        with contextlib.suppress(UnityEnvironmentException):
            env.close()
    if pid is not None:
        assert process_gone(pid), f"player {pid} survived close()"
