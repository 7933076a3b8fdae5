"""The client: connects, says ``hello``, then sends typed requests (docs/protocol.md)."""

from __future__ import annotations

import errno
import os
import select
import socket
import stat
import struct
import threading
import time
from typing import Any, Dict, List, Mapping, NoReturn, Optional, Set, Tuple, Union

from . import _wire
from .errors import (
    ConnectBusy,
    ConnectError,
    ConnectionRefused,
    ProtocolError,
    Rejected,
    SocketAccessDenied,
    SocketMissing,
    Timeout,
    TooLarge,
    Unsupported,
    UntrustedSocket,
    WouldBlock,
    WrongDaemon,
    WrongProtocol,
    operation_error,
)
from .replies import (
    CheckResult,
    Counter,
    Describe,
    DrainResult,
    Hello,
    LogLevelResult,
    ReloadResult,
    ResumeResult,
    RotateResult,
    Status,
    counters_from_json,
)

__all__ = ["Client", "DEFAULT_TIMEOUT", "DEFAULT_CLIENT_NAME", "socket_candidates"]

#: The default deadline of connecting and of each call, in seconds.
DEFAULT_TIMEOUT = 30.0
#: What the client tells the daemon it is (for the daemon's log).
DEFAULT_CLIENT_NAME = "ctl-client 0.1.0"

#: Operations with a variant of their own (protocol.md section 4); every other name travels
#: inside ``Call``.
VARIANTS: Dict[str, str] = {
    "hello": "Hello",
    "status": "Status",
    "reload": "Reload",
    "rotate": "Rotate",
    "drain": "Drain",
    "log-level": "LogLevel",
    "resume": "Resume",
    "describe": "Describe",
    "check": "Check",
    "counters": "Counters",
}

#: The kind of a refusal before running (protocol.md section 5) that means "would block".
WOULD_BLOCK = 10
#: How long to wait before sending again a request refused as "would block".
_RETRY_PAUSE = 0.02

Json = Any


def _connect_socket(path: str, deadline: float, timeout: float) -> socket.socket:
    """Connects to ``path`` before ``deadline``, retrying ``EAGAIN`` (a full queue)."""
    pause = 0.001
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            err = sock.connect_ex(path)
            if err == errno.EINPROGRESS:
                remaining = max(deadline - time.monotonic(), 0.0)
                _, writable, _ = select.select([], [sock], [], remaining)
                err = (
                    sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if writable
                    else errno.EAGAIN
                )
            if err == 0:
                sock.setblocking(True)
                return sock
        except OSError as e:  # e.g. a path too long for AF_UNIX
            sock.close()
            raise ConnectError(path, str(e), errno=e.errno, os_error=e) from None
        sock.close()
        ose = OSError(err, os.strerror(err), path)
        if err in (errno.EAGAIN, errno.EWOULDBLOCK):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConnectBusy(path, timeout)
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.05)
            continue
        if err == errno.ENOENT:
            raise SocketMissing(
                path, "no such socket (the daemon is not running)", errno=err, os_error=ose
            )
        if err == errno.ECONNREFUSED:
            raise ConnectionRefused(
                path,
                "connection refused (nobody accepts on that socket: the daemon died, "
                "or the path is not a socket)",
                errno=err,
                os_error=ose,
            )
        if err in (errno.EACCES, errno.EPERM):
            raise SocketAccessDenied(
                path, "permission denied (the socket's mode keeps you out)", errno=err, os_error=ose
            )
        raise ConnectError(path, os.strerror(err), errno=err, os_error=ose)


def socket_candidates(name: str) -> List[Tuple[str, Optional[int]]]:
    """Where a daemon named ``name`` puts its socket (protocol.md section 1), in the order that
    section lists them, each with the uid its directory must belong to (None: the directory's
    owner, whoever that is, is the one the daemon's peer must be)."""
    out: List[Tuple[str, Optional[int]]] = [
        (f"/run/ctl/{name}.sock", 0),
        (f"/run/{name}/ctl.sock", None),
    ]
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        out.append((os.path.join(xdg, "ctl", f"{name}.sock"), os.getuid()))
    return out


