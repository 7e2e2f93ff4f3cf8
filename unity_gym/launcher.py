"""Find and start player processes: Unity builds by path, built-in stand-ins by ``builtin:NAME``.

Resolution follows mlagents-learn: the given path with or without its extension, then
``.x86_64``/``.x86`` (Linux), ``.app/Contents/MacOS/*`` (macOS), ``.exe`` (Windows), also
inside a build folder. A started player is watched so that an exit or crash is reported at
once, with its exit code and the end of its log, instead of after the full timeout.
"""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from unity_gym.exception import UnityEnvironmentException, UnityPlayerExitedException

BUILTIN_PREFIX = "builtin:"
# The launching process, for built-in players to watch (see players.protocol.UnityConnection).
TRAINER_PID_VARIABLE = "UNITY_SB3_TRAINER_PID"
PORT_FLAG = "--mlagents-port"
_EXTENSIONS = (".x86_64", ".x86", ".exe", ".app")
_LOG_TAIL_LINES = 15


def builtin_player_name(file_name: str) -> str | None:
    """``"builtin:3DBall"`` -> ``"3DBall"``; None for anything else."""
    if file_name.startswith(BUILTIN_PREFIX):
        return file_name[len(BUILTIN_PREFIX) :]
    return None


def _candidates(env_path: str) -> list[str]:
    stem = env_path.strip()
    for ext in _EXTENSIONS:
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    name = os.path.basename(os.path.normpath(stem))
    if sys.platform.startswith("linux"):
        patterns = [stem + ".x86_64", stem + ".x86", stem, os.path.join(stem, "*.x86_64")]
    elif sys.platform == "darwin":
        app = stem + ".app"
        patterns = [
            os.path.join(app, "Contents", "MacOS", name),
            os.path.join(app, "Contents", "MacOS", "*"),
            stem,
        ]
    else:
        patterns = [stem + ".exe", os.path.join(stem, "*.exe"), stem]
    found: list[str] = []
    for pattern in patterns:
        for match in sorted(glob.glob(pattern)):
            if os.path.isfile(match) and "UnityCrashHandler" not in match and match not in found:
                found.append(match)
    return found


def player_command(file_name: str) -> list[str]:
    """The argv prefix that starts the player named by ``file_name``."""
    builtin = builtin_player_name(file_name)
    if builtin is not None:
        from unity_gym.players import list_players

        names = [p.name for p in list_players()]
        if builtin not in names:
            raise UnityEnvironmentException(
                f"There is no built-in player named {builtin!r}. Built-in players: "
                f"{', '.join(names)} (use file_name='builtin:<name>'; `unity-sb3 envs` lists them)."
            )
        return [sys.executable, "-m", "unity_gym.players", builtin]
    found = _candidates(file_name)
    if not found:
        raise UnityEnvironmentException(
            f"Couldn't launch the {file_name!r} environment: no player build matches that path "
            f"(looked for it with and without the extensions {', '.join(_EXTENSIONS)}, relative "
            f"to {os.getcwd()}). Pass the path of your Unity build, 'builtin:<name>' for a "
            "built-in player, or None to connect to the Unity Editor."
        )
    executable = found[0]
    if not os.access(executable, os.X_OK):
        raise UnityEnvironmentException(
            f"The player build {executable} is not executable. Fix its permissions, e.g. "
            f'"chmod -R 755 {os.path.dirname(executable) or executable}".'
        )
    return [executable]


@dataclass
class PlayerProcess:
    """A running player and where its output goes."""

    process: subprocess.Popen[bytes]
    command: list[str]
    log_file: str | None
    _output_path: str = ""
    _output_is_temp: bool = field(default=False, repr=False)

    @staticmethod
    def start(
        file_name: str,
        port: int,
        *,
        no_graphics: bool = False,
        log_folder: str | None = None,
        worker_id: int = 0,
        additional_args: list[str] | None = None,
    ) -> PlayerProcess:
        """Start the player with the flags mlagents-learn passes to a build."""
        command = player_command(file_name)
        extra = list(additional_args or [])
        args: list[str] = []
        if no_graphics:
            args += ["-nographics", "-batchmode"]
        args += [PORT_FLAG, str(port)]
        log_file = None
        if log_folder and "-logfile" not in (a.lower() for a in extra):
            os.makedirs(log_folder, exist_ok=True)
            log_file = os.path.join(os.path.abspath(log_folder), f"Player-{worker_id}.log")
            args += ["-logFile", log_file]
        args += extra
        if log_folder:
            output_path = os.path.join(
                os.path.abspath(log_folder), f"Player-{worker_id}.stdout.log"
            )
            is_temp = False
        else:
            fd, output_path = tempfile.mkstemp(prefix=f"unity-player-{worker_id}-", suffix=".log")
            os.close(fd)
            is_temp = True
        with open(output_path, "wb") as output:
            try:
                process = subprocess.Popen(
                    command + args,
                    # Built-in players stop waiting for a trainer that died (Unity builds
                    # ignore the variable).
                    env={**os.environ, TRAINER_PID_VARIABLE: str(os.getpid())},
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    # Own session: Ctrl+C in the terminal reaches Python, which then closes the
                    # player cleanly instead of it dying mid-step.
                    start_new_session=True,
                )
            except OSError as err:
                if is_temp:
                    os.unlink(output_path)
                raise UnityEnvironmentException(
                    f"Could not start the player {command[0]}: {err.strerror or err}. Check the "
                    "path and its permissions."
                ) from None
        return PlayerProcess(process, command + args, log_file, output_path, is_temp)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self) -> str:
        """The last lines the player printed or logged, for error messages."""
        lines: list[str] = []
        for path in (self._output_path, self.log_file):
            if path and os.path.exists(path):
                with contextlib.suppress(OSError):
                    text = Path(path).read_text(errors="replace").strip()
                    if text:
                        lines += text.splitlines()[-_LOG_TAIL_LINES:]
        return "\n".join(lines)

    def exit_message(self) -> str:
        code = self.process.returncode
        description = f"exit code {code}"
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                description += f" ({signal.Signals(-code).name})"
        where = f" Player log: {self.log_file}." if self.log_file else ""
        tail = self.log_tail()
        tail_text = f"\nLast output:\n{tail}" if tail else " It printed nothing."
        player = f"The player ({self.command[0]}, pid {self.pid})"
        return f"{player} exited with {description}.{where}{tail_text}"

    def raise_if_exited(self) -> None:
        """Poll callback: raise with the player's exit status if it is gone."""
        if self.process.poll() is not None:
            raise UnityPlayerExitedException(self.exit_message())

    def stop(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for a clean exit, then kill the player's process group."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError, AttributeError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait()
        if self._output_is_temp:
            with contextlib.suppress(OSError):
                os.unlink(self._output_path)
