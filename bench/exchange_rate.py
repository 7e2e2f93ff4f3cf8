"""Exchange rate of the protocol stack against a bare gRPC unary round trip, in one run.

    python bench/exchange_rate.py [--seconds 5]

Prints, for built-in 3DBall (12 agents, vector observations) and GridWorld (PNG visual
observations): exchanges/s through ``UnityEnvironment`` and agent-steps/s (decision requests
served per second). The baseline is a bare Python gRPC unary call with an empty payload between
this process (server) and a child process (client), which is the same topology as Python and a
player. The bar: our exchange rate is at least half the bare round-trip rate.

Each player's rate is then taken apart by replaying its recorded messages (no simulation):
- ``protocol``: ``RpcCommunicator`` answering a *replay player* (the player's real protocol loop,
  ``players.protocol.run_session``, whose simulation copies recorded outputs instead of
  simulating) with recorded inputs: gRPC plus the protocol's messages, nothing else;
- ``+ decoding``: ``UnityEnvironment`` against the replay player: adds turning messages into
  numpy batches and actions into messages (trainer-side work);
- ``full``: ``UnityEnvironment`` against the built-in player: adds the simulation.
"""

from __future__ import annotations

import argparse
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
from player_compute import input_message  # bench/ is on sys.path when run as a script

from unity_gym import UnityEnvironment
from unity_gym.communicator import RpcCommunicator
from unity_gym.communicator_objects.command_pb2 import RESET
from unity_gym.communicator_objects.unity_input_pb2 import UnityInputProto
from unity_gym.communicator_objects.unity_message_pb2 import UnityMessageProto
from unity_gym.communicator_objects.unity_rl_initialization_input_pb2 import (
    UnityRLInitializationInputProto,
)
from unity_gym.communicator_objects.unity_rl_input_pb2 import UnityRLInputProto
from unity_gym.players import get_player
from unity_gym.players.academy import Academy
from unity_gym.protocol_version import COMMUNICATION_VERSION, full_capabilities

_CLIENT = """
import sys, time, grpc
channel = grpc.insecure_channel(f"127.0.0.1:{sys.argv[1]}")
call = channel.unary_unary("/bench.Echo/Call", request_serializer=None, response_deserializer=None)
call(b"", wait_for_ready=True)
deadline = time.perf_counter() + float(sys.argv[2])
n = 0
start = time.perf_counter()
while time.perf_counter() < deadline:
    call(b"")
    n += 1
print(n / (time.perf_counter() - start))
"""


def bare_grpc_rate(seconds: float) -> float:
    """Round trips/s of an empty unary call, client in a child process."""
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: b"")
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Echo", {"Call": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        out = subprocess.run(
            [sys.executable, "-c", _CLIENT, str(port), str(seconds)],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        )
        return float(out.stdout.strip())
    finally:
        server.stop(None)


# A player whose simulation replays recorded outputs: the real protocol loop, no physics.
_REPLAY_PLAYER = """
import struct, sys
from unity_gym.communicator_objects.unity_rl_output_pb2 import UnityRLOutputProto
from unity_gym.players import get_player
from unity_gym.players.protocol import UnityConnection, run_session

def records(path):
    data = open(path, "rb").read()
    at = 0
    while at < len(data):
        (size,) = struct.unpack_from("<I", data, at)
        yield data[at + 4 : at + 4 + size]
        at += 4 + size

class Replay:
    def __init__(self, player, path):
        self.specs = {t.behavior_name: t.behavior_spec for t in player.tasks}
        self.outputs = [UnityRLOutputProto.FromString(r) for r in records(path)]
        self.next = 0
    def behavior_specs(self):
        return self.specs
    def initialize(self, seed, num_areas):
        pass
    def receive_side_channel(self, data):
        pass
    def reset(self, out):
        out.CopyFrom(self.outputs[0])
        self.next = 1
    def step(self, actions, out):
        out.CopyFrom(self.outputs[self.next])
        self.next = self.next + 1 if self.next + 1 < len(self.outputs) else 1

player = get_player(sys.argv[1])
connection = UnityConnection("127.0.0.1", int(sys.argv[2]), 30.0)
try:
    run_session(connection, Replay(player, sys.argv[3]), player.name)
finally:
    connection.close()
"""


def _random_steps(env: UnityEnvironment, seconds: float) -> Iterator[int]:
    """Step ``env`` with random actions for ``seconds``; yields decisions served per step."""
    behavior = next(iter(env.behavior_specs))
    action_spec = env.behavior_specs[behavior].action_spec
    rng = np.random.default_rng(0)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        decision_steps, _ = env.get_steps(behavior)
        env.set_actions(behavior, action_spec.random_action(len(decision_steps), rng))
        env.step()
        yield len(env.get_steps(behavior)[0])


