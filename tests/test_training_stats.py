"""Closing a behavior's statistics while its learner thread still writes a summary."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

pytest.importorskip("torch")

from cli.run_timers import RunTimers
from cli.training_stats import CUMULATIVE_REWARD, BehaviorStats


class _SlowWriter:
    """A TensorBoard writer whose first scalar blocks until the test releases it."""

    instances: list[_SlowWriter] = []

    def __init__(self, log_dir: str) -> None:
        self.instances.append(self)
        self.calls: list[str] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.closed = False

    def add_scalar(self, key: str, value: float, step: int) -> None:
        assert not self.closed, "written after close"
        self.entered.set()
        assert self.release.wait(timeout=30)
        self.calls.append(f"scalar:{key}")

    def add_histogram(self, key: str, values: object, step: int) -> None:
        assert not self.closed, "written after close"
        self.calls.append(f"histogram:{key}")

    def add_text(self, tag: str, text: str) -> None:
        assert not self.closed, "written after close"
        self.calls.append(f"text:{tag}")

    def flush(self) -> None:
        assert not self.closed, "flushed after close"
        self.calls.append("flush")

    def close(self) -> None:
        self.closed = True
        self.calls.append("close")


def test_close_waits_for_a_summary_being_written_and_later_writes_are_ignored(
    tmp_path: Path, monkeypatch
) -> None:
    import torch.utils.tensorboard

    monkeypatch.setattr(torch.utils.tensorboard, "SummaryWriter", _SlowWriter)
    stats = BehaviorStats("Basic", tmp_path / "Basic", RunTimers())
    (writer,) = _SlowWriter.instances
    stats.add(CUMULATIVE_REWARD, 1.0)
    errors: list[BaseException] = []

    def run(target: object) -> threading.Thread:
        def body() -> None:
            try:
                target()  # type: ignore[operator]
            except BaseException as err:
                errors.append(err)

        thread = threading.Thread(target=body, daemon=True)
        thread.start()
        return thread

    learner = run(lambda: stats.write_summary(500, training=True))
    assert writer.entered.wait(timeout=30)
    closer = run(stats.close)
    closer.join(timeout=0.5)
    assert closer.is_alive(), "close() did not wait for the summary being written"
    writer.release.set()
    learner.join(timeout=30)
    closer.join(timeout=30)
    assert not errors
    assert writer.calls[-1] == "close" and "flush" in writer.calls
    # A learner that writes after the run closed its statistics: console only, no crash.
    stats.add(CUMULATIVE_REWARD, 2.0)
    line = stats.write_summary(1000, training=True)
    assert line.startswith("Basic. Step: 1000.") and "Mean Reward: 2.000" in line
    stats.add_text("Hyperparameters", "text")
    stats.close()
    assert writer.calls.count("close") == 1 and writer.calls[-1] == "close"


@pytest.mark.parametrize(
    ("algorithm", "coefficient"),
    [("SAC", "Policy/Continuous Entropy Coeff"), ("DiscreteSAC", "Policy/Discrete Entropy Coeff")],
)
def test_sb3_keys_get_mlagents_sac_names(algorithm: str, coefficient: str) -> None:
    from cli.training_stats import SB3StatsBridge

    stats = BehaviorStats("B", None, RunTimers())
    bridge = SB3StatsBridge(stats, algorithm)
    bridge.write(
        {
            "train/actor_loss": 0.5,
            "train/critic_loss": 0.25,
            "train/q1_loss": 0.125,
            "train/q2_loss": 0.0625,
            "train/ent_coef": 0.3,
            "train/entropy_loss": -1.2,
            "train/ent_coef_loss": 0.01,
        },
        {},
    )
    assert stats.mean("Losses/Policy Loss") == 0.5
    assert stats.mean("Losses/Value Loss") == 0.25
    assert stats.mean("Losses/Q1 Loss") == 0.125 and stats.mean("Losses/Q2 Loss") == 0.0625
    assert stats.mean(coefficient) == pytest.approx(0.3)
    assert stats.mean("Policy/Entropy") == pytest.approx(1.2)
    assert stats.mean("SB3/ent_coef_loss") == pytest.approx(0.01)
