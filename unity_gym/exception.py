"""Exceptions of the low-level API (names match ``mlagents_envs.exception``)."""

from __future__ import annotations


class UnityException(Exception):
    """Base class of every error this package raises about a Unity player."""


class UnityEnvironmentException(UnityException):
    """The player could not be started, exited, or behaved in a way we cannot handle."""


class UnityPlayerExitedException(UnityEnvironmentException):
    """The player process exited (crashed, was killed, or quit) while Python waited for it."""


class UnityRestartLimitException(UnityEnvironmentException):
    """A player failed more often than its restart policy allows."""


class UnityCommunicationException(UnityException):
    """A message from the player could not be understood."""


class UnityCommunicatorStoppedException(UnityException):
    """The player closed the connection (it quit, or was told to)."""


class RemotePlayerLostException(UnityCommunicatorStoppedException):
    """The host that ran a remote player (a Ray actor, or its whole node) is gone."""


class UnityObservationException(UnityException):
    """An observation did not match its spec or could not be decoded."""


class UnityActionException(UnityException):
    """Actions given to the environment do not match the behavior's action spec."""


class UnityTimeOutException(UnityException):
    """The player did not answer within ``timeout_wait`` seconds."""


class UnitySideChannelException(UnityException):
    """A side-channel message could not be written or read."""


class UnityWorkerInUseException(UnityException):
    """The port for this worker id is already taken by another process."""

    def __init__(self, port: int, host: str, detail: str = "") -> None:
        self.port = port
        self.host = host
        super().__init__(
            f"Port {port} on {host} is already in use, so no player can connect to this "
            "environment there. Another environment (or another program) holds it: close it, "
            "or give this environment a different worker_id or base_port."
            + (f" ({detail})" if detail else "")
        )


class UnityDemoException(UnityException):
    """A .demo file is missing, truncated, or not a demonstration recording."""