def record(name: str, exchanges: int) -> tuple[bytes, list[UnityInputProto]]:
    """A built-in player's outputs (length-prefixed ``UnityRLOutputProto`` records) and the
    random actions answering them, from its academy run in process for ``exchanges`` steps."""
    player = get_player(name)
    academy = Academy(player.tasks)
    academy.initialize(1, 1)
    rng = np.random.default_rng(0)
    out = UnityMessageProto()
    academy.reset(out.unity_output.rl_output)
    outputs: list[bytes] = []
    inputs: list[UnityInputProto] = []
    for _ in range(exchanges):
        data = out.unity_output.rl_output.SerializeToString()
        outputs.append(struct.pack("<I", len(data)) + data)
        answer = UnityMessageProto.FromString(input_message(player, out, rng)).unity_input
        inputs.append(answer)
        out = UnityMessageProto()
        academy.step(answer.rl_input.agent_actions, out.unity_output.rl_output)
    return b"".join(outputs), inputs


def _start_replay(name: str, port: int, recording: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", _REPLAY_PLAYER, name, str(port), str(recording)])


def _reap(player: subprocess.Popen[bytes]) -> None:
    try:
        player.wait(30)
    except subprocess.TimeoutExpired:
        player.kill()
        player.wait()


def protocol_rate(
    name: str, recording: Path, inputs: list[UnityInputProto], seconds: float, port: int
) -> float:
    """Exchanges/s of ``RpcCommunicator`` alone answering the replay player."""
    communicator = RpcCommunicator(port)
    player = _start_replay(name, port, recording)
    try:
        handshake = UnityRLInitializationInputProto(
            seed=1,
            communication_version=COMMUNICATION_VERSION,
            capabilities=full_capabilities(),
            num_areas=1,
        )
        communicator.initialize(UnityInputProto(rl_initialization_input=handshake))
        communicator.exchange(UnityInputProto(rl_input=UnityRLInputProto(command=RESET)))
        steps = inputs[1:]  # inputs[0] answers the reset's output
        exchanges = 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            communicator.exchange(steps[exchanges % len(steps)])
            exchanges += 1
        return exchanges / (time.perf_counter() - start)
    finally:
        communicator.close()  # the replay player's session ends with it
        _reap(player)


def replay_env_rate(name: str, recording: Path, seconds: float, port: int) -> float:
    """Exchanges/s of ``UnityEnvironment`` (decoding, random actions) against the replay player."""
    player = _start_replay(name, port, recording)  # it waits for the server to listen
    try:
        with UnityEnvironment(base_port=port, timeout_wait=30) as env:
            env.reset()
            start = time.perf_counter()
            exchanges = sum(1 for _ in _random_steps(env, seconds))
            return exchanges / (time.perf_counter() - start)
    finally:
        _reap(player)


def env_rate(name: str, seconds: float, port: int) -> tuple[float, float]:
    """(exchanges/s, agent decisions/s) stepping a built-in player with random actions."""
    with UnityEnvironment(f"builtin:{name}", base_port=port, no_graphics=True, seed=1) as env:
        env.reset()
        for _ in zip(range(20), _random_steps(env, float("inf")), strict=False):  # warm-up
            pass
        start = time.perf_counter()
        decisions = list(_random_steps(env, seconds))
        elapsed = time.perf_counter() - start
    return len(decisions) / elapsed, sum(decisions) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement")
    parser.add_argument("--base-port", type=int, default=6105)
    args = parser.parse_args()

    bare = bare_grpc_rate(args.seconds)
    print(f"bare gRPC unary round trip (empty payload): {bare:10.0f} calls/s")
    port = args.base_port
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("3DBall", "GridWorld"):
            outputs, inputs = record(name, 500)
            recording = Path(tmp, f"{name}.records")
            recording.write_bytes(outputs)
            protocol = protocol_rate(name, recording, inputs, args.seconds, port)
            decoding = replay_env_rate(name, recording, args.seconds, port + 1)
            exchanges, decisions = env_rate(name, args.seconds, port + 2)
            port += 3
            print(
                f"{name:10s} UnityEnvironment: {exchanges:8.0f} exchanges/s "
                f"{decisions:9.0f} agent-steps/s"
                f"   ratio to bare gRPC: {exchanges / bare:.2f} (bar: >= 0.50)"
            )
            for label, rate in (("protocol", protocol), ("+ decoding", decoding)):
                print(
                    f"{'':10s}   replayed, {label:10s} {rate:8.0f} exchanges/s"
                    f"   ratio to bare gRPC: {rate / bare:.2f}"
                )


if __name__ == "__main__":
    main()
