"""``results/<run-id>/`` bookkeeping: training_status.json written with every checkpoint, from
several learner threads at once."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

pytest.importorskip("yaml")  # the protocol-only install has no CLI dependencies

from cli.run_artifacts import CheckpointRecord, RunDirectory


def _record(steps: int) -> CheckpointRecord:
    return CheckpointRecord(
        steps=steps, file_path=f"B-{steps}.onnx", reward=1.0, creation_time=float(steps)
    )


def test_every_record_rewrites_the_status_file(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path, "run", {"torch_version": "x"})
    run.record_checkpoint("Basic", _record(500), keep=2)
    status = json.loads(run.status_file.read_text())
    assert [c["steps"] for c in status["Basic"]["checkpoints"]] == [500]
    assert status["metadata"] == {"stats_format_version": "0.3.0", "torch_version": "x"}
    for steps in (1000, 1500):
        dropped = run.record_checkpoint("Basic", _record(steps), keep=2)
    assert [c.steps for c in dropped] == [500]
    run.record_checkpoint("Basic", _record(1600), keep=2, final=True)
    status = json.loads(run.status_file.read_text())
    assert [c["steps"] for c in status["Basic"]["checkpoints"]] == [1500, 1600]
    assert status["Basic"]["final_checkpoint"]["steps"] == 1600
    resumed = RunDirectory(tmp_path, "run")
    resumed.load_status()
    assert resumed.status == run.status


def test_concurrent_records_from_learner_threads_are_all_kept(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path, "run", {"torch_version": "x"})
    behaviors = [f"B{i}" for i in range(8)]
    records = 40
    start = threading.Barrier(len(behaviors) + 1)
    errors: list[BaseException] = []

    def learner(name: str) -> None:
        start.wait()
        try:
            for step in range(1, records + 1):
                run.record_checkpoint(name, _record(step), keep=5, final=step == records)
        except BaseException as err:
            errors.append(err)

    def reader() -> None:  # the command saving the status meanwhile (e.g. at Ctrl+C)
        start.wait()
        try:
            for _ in range(records):
                run.save_status()
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=learner, args=(name,)) for name in behaviors]
    threads.append(threading.Thread(target=reader))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    status = json.loads(run.status_file.read_text())
    for name in behaviors:
        kept = [c["steps"] for c in status[name]["checkpoints"]]
        assert kept == list(range(records - 4, records + 1)), name
        assert status[name]["final_checkpoint"]["steps"] == records
    assert not list(run.run_logs.glob(".*.partial"))
