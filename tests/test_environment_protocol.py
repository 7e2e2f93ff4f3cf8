"""UnityEnvironment's handshake and failure handling, against a scripted in-process player."""

from __future__ import annotations

import os
import socket
import stat
import time
from pathlib import Path

import pytest

from tests.scripted_player import ScriptedPlayer, empty_message, init_message
from unity_gym import UnityEnvironment
from unity_gym.communicator_objects.capabilities_pb2 import UnityRLCapabilitiesProto
from unity_gym.communicator_objects.unity_rl_initialization_input_pb2 import (
    UnityRLInitializationInputProto,
)
from unity_gym.exception import (
    UnityCommunicationException,
    UnityEnvironmentException,
    UnityTimeOutException,
    UnityWorkerInUseException,
)

pytestmark = pytest.mark.protocol


def test_handshake_sends_versions_seed_capabilities_and_num_areas(port: int) -> None:
    player = ScriptedPlayer(port, [init_message(), empty_message()])
    player.start()
    env = UnityEnvironment(base_port=port, seed=42, num_areas=3, timeout_wait=10)
    try:
        init = player.answers[0].unity_input.rl_initialization_input
        assert player.answers[0].header.status == 200
        assert init.seed == 42 and init.num_areas == 3
        assert init.communication_version == "1.5.0"
        assert init.package_version
        caps = init.capabilities
        assert all(getattr(caps, f.name) for f in UnityRLCapabilitiesProto.DESCRIPTOR.fields)
        assert env.academy_capabilities.hybridActions
    finally:
        env.close()


def test_initialization_input_wire_bytes_are_pinned() -> None:
    """Field numbers as Unity reads them: seed=1, versions=2/3, capabilities=4, num_areas=5."""
    message = UnityRLInitializationInputProto(
        seed=5,
        communication_version="1.5.0",
        package_version="0.1",
        capabilities=UnityRLCapabilitiesProto(baseRLCapabilities=True, multiAgentGroups=True),
        num_areas=2,
    )
    assert message.SerializeToString() == bytes.fromhex(
        "08051205" + b"1.5.0".hex() + "1a03" + b"0.1".hex() + "2204080138012802"
    )


def test_incompatible_versions_name_both_versions(port: int) -> None:
    player = ScriptedPlayer(port, [init_message("2.0.0"), empty_message()])
    player.start()
    with pytest.raises(UnityEnvironmentException) as err:
        UnityEnvironment(base_port=port, timeout_wait=10)
    assert "Python API: 1.5.0, Unity API: 2.0.0" in str(err.value)
    player.join(10)
    assert not player.is_alive()
    _assert_port_free(port)


def test_corrupted_player_message_is_a_clear_error(port: int) -> None:
    player = ScriptedPlayer(port, [init_message(), empty_message(), b"\xff\xff\xff\xff"])
    player.start()
    env = UnityEnvironment(base_port=port, timeout_wait=10)
    try:
        with pytest.raises(UnityCommunicationException, match="not a valid UnityMessageProto"):
            env.reset()
    finally:
        env.close()
    player.join(10)
    _assert_port_free(port)


def test_port_in_use_is_refused_with_the_fix(port: int) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(UnityWorkerInUseException, match=f"Port {port}.*worker_id or base_port"):
            UnityEnvironment(base_port=port, timeout_wait=1)


def test_second_environment_on_the_same_port_is_refused(port: int) -> None:
    player = ScriptedPlayer(port, [init_message(), empty_message()])
    player.start()
    env = UnityEnvironment(base_port=port, timeout_wait=10)
    try:
        with pytest.raises(UnityWorkerInUseException):
            UnityEnvironment(base_port=port, timeout_wait=1)
    finally:
        env.close()


def test_editor_that_never_connects_times_out_with_a_checklist(port: int) -> None:
    start = time.monotonic()
    with pytest.raises(UnityTimeOutException, match="Behavior Type"):
        UnityEnvironment(base_port=port, timeout_wait=1)
    assert time.monotonic() - start < 5
    _assert_port_free(port)


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "FakePlayer.x86_64"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(tmp_path / "FakePlayer")  # resolved with the extension, as mlagents-learn does


def test_player_that_never_connects_times_out_and_is_killed(tmp_path: Path, port: int) -> None:
    pid_file = tmp_path / "pid"
    file_name = _script(tmp_path, f"echo $$ > {pid_file}; exec sleep 60")
    start = time.monotonic()
    with pytest.raises(UnityTimeOutException):
        UnityEnvironment(file_name, base_port=port, timeout_wait=2)
    assert time.monotonic() - start < 8
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    _assert_port_free(port)


def test_player_that_exits_is_reported_at_once_with_its_output(tmp_path: Path, port: int) -> None:
    file_name = _script(tmp_path, "echo 'Fatal: missing scene' >&2; exit 3")
    start = time.monotonic()
    with pytest.raises(UnityEnvironmentException, match=r"exit code 3(.|\n)*missing scene"):
        UnityEnvironment(file_name, base_port=port, timeout_wait=30)
    assert time.monotonic() - start < 5


def test_missing_build_names_the_path_and_the_options(tmp_path: Path, port: int) -> None:
    with pytest.raises(UnityEnvironmentException, match="no player build matches"):
        UnityEnvironment(str(tmp_path / "NoSuchGame"), base_port=port)
    _assert_port_free(port)


def test_unknown_builtin_lists_the_builtins(port: int) -> None:
    with pytest.raises(UnityEnvironmentException, match="3DBall"):
        UnityEnvironment("builtin:NoSuchEnv", base_port=port)


def _assert_port_free(port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        probe.bind(("127.0.0.1", port))
