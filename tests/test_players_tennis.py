"""The Tennis player: specs, mirrored observations, zero-sum points, skill, several areas."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from tests.conftest import free_port
from unity_gym import ActionTuple, UnityEnvironment
from unity_gym.exception import UnityEnvironmentException
from unity_gym.players import get_player
from unity_gym.players.channels import EnvironmentParameters, StatsRecorder
from unity_gym.players.task import TaskContext
from unity_gym.players.tennis import (
    NOBODY,
    TennisGame,
    TennisTeam,
    TennisTeam0,
    TennisTeam1,
    tracking_policy,
)

pytestmark = pytest.mark.protocol

TEAMS = ("Tennis?team=0", "Tennis?team=1")
Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def track(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return tracking_policy(obs)


def random_play(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, (len(obs), 2)).astype(np.float32)


def stand_still(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.zeros((len(obs), 2), np.float32)


def make_views(areas: int, parameters: EnvironmentParameters | None = None) -> list[TennisTeam]:
    """Both teams' tasks as one player's academy builds them (shared parameters object)."""
    parameters = parameters or EnvironmentParameters()
    stats = StatsRecorder()
    contexts = [
        TaskContext(np.random.default_rng(team), parameters, stats, areas) for team in (0, 1)
    ]
    return [TennisTeam0(areas, contexts[0]), TennisTeam1(areas, contexts[1])]


def academy_step(
    views: list[TennisTeam], actions: list[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """One academy step of both teams: the areas whose point ended, and each team's rewards."""
    rewards = [np.zeros(v.num_agents) for v in views]
    ended = [
        v.act(a, np.zeros((v.num_agents, 0), np.int32), r)
        for v, a, r in zip(views, actions, rewards, strict=True)
    ]
    np.testing.assert_array_equal(ended[0], ended[1])  # a point ends both episodes at once
    return ended[0], rewards


# -- specs and wiring ----------------------------------------------------------------------


def test_registry_has_two_team_behaviors_with_the_same_spec() -> None:
    player = get_player("tennis")
    assert [b.name for b in player.behaviors] == list(TEAMS)
    for behavior in player.behaviors:
        assert (behavior.agents_per_area, behavior.decision_period, behavior.max_step) == (
            1,
            5,
            2000,
        )
        spec = behavior.spec
        assert [o.shape for o in spec.observation_specs] == [(12,)]
        assert spec.action_spec.continuous_size == 2 and spec.action_spec.discrete_branches == ()


def test_views_of_one_player_share_a_game_and_each_initialization_gets_a_new_one() -> None:
    parameters = EnvironmentParameters()
    first = make_views(2, parameters)
    assert first[0].game is first[1].game
    again = make_views(2, parameters)  # the academy initialized again
    assert again[0].game is again[1].game and again[0].game is not first[0].game
    other = make_views(2)  # another player in the same process
    assert other[0].game is not again[0].game


# -- mirroring -----------------------------------------------------------------------------


def mirror_area(game: TennisGame, source: int, target: int) -> None:
    """Make ``target`` the mirror image of ``source``: teams swapped, court axis negated."""
    game.agent_x[:, target] = -game.agent_x[::-1, source]
    game.agent_vx[:, target] = -game.agent_vx[::-1, source]
    game.agent_y[:, target] = game.agent_y[::-1, source]
    game.agent_vy[:, target] = game.agent_vy[::-1, source]
    game.ball_x[target], game.ball_vx[target] = -game.ball_x[source], -game.ball_vx[source]
    game.ball_y[target], game.ball_vy[target] = game.ball_y[source], game.ball_vy[source]
    hitter = game.last_hitter[source]
    game.last_hitter[target] = hitter if hitter == NOBODY else 1 - hitter


def test_mirrored_situations_look_and_play_the_same_for_both_teams() -> None:
    views = make_views(2)
    game = views[0].game
    # Area 0: mid-rally, team 1 just hit the ball toward team 0's side.
    game.agent_x[:, 0] = (-5.0, 3.0)
    game.agent_vx[:, 0] = (1.0, -2.0)
    game.agent_y[:, 0] = (0.2, 0.0)
    game.agent_vy[:, 0] = (1.5, 0.0)
    game.ball_x[0], game.ball_y[0], game.ball_vx[0], game.ball_vy[0] = 2.0, 2.5, -6.0, 4.0
    game.last_hitter[0] = 1
    mirror_area(game, 0, 1)
    everyone = np.arange(2)
    obs = [v.observe(everyone)[0] for v in views]
    np.testing.assert_array_equal(obs[0][0], obs[1][1])
    np.testing.assert_array_equal(obs[1][0], obs[0][1])
    assert obs[0][0, 4] > 0 and obs[1][0, 4] < 0  # each sees the ball on the far/near side

    # Team 0 tracks and team 1 stands still in area 0; the other way round in area 1. The two
    # areas stay mirror images until the same point ends both, won by the tracker.
    rng = np.random.default_rng(0)
    actions = [np.zeros((2, 2), np.float32) for _ in views]
    for step in range(2000):
        if step % 5 == 0:
            obs = [v.observe(everyone)[0] for v in views]
            np.testing.assert_allclose(obs[0][0], obs[1][1], atol=1e-5)
            np.testing.assert_allclose(obs[1][0], obs[0][1], atol=1e-5)
            actions[0][0], actions[1][1] = track(obs[0][:1], rng)[0], track(obs[1][1:], rng)[0]
        ended, rewards = academy_step(views, actions)
        if ended.any():
            break
    assert ended.tolist() == [True, True]
    assert rewards[0].tolist() == [1.0, -1.0] and rewards[1].tolist() == [-1.0, 1.0]


