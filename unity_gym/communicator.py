"""Python's end of the ML-Agents gRPC link.

Python is the gRPC *server* of ``UnityToExternalProto.Exchange``; the player is the client and
drives every exchange: it sends its output as a request and blocks until Python answers with
the next input. The gRPC handler thread hands each request to the caller's thread through a
queue and waits for the answer on another, so messages are never copied, pickled or
re-serialised between threads (ML-Agents routes them through a multiprocessing pipe).

Handshake, as Unity's RpcCommunicator performs it:
1. player -> ``unity_output.rl_initialization_output`` (name, versions, capabilities);
   Python -> ``unity_input.rl_initialization_input`` (seed, versions, capabilities, num_areas);
2. player -> an empty message; Python's answer to it is the first real input (a RESET).
Afterwards every request carries ``rl_output`` and every answer ``rl_input``. An answer with
``header.status`` other than 200 tells the player to quit.
"""

from __future__ import annotations

import atexit
import queue
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError

from unity_gym.communicator_objects.header_pb2 import HeaderProto
from unity_gym.communicator_objects.unity_input_pb2 import UnityInputProto
from unity_gym.communicator_objects.unity_message_pb2 import UnityMessageProto
from unity_gym.communicator_objects.unity_output_pb2 import UnityOutputProto
from unity_gym.communicator_objects.unity_to_external_pb2 import DESCRIPTOR as SERVICE_FILE
from unity_gym.exception import (
    UnityCommunicationException,
    UnityCommunicatorStoppedException,
    UnityTimeOutException,
    UnityWorkerInUseException,
)

PollCallback = Callable[[], None]

STATUS_OK = 200
STATUS_QUIT = 400
# How often a waiting caller checks that the player process is still alive.
_POLL_INTERVAL_S = 0.1


SERVICE_NAME = SERVICE_FILE.services_by_name["UnityToExternalProto"].full_name


class _Disconnected:
    """Queued when the player drops an exchange before Python answered it."""


@dataclass(frozen=True)
class _Corrupt:
    """Stands in for a request whose bytes are not a ``UnityMessageProto``."""

    size: int
    error: str


_DISCONNECTED = _Disconnected()
_SHUTDOWN = object()
_Request = UnityMessageProto | _Disconnected | _Corrupt


def _parse_request(data: bytes) -> UnityMessageProto | _Corrupt:
    # Parsing here (not in gRPC's default deserializer) lets a corrupt message reach the caller
    # as a clear error instead of a log line on the server and a silent timeout.
    try:
        return UnityMessageProto.FromString(data)
    except DecodeError as err:
        return _Corrupt(len(data), str(err))


