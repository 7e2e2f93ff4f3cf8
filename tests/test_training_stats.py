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
