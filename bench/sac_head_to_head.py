"""SAC head to head: official mlagents-learn 1.1.0 against ``unity-sb3 learn``, same wall clock.

    MLAGENTS_TRAINER=1 sh bench/mlagents_venv.sh /tmp/mlagents-learn-venv   # once
    python bench/sac_head_to_head.py [--seconds 180] [--envs Basic GridWorld] [--seeds 0]

For each built-in player (Basic, GridWorld) and seed, both trainers train ML-Agents' own SAC
configuration of the scene (release 21 ``config/sac/<Scene>.yaml``: Basic's is the test fixture,
GridWorld's is ``configs/GridWorld_sac.yaml``) on the same player launcher
(``unity-sb3 env-executable``: the built-in player behaving like a Unity build, which is how
mlagents-learn can start it), with the
same ``--num-envs``, ``--num-areas`` and ``--seed``, for the same wall-clock budget counted from
the moment the trainer process starts (imports and player start-up included). At the deadline
the trainer gets SIGINT (Ctrl+C: both save a final checkpoint and stop their players); the
script waits for it to exit, then makes sure no player of the run is left (players are found
by ``--mlagents-port`` and the run's folder in their ``-logFile``, and killed by pid).

Read from each run's folder:
  * steps reached: ``run_logs/training_status.json``'s final checkpoint (written on Ctrl+C);
  * agent-steps/s: steps reached / budget (end to end), and the steady rate between the first
    and the last TensorBoard summary (their wall times; start-up and the first summary window,
    with ``buffer_init_steps``, left out);
  * mean reward reached: ``Environment/Cumulative Reward`` of the last TensorBoard summary, and
    the mean of the last three summaries (episodes with stochastic actions, as mlagents-learn's
    console line shows them).

The only change to ML-Agents' configurations is ``summary_freq`` (``--summary-freq``; logging
only, no effect on learning), set the same for both so that a short budget has several summary
windows (GridWorld's 20000 would give none). ``max_steps`` stays 500000 and the budget ends
runs, unless ``--max-steps`` sets it: then both trainers stop by themselves at that step count
(``--seconds`` only caps a run), which compares rewards at equal experience, and agent-steps/s
is steps over the time the run took.

The script prints every command it runs, a table per scene and the ratios ours/theirs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VENV = Path("/tmp/mlagents-learn-venv")
SAC_BASIC = REPO / "tests/fixtures/mlagents-r21/configs/sac/Basic.yaml"
# ML-Agents release 21's config/sac/GridWorld.yaml behavior section.
SAC_GRIDWORLD = REPO / "configs/GridWorld_sac.yaml"
REWARD_TAG = "Environment/Cumulative Reward"
TRAINERS = ("mlagents-learn", "unity-sb3")
STOP_TIMEOUT_S = 120  # from SIGINT to exit (both save a checkpoint first)


def sac_config(scene: str, summary_freq: int, max_steps: int | None = None) -> dict[str, Any]:
    """ML-Agents' release-21 SAC configuration of ``scene``, ``summary_freq`` (and
    ``max_steps`` when given) replaced."""
    if scene == "Basic":
        config: dict[str, Any] = yaml.safe_load(SAC_BASIC.read_text())
    elif scene == "GridWorld":
        config = yaml.safe_load(SAC_GRIDWORLD.read_text())
        del config["env_settings"]  # the player comes from --env
    else:
        raise SystemExit(f"no ML-Agents SAC configuration for {scene!r} (Basic, GridWorld)")
    config["behaviors"][scene]["summary_freq"] = summary_freq
    if max_steps is not None:
        config["behaviors"][scene]["max_steps"] = max_steps
    return config


def free_base_port(count: int) -> int:
    """A port P such that P .. P+count-1 are free now."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("", 0))
            base = probe.getsockname()[1]
        if base + count >= 65000:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as probe:
                    probe.bind(("", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports")


def players_of(run_dir: Path) -> list[tuple[int, str]]:
    """(pid, command line) of every player process whose log lies in ``run_dir``."""
    listing = subprocess.run(
        ["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True
    ).stdout
    found = []
    for line in listing.splitlines():
        pid, _, args = line.strip().partition(" ")
        if "--mlagents-port" in args and str(run_dir) in args:
            found.append((int(pid), args))
    return found


@dataclass
class Run:
    trainer: str
    scene: str
    seed: int
    command: list[str]
    run_dir: Path
    started_at: float = 0.0  # time.time() at start
    budget_s: float = 0.0
    exit_code: int | None = None
    stop_s: float = 0.0  # from SIGINT to exit
    steps: int | None = None
    summaries: list[tuple[float, int, float]] = field(default_factory=list)  # wall, step, reward
    players_left: int = 0
    ignored_sigint: bool = False
    console_tail: str = ""

    @property
    def steps_per_s(self) -> float | None:
        return None if self.steps is None else self.steps / self.budget_s

    @property
    def steady_steps_per_s(self) -> float | None:
        if len(self.summaries) < 2:
            return None
        (w0, s0, _), (w1, s1, _) = self.summaries[0], self.summaries[-1]
        return (s1 - s0) / (w1 - w0) if w1 > w0 else None

    @property
    def last_reward(self) -> float | None:
        return self.summaries[-1][2] if self.summaries else None

    @property
    def last3_reward(self) -> float | None:
        if not self.summaries:
            return None
        return statistics.fmean(r for _, _, r in self.summaries[-3:])


def run_for(run: Run, seconds: float, log: Path) -> None:
    """Start ``run.command``, SIGINT it after ``seconds``, wait for it, clear its players."""
    print(f"\n$ {shlex.join(run.command)}", flush=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with log.open("w") as out:
        start = time.monotonic()
        run.started_at = time.time()
        proc = subprocess.Popen(
            run.command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=run.run_dir.parent,
            start_new_session=True,
        )
        try:
            try:
                proc.wait(timeout=seconds)
                print(f"  exited by itself after {time.monotonic() - start:.1f} s", flush=True)
            except subprocess.TimeoutExpired:
                pass
            run.budget_s = min(time.monotonic() - start, seconds)
            interrupted = time.monotonic()
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    run.ignored_sigint = True
                    print(
                        f"  still running {STOP_TIMEOUT_S} s after SIGINT: SIGKILL (its steps "
                        "went on past the budget and are not counted)",
                        flush=True,
                    )
            run.stop_s = time.monotonic() - interrupted
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        run.exit_code = proc.returncode
    # Players: give them a moment to go on their own, then kill by pid.
    deadline = time.monotonic() + 15
    while players_of(run.run_dir) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = players_of(run.run_dir)
    run.players_left = len(left)
    for pid, args in left:
        print(f"  player left running, killed: {pid} {args}", flush=True)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    run.console_tail = "\n".join(log.read_text(errors="replace").splitlines()[-5:])
    read_results(run)
    print(
        f"  stopped {run.stop_s:.1f} s after SIGINT (exit code {run.exit_code}); "
        f"steps {run.steps}; summaries {len(run.summaries)}; players left {run.players_left}",
        flush=True,
    )


def read_results(run: Run) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    status = run.run_dir / "run_logs" / "training_status.json"
    if status.exists():
        behavior = json.loads(status.read_text()).get(run.scene, {})
        final = behavior.get("final_checkpoint") or (behavior.get("checkpoints") or [None])[-1]
        if final:
            run.steps = int(final["steps"])
    summaries: dict[int, tuple[float, int, float]] = {}
    for events in sorted(run.run_dir.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        if REWARD_TAG in accumulator.Tags().get("scalars", []):
            for event in accumulator.Scalars(REWARD_TAG):
                summaries[event.step] = (event.wall_time, event.step, event.value)
    run.summaries = [summaries[step] for step in sorted(summaries)]
    if run.steps is None and run.summaries:
        run.steps = run.summaries[-1][1]
    if run.ignored_sigint:  # what it did past the budget does not count
        run.steps = None
        deadline = run.started_at + run.budget_s
        run.summaries = [summary for summary in run.summaries if summary[0] <= deadline]


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs == 0:
        return "n/a"
    return f"{ours / theirs:.2f}x"


def report(scene: str, runs: list[Run], args: argparse.Namespace) -> None:
    print(
        f"\n## {scene}: {args.seconds:g} s each, --num-envs={args.num_envs} "
        f"--num-areas={args.num_areas}, summary_freq {args.summary_freq}"
    )
    header = (
        "| trainer | seed | steps reached | agent-steps/s (end to end) | agent-steps/s (steady) "
        "| mean reward, last summary | mean of last 3 summaries | summaries |"
    )
    print(header)
    print("|" + "---|" * 8)
    for run in runs:
        print(
            f"| {run.trainer} | {run.seed} | {run.steps if run.steps is not None else 'n/a'} "
            f"| {fmt(run.steps_per_s)} | {fmt(run.steady_steps_per_s)} "
            f"| {fmt(run.last_reward, 3)} | {fmt(run.last3_reward, 3)} | {len(run.summaries)} |"
            + (" ignored SIGINT: summaries before the deadline only" if run.ignored_sigint else "")
        )

    def mean_of(trainer: str, attr: str) -> float | None:
        values = [getattr(r, attr) for r in runs if r.trainer == trainer]
        values = [v for v in values if v is not None]
        return statistics.fmean(values) if values else None

    if len({r.seed for r in runs}) > 1:
        for trainer in TRAINERS:
            print(
                f"| {trainer} | mean | {fmt(mean_of(trainer, 'steps'), 0)} "
                f"| {fmt(mean_of(trainer, 'steps_per_s'))} "
                f"| {fmt(mean_of(trainer, 'steady_steps_per_s'))} "
                f"| {fmt(mean_of(trainer, 'last_reward'), 3)} "
                f"| {fmt(mean_of(trainer, 'last3_reward'), 3)} | |"
            )
    print(
        "ours/theirs: agent-steps/s end to end "
        f"{ratio(mean_of('unity-sb3', 'steps_per_s'), mean_of('mlagents-learn', 'steps_per_s'))}"
        ", steady "
        + ratio(
            mean_of("unity-sb3", "steady_steps_per_s"),
            mean_of("mlagents-learn", "steady_steps_per_s"),
        )
        + "; mean reward (last summary) "
        + fmt(mean_of("unity-sb3", "last_reward"), 3)
        + " vs "
        + fmt(mean_of("mlagents-learn", "last_reward"), 3)
        + " (last 3: "
        + fmt(mean_of("unity-sb3", "last3_reward"), 3)
        + " vs "
        + fmt(mean_of("mlagents-learn", "last3_reward"), 3)
        + ")"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=180, help="wall-clock budget of each run (180)"
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        help="also end each run at this many agent steps (both trainers stop by themselves; "
        "compares rewards at equal steps, --seconds then only caps the run)",
    )
    parser.add_argument("--envs", nargs="+", default=["Basic", "GridWorld"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--num-envs", type=int, default=1, help="players per run (1)")
    parser.add_argument("--num-areas", type=int, default=1, help="areas per player (1)")
    parser.add_argument(
        "--summary-freq",
        type=int,
        default=1000,
        help="summary_freq of both runs, the only change to ML-Agents' configs (1000)",
    )
    parser.add_argument(
        "--mlagents-venv",
        type=Path,
        default=DEFAULT_VENV,
        help="venv with the official mlagents-learn (MLAGENTS_TRAINER=1 sh bench/mlagents_venv.sh)",
    )
    parser.add_argument(
        "--only", choices=TRAINERS, help="run one trainer only (to develop this script)"
    )
    parser.add_argument("--results-dir", type=Path, help="keep results here (default: temp)")
    args = parser.parse_args()
    # A shell starts background jobs with SIGINT ignored, and exec keeps ignored signals: the
    # trainers would then ignore the SIGINT that ends their budget (mlagents-learn relies on
    # Python's default KeyboardInterrupt, which Python does not install when SIGINT is ignored
    # at start-up). A Python-level handler here is reset to the default in every child.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    mlagents_learn = args.mlagents_venv / "bin" / "mlagents-learn"
    if args.only != "unity-sb3" and not mlagents_learn.exists():
        raise SystemExit(
            f"{mlagents_learn} not found: create it with "
            f"`MLAGENTS_TRAINER=1 sh bench/mlagents_venv.sh {args.mlagents_venv}`"
        )
    unity_sb3 = Path(sys.executable).parent / "unity-sb3"
    trainers = [args.only] if args.only else list(TRAINERS)

    with tempfile.TemporaryDirectory(prefix="sac-h2h-") as tmp:
        root = args.results_dir.resolve() if args.results_dir else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        print(
            f"load average {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs; "
            f"results in {root}"
        )
        for scene in args.envs:
            launcher = root / "envs" / scene
            launcher.parent.mkdir(parents=True, exist_ok=True)
            command = [str(unity_sb3), "env-executable", scene, str(launcher)]
            print(f"\n$ {shlex.join(command)}", flush=True)
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            config_path = root / f"sac_{scene}.yaml"
            config_path.write_text(
                yaml.safe_dump(sac_config(scene, args.summary_freq, args.max_steps))
            )
            print(f"config {config_path}:\n{config_path.read_text()}", end="")
            runs: list[Run] = []
            for seed in args.seeds:
                for trainer in trainers:
                    run_id = f"{scene}-{trainer}-seed{seed}"
                    results = root / "results"
                    results.mkdir(exist_ok=True)
                    program = (
                        [str(mlagents_learn)]
                        if trainer == "mlagents-learn"
                        else [str(unity_sb3), "learn"]
                    )
                    run = Run(
                        trainer=trainer,
                        scene=scene,
                        seed=seed,
                        run_dir=results / run_id,
                        command=[
                            *program,
                            str(config_path),
                            f"--env={launcher}",
                            f"--run-id={run_id}",
                            f"--seed={seed}",
                            f"--num-envs={args.num_envs}",
                            f"--num-areas={args.num_areas}",
                            f"--base-port={free_base_port(args.num_envs)}",
                            "--no-graphics",
                            f"--results-dir={results}",
                            "--force",
                        ],
                    )
                    run_for(run, args.seconds, root / f"{run_id}.log")
                    if run.steps is None:
                        print(f"  no steps read; console tail:\n{run.console_tail}")
                    runs.append(run)
            report(scene, runs, args)
        print(f"\nload average at the end {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
