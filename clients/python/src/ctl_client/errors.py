"""Exceptions of the ctl client, one per failure that docs/protocol.md describes.

Every exception derives from :class:`CtlError`. The errors a daemon answers (protocol.md
section 7) derive from :class:`OperationError` and carry the error's fields as attributes; the
rest are what the client itself finds: a connection that cannot be made
(:class:`ConnectError`), a daemon that breaks the protocol (:class:`ProtocolError`), the wrong
daemon (:class:`WrongDaemon`), a deadline that passed (:class:`Timeout`), a request too large
to send (:class:`TooLarge`).
"""

from __future__ import annotations

import errno as _errno
from typing import Any, Dict, List, Mapping, Optional, Sequence

__all__ = [
    "CtlError",
    "ConnectError",
    "SocketMissing",
    "ConnectionRefused",
    "SocketAccessDenied",
    "ConnectBusy",
    "UntrustedSocket",
    "ProtocolError",
    "ConnectionClosed",
    "WrongProtocol",
    "WrongDaemon",
    "Timeout",
    "TooLarge",
    "Rejected",
    "WouldBlock",
    "OperationError",
    "Unsupported",
    "Failed",
    "Denied",
    "Busy",
    "BadArguments",
    "ShuttingDown",
    "Unrecognized",
    "operation_error",
]


class CtlError(Exception):
    """Base of every error this client raises."""


# --- connecting (protocol.md section 7, "Connecting fails") ----------------------------------


class ConnectError(CtlError):
    """Connecting to the socket failed.

    Attributes: ``path`` (the socket path), ``errno`` (the OS error number, or None) and
    ``os_error`` (the underlying :class:`OSError`, or None).
    """

    def __init__(
        self,
        path: str,
        message: str,
        *,
        errno: Optional[int] = None,
        os_error: Optional[OSError] = None,
    ) -> None:
        super().__init__(f"cannot connect to {path}: {message}")
        self.path = path
        self.errno = errno
        self.os_error = os_error


class SocketMissing(ConnectError):
    """``ENOENT``: nothing at that path (the daemon was stopped)."""


class ConnectionRefused(ConnectError):
    """``ECONNREFUSED``: a socket nobody accepts on (the daemon died, or the path is not a
    socket)."""


class SocketAccessDenied(ConnectError):
    """``EACCES``: the socket's mode (or its directory's) keeps this user out."""


class ConnectBusy(ConnectError):
    """``EAGAIN`` until the deadline: the daemon's queue of connections stayed full (alive but
    busy). ``timeout`` is the deadline, in seconds, that passed."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(
            path,
            f"its queue of connections stayed full (EAGAIN) for {timeout:g} s: "
            "the daemon is alive but busy",
            errno=_errno.EAGAIN,
        )
        self.timeout = timeout


class UntrustedSocket(ConnectError):
    """A socket looked up by name failed the trust rule of protocol.md section 1; nothing was
    sent to it. ``reason`` says which check failed."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, f"not trusted: {reason}")
        self.reason = reason


# --- the client's own findings ----------------------------------------------------------------


class ProtocolError(CtlError):
    """The daemon (or whatever listens on the socket) broke the protocol: a reply of another
    variant than the request's, a bad frame, JSON that is not a reply. The connection is
    closed; nothing in the reply was acted on."""


class ConnectionClosed(ProtocolError):
    """The connection closed before the reply came: the daemon could not decode the request,
    the frame was over its limit, the connection was idle too long, or the daemon stopped."""


class WrongProtocol(ProtocolError):
    """The daemon's ``hello`` names another protocol version than 1: it speaks another
    protocol, so nothing else was sent. ``protocol`` is the version it named."""

    def __init__(self, protocol: Any) -> None:
        super().__init__(
            f"the daemon speaks protocol {protocol!r}, this client protocol 1; nothing else was sent"
        )
        self.protocol = protocol


class WrongDaemon(CtlError):
    """The daemon's ``hello`` gave another name than the one expected; nothing else was sent.
    Attributes ``expected`` and ``actual`` (the name it gave)."""

    def __init__(self, expected: str, actual: str, path: str = "") -> None:
        where = f" at {path}" if path else ""
        super().__init__(
            f"expected daemon {expected!r}{where}, but it says it is {actual!r}; "
            "nothing else was sent"
        )
        self.expected = expected
        self.actual = actual
        self.path = path


class Timeout(CtlError):
    """No reply before the deadline. For ``reload``, ``rotate`` and ``drain`` the work goes on
    in the daemon: ask ``status``. Attributes ``operation`` and ``timeout`` (seconds)."""

    def __init__(self, operation: str, timeout: float) -> None:
        hint = (
            "; the work goes on in the daemon, ask status how it ended"
            if operation in ("reload", "rotate", "drain")
            else ""
        )
        super().__init__(f"{operation}: no reply within {timeout:g} s{hint}")
        self.operation = operation
        self.timeout = timeout


class TooLarge(CtlError):
    """The request's frame would be over the limit: it was not sent. Attributes ``operation``,
    ``size`` and ``limit`` (bytes of JSON)."""

    def __init__(self, operation: str, size: int, limit: int) -> None:
        super().__init__(
            f"{operation}: the request is {size} bytes, over the limit of {limit}; not sent"
        )
        self.operation = operation
        self.size = size
        self.limit = limit


class Rejected(CtlError):
    """The daemon refused the request before running it (a reply whose ``message`` is
    ``{"Err": {"kind": K, "detail": TEXT}}``, protocol.md section 5). Attributes ``operation``,
    ``kind`` (a number) and ``detail``."""

    def __init__(self, operation: str, kind: Any, detail: str) -> None:
        super().__init__(f"{operation}: refused before it ran (kind {kind}): {detail}")
        self.operation = operation
        self.kind = kind
        self.detail = detail


