"""``unity-sb3 match``: saved policies, heuristics and random play against each other."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cli.main import main
from cli.match_command import MatchResult, play_match
from tests.conftest import FIXTURES, live_children
from unity_gym.base_env import DecisionSteps
from unity_gym.players import get_player

TENNIS = {"Tennis?team=0": "heuristic", "Tennis?team=1": "random"}
LINE = re.compile(
    r"^(?P<first>.+) vs (?P<others>.+): (?P<games>\d+) games: (?P<wins>\d+) wins?, "
    r"(?P<draws>\d+) draws?, (?P<losses>\d+) loss(es)? \(win rate (?P<rate>[\d.]+), "
    r"score (?P<score>[\d.]+)\)$"
)


@pytest.fixture(autouse=True)
def no_player_left() -> Any:
    before = live_children()
    yield
    assert live_children() <= before, "match left a player running"


@pytest.fixture(scope="module")
def tennis_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PPO checkpoint of Tennis trained a few hundred steps with observation normalisation,
    saved as `learn` saves one (normaliser statistics beside it), and its .onnx export."""
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    from cli.behavior_learner import _normalizer_arrays
    from unity_gym.sb3_vec_env import UnityVecEnv

    folder = tmp_path_factory.mktemp("match") / "Tennis"
    folder.mkdir()
    venv = UnityVecEnv("builtin:Tennis", behavior_name="Tennis?team=0", seed=0)
    env = VecNormalize(VecMonitor(venv), norm_reward=False, clip_obs=5.0)
    try:
        model = PPO(
            "MlpPolicy",
            env,
            n_steps=64,
            batch_size=64,
            n_epochs=1,
            seed=0,
            device="cpu",
            policy_kwargs={"net_arch": [16]},
        )
        model.learn(256)
        model.save(folder / "Tennis-256.zip")
        np.savez(folder / "Tennis-256.normalizer.npz", **_normalizer_arrays(env))  # type: ignore[arg-type]
        if _has_onnx():
            from sb3_ext.onnx_export import export_onnx

            spec = venv.envs[0].behavior_specs["Tennis?team=0"]
            export_onnx(model, spec, folder / "Tennis.onnx", normalization=env)
    finally:
        env.close()
    return folder / "Tennis-256.zip"


def _has_onnx() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


# -- outcomes -----------------------------------------------------------------------------


