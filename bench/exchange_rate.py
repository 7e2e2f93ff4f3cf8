"""Exchange rate of the protocol stack against a bare gRPC unary round trip, in one run.

    python bench/exchange_rate.py [--seconds 5]

Prints, for built-in 3DBall (12 agents, vector observations) and GridWorld (PNG visual
observations): exchanges/s through ``UnityEnvironment`` and agent-steps/s (decision requests
served per second). The baseline is a bare Python gRPC unary call with an empty payload between
this process (server) and a child process (client), which is the same topology as Python and a
player. The bar: our exchange rate is at least half the bare round-trip rate.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np

from unity_gym import UnityEnvironment

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


def env_rate(name: str, seconds: float, base_port: int) -> tuple[float, float]:
    """(exchanges/s, agent decisions/s) stepping a built-in player with random actions."""
    with UnityEnvironment(f"builtin:{name}", base_port=base_port, no_graphics=True, seed=1) as env:
        env.reset()
        behavior = next(iter(env.behavior_specs))
        spec = env.behavior_specs[behavior]
        rng = np.random.default_rng(0)
        for _ in range(20):  # warm-up
            n = len(env.get_steps(behavior)[0])
            env.set_actions(behavior, spec.action_spec.random_action(n, rng))
            env.step()
        exchanges = decisions = 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            decision_steps, _ = env.get_steps(behavior)
            env.set_actions(behavior, spec.action_spec.random_action(len(decision_steps), rng))
            env.step()
            exchanges += 1
            decisions += len(env.get_steps(behavior)[0])
        elapsed = time.perf_counter() - start
    return exchanges / elapsed, decisions / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement")
    parser.add_argument("--base-port", type=int, default=6105)
    args = parser.parse_args()

    bare = bare_grpc_rate(args.seconds)
    print(f"bare gRPC unary round trip (empty payload): {bare:10.0f} calls/s")
    for offset, name in enumerate(("3DBall", "GridWorld")):
        exchanges, decisions = env_rate(name, args.seconds, args.base_port + offset)
        print(
            f"{name:10s} UnityEnvironment: {exchanges:8.0f} exchanges/s "
            f"{decisions:9.0f} agent-steps/s"
            f"   ratio to bare gRPC: {exchanges / bare:.2f} (bar: >= 0.50)"
        )


if __name__ == "__main__":
    main()