class WouldBlock(Rejected):
    """Kind 10: more requests in flight on this connection than the daemon takes, still so at
    the deadline."""


# --- errors the daemon answers (protocol.md section 7) ----------------------------------------


class OperationError(CtlError):
    """An error the daemon answered for an operation. Attributes ``operation`` (the operation
    called), ``kind`` (the error's kind, e.g. ``"failed"``) and ``fields`` (all the error's
    fields, as received), plus one attribute per field of the kind."""

    kind: str = ""

    def __init__(self, operation: str, fields: Mapping[str, Any], message: str) -> None:
        super().__init__(f"{operation}: {message}")
        self.operation = operation
        self.fields: Dict[str, Any] = dict(fields)
        if "kind" in fields:
            self.kind = str(fields["kind"])


def _s(v: Any) -> str:
    return "" if v is None else str(v)


class Unsupported(OperationError):
    """The daemon does not serve the operation; nothing was done. ``supported`` lists the names
    it serves. ``local`` is True when this client found it in ``hello`` and sent nothing."""

    kind = "unsupported"

    def __init__(
        self,
        operation: str,
        fields: Mapping[str, Any],
        *,
        local: bool = False,
    ) -> None:
        self.unsupported_operation = _s(fields.get("operation", operation))
        self.supported: List[str] = [str(x) for x in (fields.get("supported") or [])]
        self.local = local
        sent = " (not sent: the daemon's hello does not list it)" if local else ""
        super().__init__(
            operation,
            fields,
            f"the daemon does not serve {self.unsupported_operation!r}{sent}; "
            f"it serves: {', '.join(self.supported) or 'nothing'}",
        )


class Failed(OperationError):
    """It ran and failed; the daemon kept its old state. ``reason`` and ``causes`` (outermost
    first)."""

    kind = "failed"

    def __init__(self, operation: str, fields: Mapping[str, Any]) -> None:
        self.reason = _s(fields.get("reason"))
        self.causes: List[str] = [str(c) for c in (fields.get("causes") or [])]
        text = ": ".join([self.reason, *self.causes]) if self.causes else self.reason
        super().__init__(operation, fields, f"failed: {text}")


class Denied(OperationError):
    """The daemon's policy does not let this caller do it. ``denied_operation``, ``uid`` and
    ``needed`` (``"read"``, ``"operate"``, ``"admin"`` or None when absent)."""

    kind = "denied"

    def __init__(self, operation: str, fields: Mapping[str, Any]) -> None:
        self.denied_operation = _s(fields.get("operation", operation))
        self.uid: Optional[int] = fields.get("uid")
        self.needed: Optional[str] = fields.get("needed")
        need = f" (needs {self.needed})" if self.needed else ""
        super().__init__(
            operation,
            fields,
            f"uid {self.uid} may not run {self.denied_operation!r}{need}",
        )


class Busy(OperationError):
    """The daemon cannot take it now; retry later. ``reason``."""

    kind = "busy"

    def __init__(self, operation: str, fields: Mapping[str, Any]) -> None:
        self.reason = _s(fields.get("reason"))
        super().__init__(operation, fields, f"busy: {self.reason}; retry later")


class BadArguments(OperationError):
    """The arguments do not fit the command's schema; it was not run. ``command``, ``field``
    (empty: the arguments as a whole), ``expected`` and ``message``."""

    kind = "bad_arguments"

    def __init__(self, operation: str, fields: Mapping[str, Any]) -> None:
        self.command = _s(fields.get("command", operation))
        self.field = _s(fields.get("field"))
        self.expected = _s(fields.get("expected"))
        self.message = _s(fields.get("message"))
        where = f"argument {self.field!r}" if self.field else "the arguments"
        super().__init__(
            operation,
            fields,
            f"bad arguments for {self.command!r}: {where}: expected {self.expected}, "
            f"{self.message}",
        )


class ShuttingDown(OperationError):
    """The daemon is stopping and takes no new work."""

    kind = "shutting_down"

    def __init__(self, operation: str, fields: Mapping[str, Any]) -> None:
        super().__init__(operation, fields, "the daemon is shutting down and takes no new work")


class Unrecognized(Failed):
    """An error kind this client does not know (from a newer daemon): a failure, with all its
    fields in ``fields``."""

    def __init__(self, operation: str, fields: Mapping[str, Any]) -> None:
        OperationError.__init__(
            self,
            operation,
            fields,
            f"failed with an error of unknown kind {fields.get('kind')!r}: "
            + ", ".join(f"{k}={v!r}" for k, v in fields.items() if k != "kind"),
        )
        self.reason = _s(fields.get("reason", f"unknown error kind {fields.get('kind')!r}"))
        causes: Sequence[Any] = fields.get("causes") or []
        self.causes = [str(c) for c in causes] if isinstance(causes, list) else []


_KINDS = {
    "unsupported": Unsupported,
    "failed": Failed,
    "denied": Denied,
    "busy": Busy,
    "bad_arguments": BadArguments,
    "shutting_down": ShuttingDown,
}


def operation_error(operation: str, error: Any) -> OperationError:
    """The exception for an ERROR object (protocol.md section 7) answered to ``operation``."""
    if not isinstance(error, dict):
        return Unrecognized(operation, {"kind": None, "error": error})
    cls = _KINDS.get(error.get("kind"))  # type: ignore[arg-type]
    if cls is None:
        return Unrecognized(operation, error)
    return cls(operation, error)  # type: ignore[call-arg]