@pytest.mark.protocol
def test_heuristic_beats_random_at_tennis(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["match", "builtin:Tennis", "--games", "30", "--seed", "0"]
    policies = ["--policy", "Tennis?team=0=heuristic", "--policy", "Tennis?team=1=random"]
    assert main([*argv, *policies]) == 0
    line = capsys.readouterr().out.strip()
    found = LINE.match(line)
    assert found, line
    assert found["first"] == "Tennis?team=0 (heuristic)"
    assert found["others"] == "Tennis?team=1 (random)"
    wins, draws, losses = (int(found[k]) for k in ("wins", "draws", "losses"))
    assert wins + draws + losses == int(found["games"]) == 30
    # Measured: 27 of 30 with seed 0 (24-27 over seeds 0-4); a point always has a winner.
    assert wins >= 21 and draws == 0
    assert float(found["rate"]) == pytest.approx(wins / 30, abs=1e-3)


@pytest.mark.protocol
def test_play_match_returns_the_counts_and_is_seeded() -> None:
    result = play_match("builtin:Tennis", TENNIS, games=12, seed=3, num_areas=3)
    assert isinstance(result, MatchResult)
    assert result.games == result.wins + result.draws + result.losses == 12
    assert result.win_rate == pytest.approx(result.wins / 12)
    assert result.score == pytest.approx((result.wins + 0.5 * result.draws) / 12)
    assert result.behavior == "Tennis?team=0" and result.policies == TENNIS
    again = play_match("builtin:Tennis", TENNIS, games=12, seed=3, num_areas=3)
    assert (again.wins, again.draws, again.losses) == (result.wins, result.draws, result.losses)
    # The first policy's behavior is the one rated.
    random_first = {"Tennis?team=1": "random", "Tennis?team=0": "heuristic"}
    mirrored = play_match("builtin:Tennis", random_first, 12, seed=3)
    assert mirrored.behavior == "Tennis?team=1" and mirrored.losses > mirrored.wins


@pytest.mark.protocol
def test_random_strikers_vs_goalie_gives_every_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["match", "builtin:StrikersVsGoalie", "--policy", "Striker=random"]
    argv += ["--policy", "Goalie=random", "--games", "40", "--num-areas", "8", "--seed", "0"]
    assert main([*argv, "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["behavior"] == "Striker?team=0"
    assert result["policies"] == {"Striker?team=0": "random", "Goalie?team=1": "random"}
    # Measured: 4 wins, 28 draws (step limit), 8 losses; about 11% / 74% / 15% in the long run.
    assert result["games"] == result["wins"] + result["draws"] + result["losses"] == 40
    assert result["wins"] > 0 and result["draws"] > 0 and result["losses"] > 0
    assert result["draws"] > result["wins"] + result["losses"]
    assert result["score"] == pytest.approx((result["wins"] + 0.5 * result["draws"]) / 40)


@pytest.mark.protocol
def test_random_policy_keeps_to_the_action_masks() -> None:
    from cli.scene_policies import RandomPolicy

    spec = get_player("GridWorld").tasks[0].behavior_spec
    n = 600
    forbidden = np.zeros((n, 5), bool)
    forbidden[:, [0, 2]] = True
    forbidden[:3] = True  # nothing allowed: the first action
    steps = DecisionSteps(
        obs=[np.zeros((n, *spec.observation_specs[0].shape), np.float32)],
        reward=np.zeros(n, np.float32),
        agent_id=np.arange(n, dtype=np.int32),
        action_mask=[forbidden],
        group_id=np.zeros(n, np.int32),
        group_reward=np.zeros(n, np.float32),
    )
    chosen = RandomPolicy(spec, seed=0)(steps).discrete[:, 0]
    assert set(chosen[3:].tolist()) == {1, 3, 4} and not chosen[:3].any()


# -- saved models -------------------------------------------------------------------------


def test_sb3_checkpoint_plays(tennis_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["match", "builtin:Tennis", "--policy", f"Tennis?team=0={tennis_model}"]
    argv += ["--policy", "Tennis?team=1=heuristic", "--games", "6", "--num-areas", "2"]
    assert main([*argv, "--seed", "1"]) == 0
    found = LINE.match(capsys.readouterr().out.strip())
    assert found and found["first"] == f"Tennis?team=0 ({tennis_model})"
    assert int(found["games"]) == 6
    result = play_match(
        "builtin:Tennis",
        {"Tennis?team=1": str(tennis_model), "Tennis?team=0": "random"},
        games=4,
        seed=2,
        deterministic=True,
    )
    assert result.games == 4


def test_onnx_export_plays(tennis_model: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    onnx = tennis_model.with_name("Tennis.onnx")
    result = play_match(
        "builtin:Tennis", {"Tennis?team=0": str(onnx), "Tennis?team=1": "random"}, 5, seed=0
    )
    assert result.games == 5 and result.policies["Tennis?team=0"] == str(onnx)


def test_checkpoint_acts_as_its_export_with_its_normalizer(
    tennis_model: Path, tmp_path: Path
) -> None:
    """Greedy actions of the .zip (normalised with the .normalizer.npz beside it) are those of
    the .onnx, which has the statistics folded in; without the file they are not."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from cli.scene_policies import policy_for

    spec = get_player("Tennis").tasks[0].behavior_spec
    rng = np.random.default_rng(0)
    steps = DecisionSteps(
        obs=[rng.normal(0, 3, (5, 12)).astype(np.float32)],
        reward=np.zeros(5, np.float32),
        agent_id=np.arange(5, dtype=np.int32),
        group_id=np.zeros(5, np.int32),
        group_reward=np.zeros(5, np.float32),
    )

    def actions(path: Path) -> np.ndarray:
        policy = policy_for(str(path), spec, "Tennis?team=0", "builtin:Tennis", deterministic=True)
        return policy(steps).continuous

    expected = actions(tennis_model.with_name("Tennis.onnx"))
    np.testing.assert_allclose(actions(tennis_model), expected, atol=1e-4)
    bare = shutil.copy(tennis_model, tmp_path / tennis_model.name)
    assert not np.allclose(actions(Path(bare)), expected, atol=1e-3)


# -- errors -------------------------------------------------------------------------------


@pytest.mark.protocol
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--games", "0", "--policy", "Tennis?team=0=random"], "--games 0: play at least one"),
        (["--games", "1"], "no --policy given"),
        (["--games", "1", "--policy", "random"], "--policy random: write it as BEHAVIOR=SPEC"),
        (
            ["--games", "1", "--policy", "Tennis?team=0=greedy"],
            "--policy Tennis?team=0=greedy: 'greedy' is not a policy",
        ),
        (
            ["--games", "1", "--policy", "Tennis?team=0=missing.zip"],
            "the file missing.zip does not exist",
        ),
        (
            ["--games", "1", "--policy", "Nope=random", "--policy", "Tennis?team=1=random"],
            "--policy Nope=random: builtin:Tennis has no behavior 'Nope'",
        ),
        (
            ["--games", "1", "--policy", "Tennis=random"],
            "'Tennis' names several behaviors of builtin:Tennis",
        ),
        (
            ["--games", "1", "--policy", "Tennis?team=0=random"],
            "builtin:Tennis: no policy for Tennis?team=1; every behavior needs one: add "
            "--policy 'Tennis?team=1=SPEC'",
        ),
        (
            [
                "--games",
                "1",
                "--policy",
                "Tennis?team=0=random",
                "--policy",
                "Tennis?team=0=random",
            ],
            "Tennis?team=0 already has a policy",
        ),
    ],
)
def test_errors_name_the_value_and_the_fix(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["match", "builtin:Tennis", *argv]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("unity-sb3 match: error:") and err.count("\n") == 1


@pytest.mark.protocol
@pytest.mark.parametrize(
    ("env", "policy", "message"),
    [
        ("no/such/build", "Agent=random", "could not start 'no/such/build'"),
        ("builtin:Nope", "Agent=random", "no built-in player named 'Nope'"),
        ("builtin:Pyramids", "Pyramids=heuristic", "Pyramids has no heuristic"),
    ],
)
def test_scene_errors(
    env: str, policy: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["match", env, "--policy", policy, "--games", "1"]) == 1
    assert message in capsys.readouterr().err


def test_models_for_another_behavior_are_refused(
    tennis_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["match", "builtin:StrikersVsGoalie", "--games", "1", "--policy", "Goalie=random"]
    assert main([*argv, "--policy", f"Striker={tennis_model}"]) == 1
    err = capsys.readouterr().err
    assert f"--policy Striker={tennis_model} does not fit the behavior Striker?team=0" in err
    assert "the model's observations are Box(12,), the behavior's Box(14,)" in err
    if _has_onnx():
        onnx = FIXTURES / "onnx" / "3DBall.onnx"
        assert main([*argv, "--policy", f"Striker={onnx}"]) == 1
        err = capsys.readouterr().err
        assert f"--policy Striker={onnx} does not fit the behavior Striker?team=0" in err
        assert "inspect-model" in err


@pytest.mark.protocol
def test_ctrl_c_ends_the_player(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import cli.match_command

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.match_command, "_play", interrupted)
    argv = ["match", "builtin:Tennis", "--games", "3", "--policy", "Tennis?team=0=random"]
    assert main([*argv, "--policy", "Tennis?team=1=random"]) == 130
    assert "interrupted" in capsys.readouterr().err
