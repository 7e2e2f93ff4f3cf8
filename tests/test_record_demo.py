"""``unity-sb3 record-demo`` end to end on built-in players, and its error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from tests.conftest import FIXTURES, live_children
from unity_gym.demo import load_demonstration

pytestmark = pytest.mark.protocol

ONNX = FIXTURES / "onnx"


@pytest.fixture(autouse=True)
def no_player_left() -> object:
    before = live_children()
    yield
    assert live_children() <= before, "record-demo left a player running"


def test_heuristic_records_exact_episodes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "basic.demo"
    argv = ["record-demo", "builtin:Basic", "--heuristic", "--episodes", "3", "-o", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    demo = load_demonstration(out)
    info = demo.files[0]
    assert info.number_episodes == demo.dones.sum() == 3 and demo.dones[-1]
    assert info.behavior_name == "Basic?team=0"
    # The heuristic walks right to the large goal: 7 steps, return 0.93 per episode.
    assert len(demo) == 24
    assert info.mean_reward == pytest.approx(0.93, abs=1e-5)
    np.testing.assert_array_equal(demo.discrete_actions[~demo.dones, 0], 2)
    assert f"Wrote {out}: 3 episodes, 24 steps of Basic?team=0" in printed
    assert "mean episode reward 0.9300" in printed


def test_model_records_and_matches_its_policy(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    out = tmp_path / "model.demo"
    argv = ["record-demo", "builtin:Basic", "--model", str(ONNX / "Basic.onnx")]
    assert main([*argv, "--episodes", "2", "-o", str(out), "--seed", "3"]) == 0
    demo = load_demonstration(out)
    assert demo.files[0].number_episodes == 2 and demo.dones.sum() == 2
    # Recorded actions are the model's deterministic actions for the recorded observations.
    import onnxruntime

    session = onnxruntime.InferenceSession(str(ONNX / "Basic.onnx"))
    keep = ~demo.dones
    feed = {
        "obs_0": demo.observations[0][keep],
        "action_masks": np.ones((int(keep.sum()), 3), np.float32),
    }
    (expected,) = session.run(["deterministic_discrete_actions"], feed)
    np.testing.assert_array_equal(demo.discrete_actions[keep], expected)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["builtin:Basic", "--heuristic", "--episodes", "0"], "--episodes 0: record at least one"),
        (["builtin:Nope", "--heuristic", "--episodes", "1"], "no built-in player named 'Nope'"),
        (["no/such/build", "--heuristic", "--episodes", "1"], "neither a built-in player"),
        (["builtin:Pyramids", "--heuristic", "--episodes", "1"], "Pyramids has no heuristic"),
        (["builtin:Basic", "--model", "missing.onnx", "--episodes", "1"], "file does not exist"),
        (["builtin:Tennis", "--heuristic", "--episodes", "1"], "choose the one to record"),
        (
            ["builtin:Basic", "--heuristic", "--episodes", "1", "--behavior", "Ball"],
            "--behavior Ball: builtin:Basic has no single behavior",
        ),
    ],
)
def test_errors_name_value_and_fix(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.demo"
    assert main(["record-demo", *argv, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("unity-sb3 record-demo: error:") and err.count("\n") == 1
    assert not out.exists()


def test_model_for_another_behavior_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = ONNX / "3DBall.onnx"
    out = tmp_path / "x.demo"
    argv = ["record-demo", "builtin:Basic", "--model", str(model), "--episodes", "1"]
    assert main([*argv, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"--model {model} does not fit the behavior Basic?team=0" in err
    assert "inspect-model" in err and not out.exists()


def test_output_must_be_a_demo_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["record-demo", "builtin:Basic", "--heuristic", "--episodes", "1"]
    assert main([*argv, "-o", str(tmp_path / "x.txt")]) == 1
    assert "must end in .demo" in capsys.readouterr().err
