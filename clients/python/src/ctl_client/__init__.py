"""A client for the ctl control protocol, standard library only.

This package implements docs/protocol.md of the ctl project (the wire between a client and a
daemon serving a control socket) and nothing else: it was written from that document alone.

    from ctl_client import Client

    with Client.connect("/run/ctl/demo.sock", expect_name="demo") as c:
        print(c.hello.version, c.status().values_dict())
        c.call("set-message", text="hi")
"""

from .client import DEFAULT_CLIENT_NAME, DEFAULT_TIMEOUT, Client, socket_candidates
from .errors import (
    BadArguments,
    Busy,
    ConnectBusy,
    ConnectError,
    ConnectionClosed,
    ConnectionRefused,
    CtlError,
    Denied,
    Failed,
    OperationError,
    ProtocolError,
    Rejected,
    ShuttingDown,
    SocketAccessDenied,
    SocketMissing,
    Timeout,
    TooLarge,
    Unrecognized,
    Unsupported,
    UntrustedSocket,
    WouldBlock,
    WrongDaemon,
    WrongProtocol,
)
from ._wire import MAX_REPLY, MAX_REQUEST, PROTOCOL
from .replies import (
    CheckResult,
    Counter,
    Describe,
    DrainResult,
    FileId,
    Hello,
    LogLevelResult,
    OperationInfo,
    ReloadResult,
    ResumeResult,
    RotatedFile,
    RotateResult,
    Status,
    Unknown,
    Value,
    decode_value,
)

__version__ = "0.1.0"

__all__ = [
    "Client",
    "socket_candidates",
    "DEFAULT_TIMEOUT",
    "DEFAULT_CLIENT_NAME",
    "PROTOCOL",
    "MAX_REQUEST",
    "MAX_REPLY",
    # errors
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
    # replies
    "Hello",
    "Status",
    "Value",
    "Unknown",
    "decode_value",
    "ReloadResult",
    "CheckResult",
    "RotateResult",
    "RotatedFile",
    "FileId",
    "DrainResult",
    "ResumeResult",
    "LogLevelResult",
    "Describe",
    "OperationInfo",
    "Counter",
]
