"""Stand-in player processes against a minimal in-test trainer (the Python side of gRPC)."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest

from tests.conftest import REPO, free_port, process_gone
from unity_gym.communicator_objects.capabilities_pb2 import UnityRLCapabilitiesProto
from unity_gym.communicator_objects.command_pb2 import QUIT, RESET, STEP
from unity_gym.communicator_objects.unity_input_pb2 import UnityInputProto
from unity_gym.communicator_objects.unity_message_pb2 import UnityMessageProto
from unity_gym.communicator_objects.unity_output_pb2 import UnityOutputProto
from unity_gym.communicator_objects.unity_rl_input_pb2 import UnityRLInputProto
from unity_gym.communicator_objects.unity_to_external_pb2_grpc import (
    UnityToExternalProtoServicer,
    add_UnityToExternalProtoServicer_to_server,
)
from unity_gym.rpc_utils import behavior_spec_from_proto, steps_from_proto
from unity_gym.side_channel.environment_parameters_channel import (
    ENVIRONMENT_PARAMETERS_CHANNEL_ID,
    EnvironmentDataTypes,
)
from unity_gym.side_channel.messages import IncomingMessage, OutgoingMessage
from unity_gym.side_channel.side_channel_manager import (
    pack_side_channel_messages,
    unpack_side_channel_messages,
)
from unity_gym.side_channel.stats_side_channel import STATS_CHANNEL_ID
from unity_gym.side_channel.training_analytics_side_channel import (
    DefaultTrainingAnalyticsSideChannel,
)

pytestmark = pytest.mark.protocol

TIMEOUT = 20.0
# Behavior names as Unity sends them: "<name>?team=<id>".
BASIC, BALL, GRID = "Basic?team=0", "3DBall?team=0", "GridWorld?team=0"


class FakeTrainer(UnityToExternalProtoServicer):
    """Serves one player: each request is parked until the test supplies the answer."""

    def __init__(self) -> None:
        self.requests: queue.Queue[UnityMessageProto] = queue.Queue()
        self.answers: queue.Queue[UnityMessageProto | None] = queue.Queue()
        self.server = grpc.server(ThreadPoolExecutor(max_workers=4))
        add_UnityToExternalProtoServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def Exchange(
        self, request: UnityMessageProto, context: grpc.ServicerContext
    ) -> UnityMessageProto:
        self.requests.put(request)
        answer = self.answers.get()
        if answer is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "trainer stopped")
        return answer  # type: ignore[return-value]

    def receive(self) -> UnityMessageProto:
        return self.requests.get(timeout=TIMEOUT)

    def answer(self, status: int = 200, unity_input: UnityInputProto | None = None) -> None:
        message = UnityMessageProto()
        message.header.status = status
        if unity_input is not None:
            message.unity_input.CopyFrom(unity_input)
        self.answers.put(message)

    def handshake(
        self, seed: int = 0, num_areas: int = 1, version: str = "1.5.0"
    ) -> tuple[UnityOutputProto, UnityMessageProto]:
        """Run both handshake exchanges; returns the init output and the second request."""
        first = self.receive()
        init = UnityInputProto()
        params = init.rl_initialization_input
        params.seed, params.num_areas, params.communication_version = seed, num_areas, version
        params.package_version = "test"
        params.capabilities.CopyFrom(
            UnityRLCapabilitiesProto(baseRLCapabilities=True, hybridActions=True)
        )
        self.answer(unity_input=init)
        return first.unity_output, self.receive()

    def exchange(
        self,
        command: int = STEP,
        actions: dict[str, list[dict]] | None = None,
        side_channel: bytes = b"",
    ) -> UnityMessageProto:
        rl_input = UnityRLInputProto(command=command, side_channel=side_channel)  # type: ignore[arg-type]
        for behavior, rows in (actions or {}).items():
            target = rl_input.agent_actions[behavior].value
            for row in rows:
                target.add(**row)
        self.answer(unity_input=UnityInputProto(rl_input=rl_input))
        return self.receive()

    def stop(self) -> None:
        for _ in range(4):
            self.answers.put(None)
        self.server.stop(0).wait()


@pytest.fixture
def trainer() -> Iterator[FakeTrainer]:
    server = FakeTrainer()
    yield server
    server.stop()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start player processes; every one is killed at the end, whatever the test did."""
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str, command: list[str] | None = None) -> subprocess.Popen[str]:
        env = dict(
            os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
        )
        argv = (command or [sys.executable, "-m", "unity_gym.players"]) + list(args)
        process = subprocess.Popen(
            argv,
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate()


def _start(spawn, trainer: FakeTrainer, name: str, *args: str) -> subprocess.Popen[str]:
    return spawn(name, "--mlagents-port", str(trainer.port), *args)


def _finish(process: subprocess.Popen[str], within: float) -> tuple[int, str, str]:
    start = time.monotonic()
    out, err = process.communicate(timeout=within + 10)
    elapsed = time.monotonic() - start
    assert elapsed < within, f"the player took {elapsed:.1f} s to exit"
    return process.returncode, out, err


def _decisions(message: UnityMessageProto, behavior: str) -> int:
    infos = message.unity_output.rl_output.agentInfos
    return sum(1 for i in infos[behavior].value if not i.done) if behavior in infos else 0


@pytest.mark.parametrize(
    ("name", "agents", "obs_shape", "continuous", "branches"),
    [
        ("Basic", 1, (20,), 0, (3,)),
        ("3DBall", 12, (8,), 2, ()),
        ("GridWorld", 1, (3, 64, 84), 0, (5,)),
    ],
)
def test_handshake_reset_and_steps(spawn, trainer, name, agents, obs_shape, continuous, branches):
    process = _start(spawn, trainer, name, "-batchmode", "-nographics")
    init, second = trainer.handshake(num_areas=2)
    params = init.rl_initialization_output
    assert params.name == name and params.communication_version == "1.5.0"
    assert params.package_version == "3.0.0"
    assert all(getattr(params.capabilities, f.name) for f in params.capabilities.DESCRIPTOR.fields)
    assert second.header.status == 200 and not second.HasField("unity_output")

    message = trainer.exchange(RESET)
    output = message.unity_output
    [brain] = output.rl_initialization_output.brain_parameters
    behavior = f"{name}?team=0"  # Unity's fully qualified behavior name
    assert brain.brain_name == behavior and brain.is_training
    assert not brain.vector_action_size_deprecated  # the trainer supports hybrid actions
    assert list(output.rl_output.agentInfos) == [behavior]
    infos = output.rl_output.agentInfos[behavior].value
    spec = behavior_spec_from_proto(brain, infos[0])
    assert spec.observation_specs[0].shape == obs_shape
    assert spec.action_spec.continuous_size == continuous
    assert spec.action_spec.discrete_branches == branches
    decisions, terminals = steps_from_proto(infos, spec)
    assert len(decisions) == 2 * agents and len(terminals) == 0

    rng = np.random.default_rng(0)
    for _ in range(30):
        count = _decisions(message, behavior)
        rows = [
            {
                "continuous_actions": rng.uniform(-1, 1, continuous).tolist(),
                "discrete_actions": [int(rng.integers(b)) for b in branches],
            }
            for _ in range(count)
        ]
        message = trainer.exchange(STEP, {behavior: rows} if rows else None)
        output = message.unity_output
        assert message.header.status == 200
        assert not output.rl_initialization_output.brain_parameters  # announced only once
        steps_from_proto(output.rl_output.agentInfos[behavior].value, spec)

    trainer.answer(status=400)
    code, _, err = _finish(process, within=5)
    assert code == 0, err


def test_quit_command_ends_the_player_cleanly(spawn, trainer) -> None:
    process = _start(spawn, trainer, "Basic")
    trainer.handshake()
    trainer.exchange(RESET)
    trainer.answer(unity_input=UnityInputProto(rl_input=UnityRLInputProto(command=QUIT)))
    assert _finish(process, within=5)[0] == 0


def test_quit_right_after_the_handshake(spawn, trainer) -> None:
    process = _start(spawn, trainer, "3DBall")
    trainer.handshake()
    trainer.answer(status=400)
    assert _finish(process, within=5)[0] == 0


def test_refused_handshake_ends_the_player(spawn, trainer) -> None:
    process = _start(spawn, trainer, "Basic")
    trainer.receive()
    trainer.answer(status=500)
    assert _finish(process, within=5)[0] == 0


def test_incompatible_version_warns_with_both_versions_and_quits(spawn, trainer) -> None:
    process = _start(spawn, trainer, "Basic")
    _, goodbye = trainer.handshake(version="2.0.0")
    assert goodbye.header.status != 200 and "2.0.0" in goodbye.header.message
    trainer.answer(status=400)
    code, _, err = _finish(process, within=5)
    assert code == 0
    assert "2.0.0" in err and "1.5.0" in err


def test_dead_trainer_makes_the_player_exit_non_zero_quickly(spawn, trainer) -> None:
    process = _start(spawn, trainer, "3DBall")
    trainer.handshake()
    trainer.exchange(RESET)
    trainer.stop()  # the player is blocked in an exchange
    code, _, err = _finish(process, within=5)
    assert code != 0 and "trainer" in err


def test_no_trainer_makes_the_player_give_up_after_the_connect_timeout(spawn) -> None:
    process = spawn("Basic", "--mlagents-port", str(free_port()), "--connect-timeout", "1")
    code, _, err = _finish(process, within=8)
    assert code == 1 and "within 1 s" in err


def test_a_player_whose_trainer_died_before_answering_exits_at_once(tmp_path: Path) -> None:
    """A trainer killed while its players start (kill -9 during start-up) leaves them
    orphaned before they connected: they stop within a second, not after the timeout."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    # The "trainer": starts a player as unity_gym's launcher does, and dies.
    trainer = subprocess.run(
        [
            sys.executable,
            "-c",
            "from unity_gym.launcher import PlayerProcess\n"
            f"player = PlayerProcess.start('builtin:Basic', {free_port()}, "
            "log_folder='.', additional_args=['--connect-timeout', '60'])\n"
            "print(player.pid)",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pid = int(trainer.stdout.strip())
    deadline = time.monotonic() + 10  # start-up (imports) plus one half-second check
    while time.monotonic() < deadline and process_gone(pid) is False:
        time.sleep(0.1)
    gone = process_gone(pid)
    if not gone:
        os.kill(pid, 9)
    assert gone, "the orphaned player kept waiting for its trainer"


def test_bad_command_lines_exit_2_with_usage(spawn) -> None:
    for args in (
        ("Nope", "--mlagents-port", "5005"),
        ("Basic",),
        ("Basic", "--mlagents-port", "x"),
    ):
        code, _, err = _finish(spawn(*args), within=10)
        assert code == 2 and "usage:" in err


def test_same_seed_same_actions_same_messages(spawn) -> None:
    def run(seed: int) -> list[bytes]:
        trainer = FakeTrainer()
        try:
            process = _start(spawn, trainer, "3DBall")
            trainer.handshake(seed=seed, num_areas=2)
            message = trainer.exchange(RESET)
            history = [message.unity_output.SerializeToString(deterministic=True)]
            for i in range(40):
                count = _decisions(message, BALL)
                rows = [
                    {"continuous_actions": [np.sin(i + j), np.cos(i * j)]} for j in range(count)
                ]
                message = trainer.exchange(STEP, {BALL: rows})
                history.append(message.unity_output.SerializeToString(deterministic=True))
            trainer.answer(status=400)
            assert _finish(process, within=5)[0] == 0
        finally:
            trainer.stop()
        return history

    first, again, other = run(11), run(11), run(12)
    assert first == again
    assert first[0] != other[0]


def test_side_channels_parameters_in_stats_out_analytics_ignored(spawn, trainer) -> None:
    process = _start(spawn, trainer, "3DBall")
    trainer.handshake()
    gravity = OutgoingMessage()
    gravity.write_string("gravity")
    gravity.write_int32(EnvironmentDataTypes.FLOAT)
    gravity.write_float32(30.0)  # balls drop fast
    analytics = DefaultTrainingAnalyticsSideChannel()
    analytics.environment_initialized("test")
    side_channel = pack_side_channel_messages(
        [
            (analytics.channel_id, analytics.message_queue[0]),
            (ENVIRONMENT_PARAMETERS_CHANNEL_ID, bytes(gravity.buffer)),
        ]
    )
    message = trainer.exchange(RESET, side_channel=side_channel)
    stats: list[tuple[str, float, int]] = []
    for _ in range(60):
        rows = [{"continuous_actions": [1.0, 1.0]}] * _decisions(message, BALL)
        message = trainer.exchange(STEP, {BALL: rows})
        for channel_id, payload in unpack_side_channel_messages(
            message.unity_output.rl_output.side_channel
        ):
            assert channel_id == STATS_CHANNEL_ID
            msg = IncomingMessage(payload)
            stats.append((msg.read_string(), msg.read_float32(), msg.read_int32()))
    assert stats and {key for key, _, _ in stats} == {"Ball/Drops"}
    assert sum(value for _, value, _ in stats) >= 12 and all(method == 2 for *_, method in stats)
    trainer.answer(status=400)
    code, _, err = _finish(process, within=5)
    assert code == 0 and "unknown side channel" not in err.lower()


def test_player_log_records_handshake_and_unknown_args_are_ignored(
    spawn, trainer, tmp_path
) -> None:
    process = _start(
        spawn, trainer, "Basic", "-logFile", "player.log", "-screen-width", "80", "--bogus"
    )
    trainer.handshake(seed=5)
    trainer.exchange(RESET)
    trainer.answer(status=400)
    assert _finish(process, within=5)[0] == 0
    log = (tmp_path / "player.log").read_text()
    assert "seed 5" in log and "reset" in log.lower() and "-screen-width 80 --bogus" in log


def test_log_file_dash_goes_to_stdout(spawn, trainer) -> None:
    process = _start(spawn, trainer, "Basic", "-logFile", "-")
    trainer.handshake()
    trainer.answer(status=400)
    _, out, _ = _finish(process, within=5)
    assert "Connected to a trainer" in out


def test_decision_period_and_max_step_flags(spawn, trainer) -> None:
    process = _start(spawn, trainer, "Basic", "--decision-period", "2", "--max-step", "3")
    trainer.handshake()
    message = trainer.exchange(RESET)
    done = []
    for _ in range(3):
        rows = [{"discrete_actions": [0]}] * _decisions(message, BASIC)
        message = trainer.exchange(STEP, {BASIC: rows})
        infos = message.unity_output.rl_output.agentInfos[BASIC].value
        done.append([(i.done, i.max_step_reached, round(i.reward, 4)) for i in infos])
    # Decisions every 2 steps; the 3rd step ends the episode at the step limit.
    assert done == [
        [(False, False, -0.02)],
        [(True, True, -0.01)],
        [(False, False, -0.01)],
    ]
    trainer.answer(status=400)
    assert _finish(process, within=5)[0] == 0


def test_env_executable_launcher_plays_like_a_unity_build(spawn, trainer, tmp_path) -> None:
    from cli.main import main

    launcher = tmp_path / "GridWorld.x86_64"
    assert main(["env-executable", "GridWorld", str(launcher)]) == 0
    process = spawn("-nographics", "--mlagents-port", str(trainer.port), command=[str(launcher)])
    init, _ = trainer.handshake()
    assert init.rl_initialization_output.name == "GridWorld"
    message = trainer.exchange(RESET)
    [info] = message.unity_output.rl_output.agentInfos[GRID].value
    assert info.observations[0].compressed_data.startswith(b"\x89PNG")
    assert len(info.action_mask) == 5
    trainer.answer(status=400)
    assert _finish(process, within=5)[0] == 0


def test_version_rule_matches_unity() -> None:
    from unity_gym.protocol_version import communication_compatible as versions_compatible

    assert versions_compatible("1.5.0", "1.0.0") and versions_compatible("1.5.0", "1.9.3")
    assert not versions_compatible("1.5.0", "2.0.0") and not versions_compatible("1.5.0", "0.5")
    assert versions_compatible("0.3.1", "0.3.0") and not versions_compatible("0.3.0", "0.4.0")
    assert not versions_compatible("1.5.0", "") and not versions_compatible("1.5.0", "x.y")


def test_brain_parameters_fill_legacy_fields_only_for_old_trainers() -> None:
    from unity_gym.players import get_player
    from unity_gym.players.protocol import brain_parameters

    grid = get_player("GridWorld").behavior_specs[GRID]
    ball = get_player("3DBall").behavior_specs[BALL]
    modern = brain_parameters(GRID, grid)
    assert list(modern.action_spec.discrete_branch_sizes) == [5]
    assert modern.action_spec.num_discrete_actions == 1 and not modern.vector_action_size_deprecated
    legacy = brain_parameters(GRID, grid, hybrid_supported=False)
    assert list(legacy.vector_action_size_deprecated) == [5]
    assert legacy.vector_action_space_type_deprecated == 0  # discrete
    legacy = brain_parameters(BALL, ball, hybrid_supported=False)
    assert list(legacy.vector_action_size_deprecated) == [2]
    assert legacy.vector_action_space_type_deprecated == 1  # continuous