class _ExchangeServicer:
    """Parks each incoming request until the caller's thread supplies the answer."""

    def __init__(self) -> None:
        self.requests: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self.answers: queue.SimpleQueue[object] = queue.SimpleQueue()

    def handler(self) -> grpc.GenericRpcHandler:
        method = grpc.unary_unary_rpc_method_handler(
            self.exchange,
            request_deserializer=_parse_request,
            response_serializer=UnityMessageProto.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(SERVICE_NAME, {"Exchange": method})

    def exchange(self, request: _Request, context: grpc.ServicerContext) -> UnityMessageProto:
        answered = threading.Event()

        def on_rpc_done() -> None:
            if not answered.is_set():
                self.requests.put(_DISCONNECTED)

        context.add_callback(on_rpc_done)
        self.requests.put(request)
        answer = self.answers.get()
        answered.set()
        if answer is _SHUTDOWN:
            return UnityMessageProto(header=HeaderProto(status=STATUS_QUIT))
        assert isinstance(answer, UnityMessageProto)
        return answer


_OPEN_COMMUNICATORS: weakref.WeakSet[RpcCommunicator] = weakref.WeakSet()
_exit_hook_installed = False


def _close_open_communicators() -> None:
    for communicator in list(_OPEN_COMMUNICATORS):
        communicator.close()


def _install_exit_hook() -> None:
    """Close communicators left open when the interpreter exits.

    gRPC's handler threads are ``concurrent.futures`` threads, which the interpreter joins
    *before* ``atexit`` handlers run; a handler parked on an answer would block that join
    forever. ``threading``'s own exit hooks run before the join (``concurrent.futures``
    registers there too), so the communicators close first.
    """
    global _exit_hook_installed
    if not _exit_hook_installed:
        register = getattr(threading, "_register_atexit", atexit.register)
        register(_close_open_communicators)
        _exit_hook_installed = True


def check_port_free(host: str, port: int) -> None:
    """Fail early, with a useful message, if another process listens on ``host:port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR: connections of a previous run lingering in TIME_WAIT must not count as
        # "in use"; a live listener still does.
        if sys.platform != "win32":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise UnityWorkerInUseException(port, host, err.strerror or str(err)) from None


class RpcCommunicator:
    """Serves one player on ``host:port`` and exchanges messages with it in lock-step.

    ``port=0`` lets the operating system choose a free port while the server binds it (no
    find-then-bind race); :attr:`port` is then the port it got, to tell the player.
    """

    def __init__(self, port: int, host: str = "127.0.0.1", timeout_wait: float = 60.0) -> None:
        self.port = port
        self.host = host
        self.timeout_wait = timeout_wait
        self._servicer = _ExchangeServicer()
        self._awaiting_answer = False
        if port != 0:
            check_port_free(host, port)
        # so_reuseport 0: a second environment on the same port must fail, not share it.
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=4, thread_name_prefix="unity-gym-rpc"),
            options=[("grpc.so_reuseport", 0)],
        )
        self._server.add_generic_rpc_handlers((self._servicer.handler(),))
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = self._server.add_insecure_port(address)
        except RuntimeError as err:
            self._server.stop(None)
            raise UnityWorkerInUseException(port, host, str(err)) from None
        if bound == 0:
            self._server.stop(None)
            raise UnityWorkerInUseException(port, host)
        self.port = bound
        _install_exit_hook()
        self._server.start()
        self.is_open = True
        _OPEN_COMMUNICATORS.add(self)

    def _next_request(self, poll_callback: PollCallback | None, what: str) -> UnityMessageProto:
        deadline = time.monotonic() + self.timeout_wait
        requests = self._servicer.requests
        while True:
            try:
                request = requests.get(timeout=_POLL_INTERVAL_S)
            except queue.Empty:
                if poll_callback is not None:
                    poll_callback()
                if time.monotonic() >= deadline:
                    raise UnityTimeOutException(_timeout_message(self.timeout_wait, what)) from None
                continue
            if isinstance(request, _Corrupt):
                self._awaiting_answer = True
                raise UnityCommunicationException(
                    f"The player sent a {what} message of {request.size} bytes that is not a "
                    f"valid UnityMessageProto ({request.error}). The player and this package do "
                    "not speak the same protocol, or the connection is not an ML-Agents player."
                )
            if isinstance(request, _Disconnected):
                if poll_callback is not None:
                    # Give a dying process a moment so the error can report its exit code.
                    time.sleep(_POLL_INTERVAL_S)
                    poll_callback()
                raise UnityCommunicatorStoppedException(
                    f"The player disconnected while Python was preparing its {what}; it crashed, "
                    "was killed, or its editor left Play mode."
                )
            self._awaiting_answer = True
            return request

    def _answer(self, message: UnityMessageProto) -> None:
        self._awaiting_answer = False
        self._servicer.answers.put(message)

    def initialize(
        self, init_input: UnityInputProto, poll_callback: PollCallback | None = None
    ) -> UnityOutputProto:
        """Run the handshake; returns the player's initialization output."""
        first = self._next_request(poll_callback, "handshake")
        self._answer(
            UnityMessageProto(header=HeaderProto(status=STATUS_OK), unity_input=init_input)
        )
        if first.header.status != STATUS_OK:
            raise UnityCommunicatorStoppedException(
                f"The player refused the handshake (status {first.header.status}: "
                f"{first.header.message or 'no message'})."
            )
        second = self._next_request(poll_callback, "handshake")
        if second.header.status != STATUS_OK:
            raise UnityCommunicatorStoppedException(
                "The player closed the connection right after the handshake; its log says why "
                "(usually incompatible communication versions)."
            )
        return first.unity_output

    def send(self, unity_input: UnityInputProto) -> None:
        """Answer the player's pending request with ``unity_input``; returns at once."""
        self._answer(
            UnityMessageProto(header=HeaderProto(status=STATUS_OK), unity_input=unity_input)
        )

    def receive(self, poll_callback: PollCallback | None = None) -> UnityOutputProto | None:
        """Wait for the player's next output; None means the player announced it is quitting."""
        reply = self._next_request(poll_callback, "next step")
        if reply.header.status != STATUS_OK:
            return None
        return reply.unity_output

    def exchange(
        self, unity_input: UnityInputProto, poll_callback: PollCallback | None = None
    ) -> UnityOutputProto | None:
        """:meth:`send` then :meth:`receive`."""
        self.send(unity_input)
        return self.receive(poll_callback)

    def close(self) -> None:
        """Tell a waiting player to quit (status 400), stop the server and free the port."""
        if not self.is_open:
            return
        self.is_open = False
        _OPEN_COMMUNICATORS.discard(self)
        if self._awaiting_answer:
            self._answer(UnityMessageProto(header=HeaderProto(status=STATUS_QUIT)))
        # Release any handler still parked on an answer so server shutdown is not delayed.
        for _ in range(4):
            self._servicer.answers.put(_SHUTDOWN)
        self._server.stop(grace=0.5).wait()


def _timeout_message(timeout: float, what: str) -> str:
    return (
        f"The Unity player did not send its {what} within timeout_wait={timeout:g} s. Check that: "
        "the player was built with the ML-Agents package and starts without user interaction; "
        "its agents' Behavior Parameters > Behavior Type is 'Default'; the player and this "
        "package speak compatible communication versions; on a machine without a display it runs "
        "with no_graphics=True (or is a server build). The player log (log_folder) tells what "
        "happened. Raise timeout_wait if the scene simply loads slowly."
    )
