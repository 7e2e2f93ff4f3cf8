"""sb3_ext.self_play: ELO arithmetic, the snapshot ring, opponent draws, team rotation, and
what reaches the learning model."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.vec_env import VecNormalize

from sb3_ext.self_play import (
    LATEST,
    Ghost,
    PolicySnapshot,
    SelfPlayCallback,
    SelfPlayController,
    SelfPlaySettings,
    TeamBatch,
    TeamVecEnv,
    expected_score,
    game_result,
    rating_change,
)

# -- ELO ----------------------------------------------------------------------------------------


def test_elo_follows_mlagents_code_k_one() -> None:
    assert expected_score(1200, 1200) == 0.5
    # 1 - 1 / (1 + 10^(200/400)) = 0.759746...
    assert rating_change(1200, 1400, 1.0) == pytest.approx(0.7597469, abs=1e-6)
    assert rating_change(1200, 1400, 0.0) == pytest.approx(-0.2402531, abs=1e-6)
    assert rating_change(1200, 1400, 1.0, k_factor=16) == pytest.approx(12.15595, abs=1e-4)
    assert [game_result(r) for r in (2.0, -0.1, 0.0)] == [1.0, 0.0, 0.5]


def test_a_win_moves_the_learner_up_and_the_opponent_snapshot_down() -> None:
    settings = SelfPlaySettings(window=4, initial_elo=1200.0)
    mine, theirs = Ghost("A", ["a"], settings), Ghost("B", ["b"], settings)
    controller = SelfPlayController()
    controller.subscribe(mine)
    controller.subscribe(theirs)
    theirs.elos[2] = 1300.0
    theirs.current_opponent = 2
    expected = 1.0 / (1.0 + 10 ** (100 / 400))  # 0.35993
    assert controller.record_game("a", 1.0) == pytest.approx(1200 + 1 - expected)
    assert theirs.elos[2] == pytest.approx(1300 - (1 - expected))
    assert theirs.current_elo == 1200.0  # the other model's own rating is untouched


def test_playing_the_latest_self_leaves_the_rating_where_it_is() -> None:
    ghost = Ghost("Tennis", ["t0", "t1"], SelfPlaySettings())
    controller = SelfPlayController()
    controller.subscribe(ghost)
    ghost.current_opponent = LATEST
    for result in (1.0, 1.0, 0.0, 0.5):
        controller.record_game("t0", result)
    assert ghost.current_elo == pytest.approx(1200.0)


# -- snapshots and swaps ------------------------------------------------------------------------


def _snapshot(tag: float) -> PolicySnapshot:
    return PolicySnapshot({"w": th.tensor([tag])})


def test_snapshot_ring_keeps_window_newest_with_their_ratings() -> None:
    ghost = Ghost("A", ["a"], SelfPlaySettings(window=3, save_steps=10))
    for i in range(5):
        ghost.elos[LATEST] = 1000.0 + i
        ghost.save_snapshot(_snapshot(i), learner_steps=10 * i)
    assert len(ghost.snapshots) == 3
    # Slots 0, 1, 2 got snapshots 0, 1, 2; then 3 and 4 replaced the two oldest.
    assert [float(s.weights["w"]) for s in ghost.snapshots] == [3.0, 4.0, 2.0]
    assert ghost.elos[:3] == [1003.0, 1004.0, 1002.0]
    assert ghost.snapshot_counter == 2 and ghost.last_save == 40
    assert not ghost.snapshot_due(50) and ghost.snapshot_due(51)


def test_swaps_pick_latest_at_the_ratio_else_a_uniform_snapshot() -> None:
    ghost = Ghost("A", ["a"], SelfPlaySettings(window=5, play_against_latest_model_ratio=0.3), 0)
    for i in range(5):
        ghost.save_snapshot(_snapshot(i), i)
    draws = np.array([ghost.draw_opponent() for _ in range(20000)])
    assert np.mean(draws == LATEST) == pytest.approx(0.3, abs=0.015)
    counts = np.bincount(draws[draws != LATEST], minlength=5) / 20000
    assert counts == pytest.approx([0.14] * 5, abs=0.012)


def test_swap_steps_count_ghost_steps() -> None:
    ghost = Ghost("A", ["a"], SelfPlaySettings(swap_steps=100))
    assert not ghost.count_ghost_steps(60)
    assert ghost.count_ghost_steps(60)  # 120 > 100 since the last swap
    ghost.draw_opponent()
    assert ghost.last_swap == 120 and not ghost.count_ghost_steps(100)


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("window", 0, "self_play.window is 0"),
        ("save_steps", -5, "self_play.save_steps is -5"),
        ("play_against_latest_model_ratio", 1.5, "it is a probability"),
    ],
)
def test_bad_settings_say_which_key(key: str, value: float, text: str) -> None:
    with pytest.raises(ValueError, match=text):
        SelfPlaySettings(**{key: value})  # type: ignore[arg-type]


def test_team_change_defaults_to_five_save_steps() -> None:
    assert SelfPlaySettings(save_steps=300).team_change_steps == 1500
    assert SelfPlaySettings(save_steps=300, team_change=700).team_change_steps == 700


# -- rotation -----------------------------------------------------------------------------------


def test_learning_team_rotates_through_every_team_and_restarts_the_game() -> None:
    restarts: list[str | None] = []
    controller = SelfPlayController()
    controller.add_restart(lambda: restarts.append(controller.learning_team))
    a = Ghost("A", ["a0", "a1"], SelfPlaySettings())
    b = Ghost("B", ["b0"], SelfPlaySettings())
    controller.subscribe(a)
    controller.subscribe(b)
    order = [controller.learning_team]
    for _ in range(4):
        order.append(controller.change_learning_team())
    assert order == ["a0", "a1", "b0", "a0", "a1"]
    assert restarts == order[1:]
    assert controller.opponent_ghost("a0") is b and controller.opponent_ghost("b0") is a
    # A finished model's teams leave the rotation; the other model learns from then on.
    controller.finish(a)
    assert controller.learning_team == "b0"
    assert controller.change_learning_team() == "b0"


def test_rotation_and_league_survive_a_state_dict_round_trip() -> None:
    settings = SelfPlaySettings(window=3)
    ghost = Ghost("A", ["a", "b"], settings, seed=1)
    controller = SelfPlayController()
    controller.subscribe(ghost)
    for i in range(4):
        ghost.elos[LATEST] = 1250.0 + i
        ghost.save_snapshot(_snapshot(i), i)
    ghost.draw_opponent()
    controller.change_learning_team()
    buffer = io.BytesIO()
    th.save({"ghost": ghost.state_dict(), "controller": controller.state_dict()}, buffer)
    buffer.seek(0)
    state = th.load(buffer, weights_only=True)
    again, other = Ghost("A", ["a", "b"], settings, seed=9), SelfPlayController()
    other.subscribe(again)
    again.load_state_dict(state["ghost"])
    other.load_state_dict(state["controller"])
    assert again.elos == ghost.elos and again.current_opponent == ghost.current_opponent
    assert [float(s.weights["w"]) for s in again.snapshots] == [3.0, 1.0, 2.0]
    assert other.learning_team == "b" and other.changes == 1
    assert again.draw_opponent() == ghost.draw_opponent()  # the draws continue the same way


# -- TeamVecEnv on a scripted two-team game ----------------------------------------------------


class ScriptedGame:
    """Two teams of two agents. An agent's observation is (team, step count); a game lasts
    ``length`` steps and ends with +1 for team ``winner`` (-1 for the other)."""

    def __init__(self, length: int = 3, winner: str = "t0") -> None:
        self.length, self.winner = length, winner
        self.t = 0
        self.restarts = 0
        self._restart = False
        self.seen: list[dict[str, np.ndarray]] = []

    teams = ["t0", "t1"]

    def observation_space(self, team: str) -> spaces.Space[Any]:
        return spaces.Box(-10, 100, (2,), np.float32)

    def action_space(self, team: str) -> spaces.Space[Any]:
        return spaces.Box(-100, 100, (1,), np.float32)

    def num_agents(self, team: str) -> int:
        return 2

    def _obs(self, team: str) -> np.ndarray:
        return np.tile(np.array([float(self.teams.index(team)), self.t], np.float32), (2, 1))

    def reset(self) -> dict[str, TeamBatch]:
        self.t = 0
        return {
            t: TeamBatch(self._obs(t), np.zeros(2, np.float32), np.zeros(2, bool))
            for t in self.teams
        }

    def step(self, actions: Mapping[str, np.ndarray]) -> dict[str, TeamBatch]:
        self.seen.append({t: np.asarray(a).copy() for t, a in actions.items()})
        before = {t: self._obs(t) for t in self.teams}
        self.t += 1
        if self._restart or self.t >= self.length:
            cut = self._restart
            self._restart, self.t = False, 0
            self.restarts += cut
            batches = {}
            for team in self.teams:
                reward = 0.0 if cut else (1.0 if team == self.winner else -1.0)
                final = self._obs_at(team, before[team][0, 1] + 1)
                infos = [
                    {"terminal_observation": final, "TimeLimit.truncated": cut} for _ in range(2)
                ]
                batches[team] = TeamBatch(
                    self._obs(team), np.full(2, reward, np.float32), np.ones(2, bool), infos
                )
            return batches
        return {
            t: TeamBatch(self._obs(t), np.zeros(2, np.float32), np.zeros(2, bool))
            for t in self.teams
        }

    def _obs_at(self, team: str, t: float) -> np.ndarray:
        return np.array([float(self.teams.index(team)), t], np.float32)

    def restart(self) -> None:
        self._restart = True

    def close(self) -> None:
        pass


def _attached(game: ScriptedGame, **settings: Any) -> tuple[TeamVecEnv, PPO]:
    env = TeamVecEnv(game, SelfPlaySettings(**settings), name="T", seed=0)
    model = PPO("MlpPolicy", env, n_steps=8, batch_size=8, seed=0)
    env.attach(model)
    return env, model


def test_only_the_learning_team_reaches_sb3() -> None:
    game = ScriptedGame()
    env, _ = _attached(game)
    obs = env.reset()
    assert env.num_envs == 2 and np.all(obs[:, 0] == 0)  # team t0 learns first
    env.step_async(np.full((2, 1), 42.0, np.float32))
    obs, *_ = env.step_wait()
    assert np.all(obs[:, 0] == 0)
    assert np.all(game.seen[-1]["t0"] == 42.0)  # SB3's actions went to the learning team
    assert not np.any(game.seen[-1]["t1"] == 42.0)  # the snapshot chose the others
    assert env.ghost is not None and env.ghost.ghost_steps == 2  # two opponent agent-steps


def test_finished_games_rate_the_learner_and_a_team_change_restarts() -> None:
    game = ScriptedGame(length=2, winner="t0")
    env, _ = _attached(game, window=2)
    env.reset()
    assert env.ghost is not None and env.controller is not None
    env.ghost.current_opponent = 0  # rated against the first snapshot
    env.ghost.elos[0] = 1200.0
    for _ in range(2):
        env.step_async(np.zeros((2, 1), np.float32))
        _, rewards, dones, infos = env.step_wait()
    assert np.all(dones) and np.all(rewards == 1.0)
    assert env.elo_updates == pytest.approx([1200.5, 1200.5 + rating_change(1200.5, 1199.5, 1)])
    env.controller.change_learning_team()  # learning team t1; the game restarts next step
    env.step_async(np.zeros((2, 1), np.float32))
    obs, rewards, dones, infos = env.step_wait()
    assert game.restarts == 1
    assert np.all(dones) and np.all(rewards == 0.0)
    assert all(i["TimeLimit.truncated"] for i in infos)
    assert all(i["terminal_observation"][0] == 0 for i in infos)  # t0's episode ended
    assert np.all(obs[:, 0] == 1)  # SB3 now plays t1
    env.step_async(np.full((2, 1), 7.0, np.float32))
    env.step_wait()
    assert np.all(game.seen[-1]["t1"] == 7.0) and not np.any(game.seen[-1]["t0"] == 7.0)


def test_callback_saves_snapshots_and_changes_teams_on_schedule() -> None:
    game = ScriptedGame(length=5)
    env = TeamVecEnv(game, SelfPlaySettings(save_steps=10, team_change=30, window=3), seed=0)
    model = PPO("MlpPolicy", env, n_steps=8, batch_size=16, n_epochs=1, seed=0)
    model.learn(64, callback=SelfPlayCallback(env))
    assert env.ghost is not None and env.controller is not None
    # Steps come 2 at a time: a snapshot at the start, then once more than 10 steps passed
    # since the last (12, 24, 36, 48, 60): six saves in a ring of three. Team changes once
    # more than 30 learner steps passed since the last (32, 64).
    assert len(env.ghost.snapshots) == 3 and env.ghost.snapshot_counter == 6 % 3
    assert env.ghost.last_save == 60
    assert env.controller.changes == 2 and env.ghost.last_team_change == 64
    assert game.restarts == 1  # the change at 64 restarts at the next step, after learn


def test_snapshots_keep_the_normalizer_statistics_of_their_time() -> None:
    game = ScriptedGame()
    teams = TeamVecEnv(game, SelfPlaySettings(), seed=0)
    venv = VecNormalize(teams, norm_reward=False)
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=8, seed=0)
    teams.attach(model)
    venv.reset()
    for _ in range(3):
        venv.step(np.zeros((2, 1), np.float32))
    snapshot = PolicySnapshot.of(model)
    saved_mean = venv.obs_rms.mean.copy()
    for _ in range(5):
        venv.step(np.zeros((2, 1), np.float32))
    assert not np.allclose(venv.obs_rms.mean, saved_mean)
    assert snapshot.obs_statistics is not None
    assert np.allclose(snapshot.obs_statistics[""].mean, saved_mean)
    buffer = io.BytesIO()
    th.save(snapshot.state_dict(), buffer)
    buffer.seek(0)
    again = PolicySnapshot.from_state_dict(th.load(buffer, weights_only=True))
    assert again.obs_statistics is not None
    assert np.allclose(again.obs_statistics[""].mean, saved_mean)


def test_stepping_without_the_callback_says_what_is_missing() -> None:
    env = TeamVecEnv(ScriptedGame(), SelfPlaySettings())
    env.reset()
    env.step_async(np.zeros((2, 1), np.float32))
    with pytest.raises(RuntimeError, match="SelfPlayCallback"):
        env.step_wait()


def test_teams_of_different_kinds_need_their_own_model() -> None:
    game = ScriptedGame()
    game.observation_space = lambda team: spaces.Box(0, 1, (2 if team == "t0" else 3,))  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="different observation spaces"):
        TeamVecEnv(game, SelfPlaySettings())


def test_without_self_play_every_team_learns_together() -> None:
    game = ScriptedGame()
    env = TeamVecEnv(game)
    obs = env.reset()
    assert env.num_envs == 4 and obs[:, 0].tolist() == [0, 0, 1, 1]
    env.step_async(np.arange(4, dtype=np.float32).reshape(4, 1))
    env.step_wait()
    assert game.seen[-1]["t0"].ravel().tolist() == [0, 1]
    assert game.seen[-1]["t1"].ravel().tolist() == [2, 3]


@pytest.mark.parametrize("algorithm", ["SAC", "RecurrentPPO"])
def test_other_algorithms_train_by_self_play(algorithm: str) -> None:
    """SAC (a replay buffer of the learning team's transitions) and RecurrentPPO (snapshots
    keep their own memory) run the same schedule."""
    game = ScriptedGame(length=4)
    env = TeamVecEnv(game, SelfPlaySettings(save_steps=8, team_change=16, window=2), seed=0)
    if algorithm == "SAC":
        model: Any = SAC("MlpPolicy", env, learning_starts=8, batch_size=8, seed=0)
    else:
        from sb3_contrib import RecurrentPPO

        model = RecurrentPPO("MlpLstmPolicy", env, n_steps=8, batch_size=16, n_epochs=1, seed=0)
    model.learn(48, callback=SelfPlayCallback(env))
    assert env.controller is not None and env.controller.changes >= 2
    assert env.ghost is not None and len(env.ghost.snapshots) == 2
    assert env.elo_updates == []  # drained into the logger by the callback
    seen = {team for step in game.seen for team, a in step.items() if np.any(np.abs(a) > 0)}
    assert seen == {"t0", "t1"}  # both teams were played, by the model and by snapshots