# -- points --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ball", "last_hitter", "loser"),
    [
        # (x, y, vx, vy): the ball lands inside team 0's half, far from its agent.
        ((-7.0, 0.05, 0.0, -5.0), 1, 0),
        # It lands inside team 1's half.
        ((7.0, 0.05, 0.0, -5.0), 0, 1),
        # Team 0's shot lands beyond team 1's baseline: out, team 0 loses.
        ((8.5, 0.05, 5.0, -5.0), 0, 0),
        # Team 1's shot hits the net from its side.
        ((0.05, 0.5, -6.0, 0.0), 1, 1),
        # A dropped serve nobody hit falls on team 1's side.
        ((7.0, 0.05, 0.0, -5.0), NOBODY, 1),
    ],
)
def test_a_point_is_zero_sum_and_ends_both_episodes_at_the_same_step(
    ball: tuple[float, float, float, float], last_hitter: int, loser: int
) -> None:
    views = make_views(1)
    game = views[0].game
    game.agent_x[:, 0] = (-2.0, 2.0)  # both agents far from where the ball comes down
    game.ball_x[0], game.ball_y[0], game.ball_vx[0], game.ball_vy[0] = ball
    game.last_hitter[0] = last_hitter
    ended, rewards = academy_step(views, [np.zeros((1, 2), np.float32)] * 2)
    assert ended.tolist() == [True]
    assert rewards[loser][0] == -1.0 and rewards[1 - loser][0] == 1.0
    # The area restarts only once both teams began their new episode.
    where = (game.ball_x[0], game.ball_y[0])
    views[0].begin_episode(np.array([0]))
    assert (game.ball_x[0], game.ball_y[0]) == where
    views[1].begin_episode(np.array([0]))
    assert game.ball_y[0] == 4.0 and game.last_hitter[0] == NOBODY


# -- through the player --------------------------------------------------------------------


@pytest.fixture
def open_tennis() -> Iterator[Callable[..., UnityEnvironment]]:
    """Opens built-in Tennis players on free ports and always closes them."""
    envs: list[UnityEnvironment] = []

    def make(**kwargs: object) -> UnityEnvironment:
        env = UnityEnvironment(
            "builtin:Tennis",
            base_port=free_port(),
            timeout_wait=30,
            **kwargs,  # type: ignore[arg-type]
        )
        envs.append(env)
        return env

    yield make
    for env in envs:
        with contextlib.suppress(UnityEnvironmentException):
            env.close()


def play_points(
    env: UnityEnvironment, policies: tuple[Policy, Policy], steps: int
) -> list[tuple[list[int], list[float], list[float], bool]]:
    """Play ``steps`` exchanges; per exchange with episode ends: agent ids (team 0 then 1),
    team 0's and team 1's terminal rewards (by area), and whether they were interrupted."""
    rng = np.random.default_rng(0)
    ends = []
    env.reset()
    for _ in range(steps):
        terminals = [env.get_steps(name)[1] for name in TEAMS]
        assert len(terminals[0]) == len(terminals[1])  # both teams end at the same step
        if len(terminals[0]):
            interrupted = terminals[0].interrupted.tolist()
            assert interrupted == terminals[1].interrupted.tolist()
            ids = terminals[0].agent_id.tolist() + terminals[1].agent_id.tolist()
            ends.append(
                (ids, terminals[0].reward.tolist(), terminals[1].reward.tolist(), any(interrupted))
            )
        for name, policy in zip(TEAMS, policies, strict=True):
            decisions = env.get_steps(name)[0]
            if len(decisions):
                actions = policy(decisions.obs[0], rng)
                env.set_actions(name, ActionTuple(continuous=actions))
        env.step()
    return ends


def test_the_player_has_both_teams_in_every_area(open_tennis) -> None:
    env = open_tennis(num_areas=3)
    env.reset()
    assert set(env.behavior_specs) == set(TEAMS)
    decisions = [env.get_steps(name)[0] for name in TEAMS]
    ids = [d.agent_id.tolist() for d in decisions]
    assert len(ids[0]) == len(ids[1]) == 3 and not set(ids[0]) & set(ids[1])
    # Same start in every area apart from the serve: each agent 4 units behind its net.
    for d in decisions:
        np.testing.assert_allclose(d.obs[0][:, 0], -4.0)


@pytest.mark.parametrize("tracker", [0, 1])
def test_tracking_beats_random_play_with_zero_sum_points_in_several_areas(
    open_tennis, tracker: int
) -> None:
    env = open_tennis(num_areas=4, seed=3)
    policies: tuple[Policy, Policy] = (track, random_play) if tracker == 0 else (random_play, track)
    ends = play_points(env, policies, 800)
    rewards = np.array([r for _, r0, r1, _ in ends for r in zip(r0, r1, strict=True)])
    assert len(rewards) >= 60
    np.testing.assert_array_equal(rewards.sum(axis=1), 0.0)  # zero-sum, point by point
    assert set(np.abs(rewards).ravel().tolist()) == {1.0}
    wins = (rewards[:, tracker] > 0).mean()
    assert wins > 0.7, f"the tracker won only {wins:.0%} of {len(rewards)} points"
    # Areas play independently: points end in different areas at different exchanges.
    assert any(len(ids) < 8 for ids, *_ in ends)


def test_the_step_limit_interrupts_both_teams_together(open_tennis) -> None:
    # The serve takes about 45 academy steps to fall: a limit of 20 always comes first.
    env = open_tennis(num_areas=2, additional_args=["--max-step", "20"])
    ends = play_points(env, (stand_still, stand_still), 20)
    assert ends and all(interrupted for *_, interrupted in ends)
    assert all(r0 == [0.0, 0.0] and r1 == [0.0, 0.0] for _, r0, r1, _ in ends)