def _check_dir(path: str, owner: Optional[int]) -> int:
    """Applies the directory half of the trust rule to the socket's directory; returns the uid
    the peer must have (besides root)."""
    d = os.path.dirname(path)
    try:
        st = os.stat(d)
    except OSError as e:
        raise UntrustedSocket(path, f"cannot stat its directory {d}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UntrustedSocket(path, f"{d} is not a directory")
    allowed = {0} if owner is None or owner == 0 else {0, owner}
    if owner is None:
        allowed.add(st.st_uid)
    if st.st_uid not in allowed:
        raise UntrustedSocket(path, f"its directory {d} belongs to uid {st.st_uid}")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UntrustedSocket(
            path, f"its directory {d} is writable by others (mode {stat.S_IMODE(st.st_mode):o})"
        )
    return st.st_uid


def _peer_uid(sock: socket.socket) -> Optional[int]:
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return None
    fmt = "3i"
    pid, uid, gid = struct.unpack(fmt, sock.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize(fmt)))
    return uid


class Client:
    """A connection to one daemon, ``hello`` said.

    Make one with :meth:`connect` (a socket path) or :meth:`connect_name` (a daemon name,
    looked up and checked as protocol.md section 1 says). Use it as a context manager, or call
    :meth:`close`. One request is in flight at a time (calls from several threads wait for each
    other); every call has a deadline (``timeout``, seconds), sent to the daemon and enforced
    here, raising :class:`~ctl_client.Timeout`.
    """

    def __init__(
        self,
        sock: socket.socket,
        path: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_request: int = _wire.MAX_REQUEST,
        max_reply: int = _wire.MAX_REPLY,
    ) -> None:
        """Wraps a connected socket; prefer :meth:`connect`, which also says ``hello``."""
        self.path = path
        self.timeout = timeout
        self.max_request = max_request
        self._conn = _wire.Conn(sock, max_reply)
        self._lock = threading.Lock()
        self._next_id = 1
        self._abandoned: Set[int] = set()
        self._hello: Optional[Hello] = None

    # --- connecting ---------------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        path: Union[str, "os.PathLike[str]"],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        client_name: str = DEFAULT_CLIENT_NAME,
        expect_name: Optional[str] = None,
        max_request: int = _wire.MAX_REQUEST,
        max_reply: int = _wire.MAX_REPLY,
    ) -> "Client":
        """Connects to the socket at ``path`` and says ``hello``, all within ``timeout``.

        Raises :class:`~ctl_client.ConnectError` (a subclass for ``ENOENT``, ``ECONNREFUSED``,
        ``EACCES``; ``EAGAIN`` is retried until the deadline, then
        :class:`~ctl_client.ConnectBusy`), :class:`~ctl_client.WrongProtocol` when the daemon
        speaks another protocol, :class:`~ctl_client.WrongDaemon` when ``expect_name`` is given
        and the daemon has another name (nothing else is sent either way).
        ``timeout`` also becomes the default deadline of every call.
        """
        path = os.fspath(path)
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        deadline = time.monotonic() + timeout
        sock = _connect_socket(path, deadline, timeout)
        client = cls(sock, path, timeout=timeout, max_request=max_request, max_reply=max_reply)
        try:
            client._say_hello(client_name, expect_name, deadline)
        except BaseException:
            client.close()
            raise
        return client

    @classmethod
    def connect_name(
        cls,
        name: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        client_name: str = DEFAULT_CLIENT_NAME,
        max_request: int = _wire.MAX_REQUEST,
        max_reply: int = _wire.MAX_REPLY,
    ) -> "Client":
        """Finds the socket of the daemon ``name`` (protocol.md section 1), checks it as ``ctl``
        does before sending anything, connects, and checks that ``hello`` names ``name``.

        The first of :func:`socket_candidates` that exists is used. Its directory must belong
        to root (``/run/ctl``), to its own owner (``/run/NAME``) or to you
        (``$XDG_RUNTIME_DIR/ctl``) and be writable by nobody else; the peer (``SO_PEERCRED``)
        must be root or that owner. Raises :class:`~ctl_client.UntrustedSocket` otherwise,
        :class:`~ctl_client.SocketMissing` when none exists.
        """
        if not name or "/" in name or name in (".", "..") or "\0" in name:
            raise ValueError(f"not a daemon name: {name!r}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        tried = []
        for path, owner in socket_candidates(name):
            tried.append(path)
            try:
                os.lstat(path)
            except FileNotFoundError:
                continue
            except OSError:
                pass  # let connecting say what is wrong
            trusted = _check_dir(path, owner)
            deadline = time.monotonic() + timeout
            sock = _connect_socket(path, deadline, timeout)
            try:
                peer = _peer_uid(sock)
            except OSError as e:
                sock.close()
                raise UntrustedSocket(path, f"cannot learn who listens there: {e}") from None
            if peer is None or peer not in (0, trusted):
                sock.close()
                raise UntrustedSocket(
                    path,
                    "cannot learn who listens there"
                    if peer is None
                    else f"it is served by uid {peer}, not root or uid {trusted}",
                )
            client = cls(sock, path, timeout=timeout, max_request=max_request, max_reply=max_reply)
            try:
                client._say_hello(client_name, name, deadline)
            except BaseException:
                client.close()
                raise
            return client
        raise SocketMissing(
            " or ".join(tried), f"no socket for daemon {name!r}", errno=errno.ENOENT
        )

    def _say_hello(self, client_name: str, expect_name: Optional[str], deadline: float) -> None:
        result = self._exchange(
            "hello",
            "Hello",
            {"protocol": _wire.PROTOCOL, "client": client_name},
            deadline,
            deadline - time.monotonic(),
        )
        if not isinstance(result, dict):
            self.close()
            raise ProtocolError(f"hello's reply is not an object: {result!r}")
        hello = Hello.from_json(result)
        if hello.protocol != _wire.PROTOCOL or isinstance(hello.protocol, bool):
            self.close()
            raise WrongProtocol(result.get("protocol"))
        if expect_name is not None and hello.name != expect_name:
            self.close()
            raise WrongDaemon(expect_name, hello.name, self.path)
        self._hello = hello

    @property
    def hello(self) -> Hello:
        """The daemon's reply to ``hello``: its name, version, pid and operations."""
        if self._hello is None:
            raise ProtocolError("hello has not been answered")
        return self._hello

    def supports(self, operation: str) -> bool:
        """Whether the daemon's ``hello`` lists ``operation`` (an operation or command name)."""
        return operation in self.hello.operations

    def close(self) -> None:
        """Closes the connection."""
        self._conn.close()

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (by :meth:`close`, or after a protocol error)."""
        return self._conn.closed

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        who = f" {self._hello.name!r}" if self._hello else ""
        return f"<ctl_client.Client{who} at {self.path}{' (closed)' if self.closed else ''}>"

    # --- the exchange -------------------------------------------------------------------------

    def _exchange(
        self, operation: str, variant: str, req: Json, deadline: float, timeout: float
    ) -> Json:
        """Sends one request and returns the RESULT of its reply (protocol.md section 5)."""
        with self._lock:
            while True:
                rid = self._next_id
                self._next_id += 1
                payload = _wire.request(rid, variant, req, deadline - time.monotonic())
                if len(payload) > self.max_request:
                    raise TooLarge(operation, len(payload), self.max_request)
                try:
                    self._conn.send(payload, deadline)
                    reply = self._wait(rid, deadline)
                except _wire.Expired:
                    self._abandon(rid)
                    raise Timeout(operation, timeout) from None
                message = reply.get("message")
                if not isinstance(message, dict) or len(message) != 1:
                    self._broken(f"{operation}: a reply without a message: {reply!r}")
                if "Err" in message:
                    err = message["Err"]
                    err = err if isinstance(err, dict) else {"kind": None, "detail": err}
                    kind, detail = err.get("kind"), str(err.get("detail", ""))
                    if kind == WOULD_BLOCK:
                        # Wait for replies, then send again (section 5): with one request
                        # at a time here, only time can make room.
                        if deadline - time.monotonic() > 2 * _RETRY_PAUSE:
                            time.sleep(_RETRY_PAUSE)
                            continue
                        raise WouldBlock(operation, kind, detail)
                    raise Rejected(operation, kind, detail)
                ok = message.get("Ok")
                if not isinstance(ok, dict) or len(ok) != 1:
                    self._broken(f"{operation}: a reply that is not one variant: {message!r}")
                (got,) = ok.keys()
                if got != variant:
                    self._broken(
                        f"{operation}: the daemon answered a {got} reply to a {variant} request "
                        "(a broken daemon, or another program on the socket)"
                    )
                return ok[variant]

    def _wait(self, rid: int, deadline: float) -> Dict[str, Any]:
        while True:
            reply = self._conn.recv(deadline)
            got = reply.get("request_id")
            if got == rid and not isinstance(got, bool):
                return reply
            if isinstance(got, int) and got in self._abandoned:
                self._abandoned.discard(got)  # a late reply to a request given up: dropped
                continue
            self._broken(f"a reply to request {got!r}, which was not asked (waiting for {rid})")

    def _abandon(self, rid: int) -> None:
        """Gives up on request ``rid``: tells the daemon (``Cancel``) and drops its reply if one
        comes anyway."""
        self._abandoned.add(rid)
        self._conn.send_nowait(_wire.cancel(rid))

    def _broken(self, why: str) -> NoReturn:
        self.close()
        raise ProtocolError(why)

    def _deadline(self, timeout: Optional[float]) -> Tuple[float, float]:
        t = self.timeout if timeout is None else timeout
        if t <= 0:
            raise ValueError("timeout must be positive")
        return time.monotonic() + t, t

    def _require(self, operation: str) -> None:
        ops = self.hello.operations
        if operation not in ops:
            raise Unsupported(
                operation, {"operation": operation, "supported": list(ops)}, local=True
            )

    def _operation(self, operation: str, req: Json, timeout: Optional[float]) -> Json:
        """Runs a built-in with a variant of its own; returns its REPLY or raises its ERROR."""
        self._require(operation)
        deadline, t = self._deadline(timeout)
        result = self._exchange(operation, VARIANTS[operation], req, deadline, t)
        return self._unwrap(operation, result)

    def _unwrap(self, operation: str, result: Json) -> Json:
        if isinstance(result, dict) and len(result) == 1:
            if "Ok" in result:
                return result["Ok"]
            if "Err" in result:
                raise operation_error(operation, result["Err"])
        self._broken(f"{operation}: a result that is neither Ok nor Err: {result!r}")

    # --- the operations -----------------------------------------------------------------------

    def status(self, *, timeout: Optional[float] = None) -> Status:
        """``status``: what the daemon is doing; its own fields typed in ``values``."""
        return Status.from_json(self._operation("status", {}, timeout))

    def reload(self, *, timeout: Optional[float] = None) -> ReloadResult:
        """``reload``: applies the configuration. Past the deadline the reload is not applied."""
        return ReloadResult.from_json(self._operation("reload", {}, timeout))

    def check(self, *, timeout: Optional[float] = None) -> CheckResult:
        """``check``: validates the configuration as a reload would, applying nothing."""
        return CheckResult.from_json(self._operation("check", {}, timeout))

    def rotate(self, *, timeout: Optional[float] = None) -> RotateResult:
        """``rotate``: reopens the log files."""
        return RotateResult.from_json(self._operation("rotate", {}, timeout))

    def drain(self, *, timeout: Optional[float] = None) -> DrainResult:
        """``drain``: takes no new work and waits for the work in flight."""
        return DrainResult.from_json(self._operation("drain", {}, timeout))

    def resume(self, *, timeout: Optional[float] = None) -> ResumeResult:
        """``resume``: undoes a drain."""
        return ResumeResult.from_json(self._operation("resume", {}, timeout))

    def log_level(
        self, filter: Optional[str] = None, *, timeout: Optional[float] = None
    ) -> LogLevelResult:
        """``log-level``: reads the log filter (``filter`` None), or sets it (admin)."""
        return LogLevelResult.from_json(self._operation("log-level", {"filter": filter}, timeout))

    def describe(self, *, timeout: Optional[float] = None) -> Describe:
        """``describe``: the daemon's operations and own commands, with JSON Schemas."""
        return Describe.from_json(self._operation("describe", {}, timeout))

    def counters(
        self, prefix: Optional[str] = None, *, timeout: Optional[float] = None
    ) -> List[Counter]:
        """``counters``: the daemon's counters (those whose name starts with ``prefix``)."""
        return counters_from_json(self._operation("counters", {"prefix": prefix}, timeout))

    def ping(self, *, timeout: Optional[float] = None) -> None:
        """``ping`` (inside ``Call``): returns when the daemon answers."""
        self.call("ping", timeout=timeout)

    def call(
        self,
        command: str,
        args: Optional[Mapping[str, Json]] = None,
        /,
        *,
        timeout: Optional[float] = None,
        **kwargs: Json,
    ) -> Json:
        """Runs ``command`` with arguments ``args`` and/or keyword arguments; returns its reply
        (any JSON value).

        ``command`` is one of the daemon's own commands or an operation that travels inside
        ``Call`` (e.g. ``ping``); one of the built-ins with a variant of their own
        (``status``...) is sent in that variant, and its reply returned as a dict. An argument
        called ``timeout`` must go in ``args``. A name the daemon's ``hello`` does not list
        raises :class:`~ctl_client.Unsupported` and is not sent.
        """
        merged: Dict[str, Json] = dict(args or {})
        merged.update(kwargs)
        if command in VARIANTS:
            if command == "hello":
                return self.hello.raw
            return self._operation(command, merged, timeout)
        self._require(command)
        deadline, t = self._deadline(timeout)
        result = self._exchange(
            command, "Call", {"command": command, "args": merged}, deadline, t
        )
        ok = self._unwrap(command, result)
        if not isinstance(ok, dict) or "reply" not in ok:
            self._broken(f"{command}: a Call result without a reply: {ok!r}")
        return ok["reply"]
