"""Players on Ray against players on this machine: UnityVecEnv throughput on built-in 3DBall.

    python bench/ray_scaling.py [--seconds 6] [--repeats 3] [--address ADDRESS] [--latency]

For 1, 2 and 4 players (``--players``), steps a ``UnityVecEnv`` with random actions (no
learning) and prints agent-steps/s three ways: players started here (the local path), players
in Ray actors one per player (``RayPlayers()``), and all players in one actor
(``RayPlayers(players_per_host=n)``), with each Ray path's rate as a ratio of the local one
(medians of ``--repeats`` runs, the three paths interleaved).
Ray runs on this machine (a Ray instance started for the bench, or the cluster at
``--address``), so the ratio is the Ray path's overhead. Twice:

- flat out: players compute as fast as they can. On a 2-core machine the learner, the players,
  the actors and Ray's own processes share two cores, so this measures contention as much as
  transfer cost;
- paced (``--paced-players``, default 1, 2, 4, 8): players at Unity time scale
  ``--time-scale`` (5: each academy step takes 4 ms of wall time, as a Unity player at a set
  time scale does), so a step costs what real Unity costs, and throughput should grow with
  players.

Then the projection for N nodes the paced numbers support: each paced player adds the
agent-steps/s it delivers, until the learner's own CPU time per step (measured with
``time.process_time`` on the Ray path) is the limit.

``--latency`` measures, before the tables, what one actor call costs on this machine: the
time from submitting a call to the actor starting it and from the actor returning to the
learner having the result, for calls back to back and for calls whose actor works (sleeps)
a paced player's exchange first, when the learner's and the actor's threads have been idle.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Sequence

import numpy as np
import ray

from unity_gym.ray_players import RayPlayers
from unity_gym.sb3_vec_env import UnityVecEnv
from unity_gym.side_channel import EngineConfig


def rate(
    n_players: int, seconds: float, time_scale: float | None, ray_players: RayPlayers | None
) -> tuple[float, float]:
    """(agent-steps/s, learner CPU seconds per agent-step)."""
    engine = EngineConfig(time_scale=time_scale) if time_scale else None
    env = UnityVecEnv(
        "builtin:3DBall", n_envs=n_players, seed=0, engine_config=engine, ray_players=ray_players
    )
    try:
        env.reset()
        rng = np.random.default_rng(0)
        actions = [rng.uniform(-1, 1, (env.num_envs, 2)).astype(np.float32) for _ in range(16)]
        for i in range(20):
            env.step(actions[i % 16])
        steps = 0
        start, cpu = time.perf_counter(), time.process_time()
        while time.perf_counter() - start < seconds:
            env.step(actions[steps % 16])
            steps += 1
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        return steps * env.num_envs / elapsed, cpu / (steps * env.num_envs)
    finally:
        env.close()


@ray.remote(num_cpus=0.25)
class _Probe:
    """An actor that waits ``seconds`` and says when it started and finished."""

    def wait(self, seconds: float) -> tuple[float, float]:
        started = time.time()
        time.sleep(seconds)
        return started, time.time()


def latency(calls: int = 60) -> None:
    """Prints the medians of the two hops of an actor call (see the module docstring)."""
    probe = _Probe.remote()  # type: ignore[attr-defined]
    ray.get(probe.wait.remote(0.0))
    print("\nOne actor call: submit -> actor starts, actor returns -> learner has it (ms)")
    print("actor works | there | back\n---|---|---")
    for work in (0.0, 0.002, 0.02):
        there, back = [], []
        for _ in range(calls):
            submitted = time.time()
            started, finished = ray.get(probe.wait.remote(work))
            back.append(time.time() - finished)
            there.append(started - submitted)
        print(
            f"{work * 1e3:g} ms | {statistics.median(there) * 1e3:.2f} | "
            f"{statistics.median(back) * 1e3:.2f}",
            flush=True,
        )
    ray.kill(probe)


def table(
    title: str,
    players: Sequence[int],
    seconds: float,
    time_scale: float | None,
    address: str | None,
    repeats: int,
) -> dict[int, tuple[float, float, float]]:
    """Prints one table of medians over ``repeats``; returns {players: (local, per-player
    actors, learner CPU per agent-step)}."""
    print(f"\n{title}")
    print("players | local | Ray, actor per player (ratio) | Ray, one actor for all (ratio)")
    print("---|---|---|---")
    results = {}
    for n in players:
        paths = {
            "local": None,
            "each": RayPlayers(address, cpus_per_player=0.25),
            "shared": RayPlayers(address, cpus_per_player=0.25, players_per_host=n),
        }
        runs: dict[str, list[tuple[float, float]]] = {path: [] for path in paths}
        for _ in range(repeats):  # interleaved, so that drifting load hits every path alike
            for path, players_on in paths.items():
                runs[path].append(rate(n, seconds, time_scale, players_on))
        local, each, shared = (statistics.median(r for r, _ in runs[p]) for p in paths)
        cpu = statistics.median(c for _, c in runs["each"])
        print(
            f"{n} | {local:,.0f} | {each:,.0f} ({each / local:.2f}) | "
            f"{shared:,.0f} ({shared / local:.2f})",
            flush=True,
        )
        results[n] = (local, each, cpu)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per measurement")
    parser.add_argument("--players", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--paced-players", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--time-scale", type=float, default=5.0)
    parser.add_argument("--address", default=None, help="a Ray cluster (default: start one)")
    parser.add_argument("--repeats", type=int, default=3, help="medians over this many runs")
    parser.add_argument("--latency", action="store_true", help="also time one actor call's hops")
    args = parser.parse_args()
    if args.address is None:
        ray.init(num_cpus=16, include_dashboard=False, logging_level=logging.ERROR)
    else:
        ray.init(address=args.address, logging_level=logging.ERROR)
    try:
        if args.latency:
            latency()
        print("UnityVecEnv on built-in 3DBall (12 agents per player), agent-steps/s")
        table("Flat out", args.players, args.seconds, None, args.address, args.repeats)
        paced = table(
            f"Paced at time scale {args.time_scale:g}",
            args.paced_players,
            args.seconds,
            args.time_scale,
            args.address,
            args.repeats,
        )
    finally:
        ray.shutdown()
    most = max(paced)
    _, each, cpu = paced[most]
    per_player = each / most
    limit = 1.0 / cpu
    print(
        f"\nProjection (paced, actor per player): each player delivers {per_player:,.0f} "
        f"agent-steps/s; the learner spends {cpu * 1e6:,.0f} us of CPU per agent-step, so one "
        f"learner can take about {limit:,.0f} agent-steps/s, i.e. "
        f"{limit / per_player:,.0f} such players."
    )
    for nodes in (1, 2, 4, 8):
        players = nodes * most
        print(
            f"  {nodes} node(s) x {most} players: {min(players * per_player, limit):,.0f} "
            "agent-steps/s" + (" (learner-bound)" if players * per_player > limit else "")
        )


if __name__ == "__main__":
    main()
