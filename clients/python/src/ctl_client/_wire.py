"""Frames and envelopes of docs/protocol.md (sections 2, 3 and 5), over a blocking socket with
deadlines.

A frame is a 4-byte big-endian length, then that many bytes of UTF-8 JSON. Requests are at
most :data:`MAX_REQUEST` bytes of JSON, replies at most :data:`MAX_REPLY`.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from typing import Any, Dict, Optional

from .errors import ConnectionClosed, ProtocolError

#: The protocol version this client speaks (protocol.md section 6).
PROTOCOL = 1
#: The largest request frame a daemon takes by default, in bytes of JSON (section 2).
MAX_REQUEST = 65536
#: The largest reply frame a client must accept, in bytes of JSON (section 2).
MAX_REPLY = 1048576
#: Deadlines are cut to 24 hours by the daemon (section 3); the client cuts them too.
MAX_DEADLINE = 24 * 3600.0

_LEN = struct.Struct(">I")


class Expired(Exception):
    """Internal: the deadline passed while sending or waiting."""


def encode(obj: Any) -> bytes:
    """The UTF-8 JSON of ``obj``, compact (no NaN: JSON has none)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def frame(payload: bytes) -> bytes:
    """``payload`` framed: its length as 4 bytes big-endian, then the bytes."""
    return _LEN.pack(len(payload)) + payload


def deadline_json(seconds: float) -> Dict[str, int]:
    """A deadline of ``seconds`` (relative to sending) as ``{"secs": S, "nanos": N}``."""
    seconds = min(max(seconds, 0.0), MAX_DEADLINE)
    secs = int(seconds)
    nanos = min(int(round((seconds - secs) * 1e9)), 999_999_999)
    return {"secs": secs, "nanos": nanos}


def request(request_id: int, variant: str, req: Any, deadline: Optional[float]) -> bytes:
    """The JSON of a request envelope (section 3); no deadline when ``deadline`` is None."""
    context: Dict[str, Any] = {}
    if deadline is not None:
        context["deadline"] = deadline_json(deadline)
    return encode(
        {"Request": {"context": context, "id": request_id, "message": {variant: {"req": req}}}}
    )


def cancel(request_id: int) -> bytes:
    """The JSON of a cancel (section 3)."""
    return encode({"Cancel": {"request_id": request_id}})


class Conn:
    """One connection: sends frames and reads them back, each bound by a monotonic deadline.

    Bytes of a frame read in part before a deadline passed are kept, so a timed-out wait leaves
    the stream in step. A send cut by its deadline may have written part of a frame: the
    connection is closed then.
    """

    def __init__(self, sock: socket.socket, max_reply: int = MAX_REPLY) -> None:
        self.sock: Optional[socket.socket] = sock
        self.max_reply = max_reply
        self._buf = bytearray()

    @property
    def closed(self) -> bool:
        """Whether the connection is closed."""
        return self.sock is None

    def close(self) -> None:
        """Closes the connection (idempotent)."""
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def _live(self) -> socket.socket:
        if self.sock is None:
            raise ConnectionClosed("the connection is closed")
        return self.sock

    def send(self, payload: bytes, deadline: float) -> None:
        """Sends one frame of ``payload`` before the monotonic ``deadline``."""
        sock = self._live()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Expired()
        sock.settimeout(remaining)
        try:
            sock.sendall(frame(payload))
        except socket.timeout:
            self.close()
            raise Expired() from None
        except OSError as e:
            self.close()
            raise ConnectionClosed(f"the daemon closed the connection ({e})") from None

    def send_nowait(self, payload: bytes) -> None:
        """Sends one small frame if it can be written at once; otherwise closes (best effort,
        for a cancel)."""
        if self.sock is None:
            return
        try:
            self.sock.settimeout(0.05)
            self.sock.sendall(frame(payload))
        except OSError:
            self.close()

    def recv(self, deadline: float) -> Dict[str, Any]:
        """Reads one frame before the monotonic ``deadline`` and returns its JSON object."""
        sock = self._live()
        while True:
            if len(self._buf) >= 4:
                (n,) = _LEN.unpack_from(self._buf)
                if n > self.max_reply:
                    self.close()
                    raise ProtocolError(
                        f"the daemon announced a reply of {n} bytes, over the limit of "
                        f"{self.max_reply}"
                    )
                if len(self._buf) >= 4 + n:
                    payload = bytes(self._buf[4 : 4 + n])
                    del self._buf[: 4 + n]
                    return self._decode(payload)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Expired()
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                raise Expired() from None
            except OSError as e:
                self.close()
                raise ConnectionClosed(
                    f"the connection closed without a reply ({e})"
                ) from None
            if not chunk:
                part = f" in the middle of a frame ({len(self._buf)} bytes)" if self._buf else ""
                self.close()
                raise ConnectionClosed(f"the connection closed without a reply{part}")
            self._buf += chunk

    def _decode(self, payload: bytes) -> Dict[str, Any]:
        try:
            obj = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            self.close()
            raise ProtocolError(f"a reply frame is not UTF-8 JSON: {e}") from None
        if not isinstance(obj, dict):
            self.close()
            raise ProtocolError(f"a reply frame is not a JSON object: {payload[:200]!r}")
        return obj
