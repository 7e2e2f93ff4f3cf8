"""Compute cost of the built-in players per exchange, in process (no gRPC, no trainer).

    python bench/player_compute.py [--exchanges 2000] [--repeat 5] [--areas 1 4] [--players ...]

For each built-in player and number of areas, drives its :class:`Academy` the way the
player's protocol loop does: parse Python's input message, apply its actions and simulate
until the next output (``Academy.step``), serialize the output message. Actions are uniform
random (``ActionSpec.random_action``, fixed seed), one row per agent that requested a
decision, built outside the timed region since the trainer, not the player, pays for them.

Prints microseconds per exchange (total, and the ``Academy.step`` part alone), academy steps
and agent infos per exchange. Each run replays the same seeded exchanges; the fastest of
``--repeat`` runs is shown, since on a shared machine noise only ever adds time. This is the
player's share of the round trip that ``bench/exchange_rate.py`` measures end to end.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from unity_gym.communicator_objects.command_pb2 import STEP
from unity_gym.communicator_objects.unity_message_pb2 import UnityMessageProto
from unity_gym.players import PlayerInfo, get_player, list_players
from unity_gym.players.academy import Academy
from unity_gym.players.protocol import STATUS_OK


@dataclass(frozen=True)
class Result:
    player: str
    areas: int
    exchange_us: float
    step_us: float
    academy_steps: float
    infos: float


def input_message(player: PlayerInfo, out: UnityMessageProto, rng: np.random.Generator) -> bytes:
    """Python's answer to ``out``: random actions for every agent that requested a decision."""
    message = UnityMessageProto()
    message.header.status = STATUS_OK
    rl_input = message.unity_input.rl_input
    rl_input.command = STEP
    reported = out.unity_output.rl_output.agentInfos
    for task in player.tasks:
        name = task.behavior_name
        if name not in reported:
            continue
        deciding = sum(not info.done for info in reported[name].value)
        actions = task.behavior_spec.action_spec.random_action(deciding, rng)
        target = rl_input.agent_actions[name].value
        for continuous, discrete in zip(
            actions.continuous.tolist(), actions.discrete.tolist(), strict=True
        ):
            target.add(continuous_actions=continuous, discrete_actions=discrete)
    return message.SerializeToString()


def measure(player: PlayerInfo, areas: int, exchanges: int, seed: int) -> Result:
    academy = Academy(player.tasks)
    academy.initialize(seed, areas)
    out = UnityMessageProto()
    academy.reset(out.unity_output.rl_output)
    rng = np.random.default_rng(seed)
    total = stepping = 0.0
    infos = 0
    first_step = academy.academy_step
    for _ in range(exchanges):
        data = input_message(player, out, rng)
        start = time.perf_counter()
        rl_input = UnityMessageProto.FromString(data).unity_input.rl_input
        out = UnityMessageProto()
        out.header.status = STATUS_OK
        rl_output = out.unity_output.rl_output
        step_start = time.perf_counter()
        academy.step(rl_input.agent_actions, rl_output)
        step_end = time.perf_counter()
        out.SerializeToString()
        total += time.perf_counter() - start
        stepping += step_end - step_start
        infos += sum(len(batch.value) for batch in rl_output.agentInfos.values())
    return Result(
        player.name,
        areas,
        total / exchanges * 1e6,
        stepping / exchanges * 1e6,
        (academy.academy_step - first_step) / exchanges,
        infos / exchanges,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exchanges", type=int, default=2000, help="timed exchanges per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per case; the best is shown")
    parser.add_argument("--areas", type=int, nargs="+", default=[1, 4])
    parser.add_argument(
        "--players", nargs="+", default=[p.name for p in list_players()], metavar="NAME"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    for name in args.players:
        player = get_player(name)
        for areas in args.areas:
            runs = [measure(player, areas, args.exchanges, args.seed) for _ in range(args.repeat)]
            r = min(runs, key=lambda run: run.exchange_us)
            print(
                f"{r.player:10s} {r.areas} area(s): {r.exchange_us:7.1f} us/exchange "
                f"(Academy.step {r.step_us:7.1f} us)  {r.academy_steps:5.2f} academy steps "
                f"and {r.infos:5.1f} agent infos per exchange"
            )


if __name__ == "__main__":
    main()
