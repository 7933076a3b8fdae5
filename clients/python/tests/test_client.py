"""Tests of ctl_client, standard library only (unittest).

Two kinds:

- against fake servers (a Unix socket and a thread in this process) that misbehave on purpose:
  they always run;
- against a real daemon, the demo, whose socket path is in ``CTL_TEST_SOCKET`` (and its name
  in ``CTL_TEST_NAME``, default ``demo``; the ``ctl`` binary in ``CTL_TEST_CTL``, optional):
  skipped when it is not set.

Run: ``PYTHONPATH=clients/python/src python3 -m unittest discover -s clients/python/tests -v``
"""

from __future__ import annotations

import datetime
import errno
import json
import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import types
import unittest
from typing import Any, Callable, Dict, List, Optional

import ctl_client
from ctl_client import (
    BadArguments,
    Busy,
    Client,
    ConnectBusy,
    ConnectError,
    ConnectionClosed,
    ConnectionRefused,
    CtlError,
    Denied,
    Failed,
    ProtocolError,
    Rejected,
    ShuttingDown,
    SocketAccessDenied,
    SocketMissing,
    Timeout,
    TooLarge,
    Unknown,
    Unrecognized,
    Unsupported,
    UntrustedSocket,
    WouldBlock,
    WrongDaemon,
    WrongProtocol,
    decode_value,
)

SOCKET = os.environ.get("CTL_TEST_SOCKET")
NAME = os.environ.get("CTL_TEST_NAME", "demo")
CTL = os.environ.get("CTL_TEST_CTL")
#: Set by the integration test when the daemon's socket is open to other users (mode 666 in a
#: directory others may enter), so that another uid reaches the daemon's policy.
OPEN_TO_OTHERS = os.environ.get("CTL_TEST_OPEN_TO_OTHERS") == "1"
#: How much longer than its deadline a call may take to raise Timeout (a loaded machine).
SLACK = 3.0
#: The uid that tests which play another user switch to.
NOBODY = 65534

BUILTINS = [
    "hello",
    "status",
    "reload",
    "rotate",
    "drain",
    "log-level",
    "resume",
    "describe",
    "check",
    "counters",
    "ping",
]

# --- fake servers --------------------------------------------------------------------------------


def hello_reply(**over: Any) -> Dict[str, Any]:
    """A good ``hello`` reply of a fake daemon called ``fake``."""
    reply: Dict[str, Any] = {
        "protocol": 1,
        "name": "fake",
        "version": "9.9.9",
        "pid": 1234,
        "operations": BUILTINS + ["set-message"],
    }
    reply.update(over)
    return reply


class FakeConn:
    """The server side of one connection to a :class:`FakeServer`."""

    def __init__(self, sock: socket.socket, server: "FakeServer") -> None:
        self.sock = sock
        self.server = server
        sock.settimeout(20)

    def recv(self) -> Optional[Dict[str, Any]]:
        """One frame's JSON, or None at end of stream. Records it in ``server.frames``."""
        head = self._exact(4)
        if head is None:
            return None
        (n,) = struct.unpack(">I", head)
        body = self._exact(n)
        if body is None:
            return None
        obj = json.loads(body)
        self.server.frames.append(obj)
        return obj

    def _exact(self, n: int) -> Optional[bytes]:
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except (ConnectionResetError, socket.timeout):
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_raw(struct.pack(">I", len(data)) + data)

    def reply(self, req: Dict[str, Any], message: Any) -> None:
        """Answers ``req`` with ``message``."""
        self.send({"request_id": req["Request"]["id"], "message": message})

    def ok(self, req: Dict[str, Any], result: Any, variant: Optional[str] = None) -> None:
        """Answers ``req`` with ``{"Ok": {Variant: result}}`` (the request's variant)."""
        if variant is None:
            (variant,) = req["Request"]["message"].keys()
        self.reply(req, {"Ok": {variant: result}})

    def hello(self, **over: Any) -> Dict[str, Any]:
        """Reads the hello request and answers it."""
        req = self.recv()
        assert req is not None and "Hello" in req["Request"]["message"], req
        self.ok(req, hello_reply(**over))
        return req

    def rest(self) -> List[Dict[str, Any]]:
        """Reads (and records) frames until the client closes."""
        out = []
        while True:
            f = self.recv()
            if f is None:
                return out
            out.append(f)


class FakeServer:
    """A Unix socket in a private directory whose one connection ``handler(FakeConn)`` serves on
    a thread. ``frames`` records every frame received; ``join()`` waits for the handler."""

    def __init__(
        self,
        handler: Callable[[FakeConn], None],
        *,
        path: Optional[str] = None,
    ) -> None:
        self.dir = tempfile.mkdtemp(prefix="ctl-client-test-")
        self.path = path or os.path.join(self.dir, "fake.sock")
        self.frames: List[Dict[str, Any]] = []
        self.error: Optional[BaseException] = None
        self.accepted = False
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(8)
        self.listener.settimeout(20)
        self.handler = handler
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except (socket.timeout, OSError):
            return
        self.accepted = True
        try:
            self.handler(FakeConn(conn, self))
        except BaseException as e:  # reported by join()
            self.error = e
        finally:
            conn.close()

    def join(self) -> None:
        self.thread.join(30)
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.listener.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class FakeTestCase(unittest.TestCase):
    """Starts fake servers and cleans them up."""

    def serve(self, handler: Callable[[FakeConn], None], **kw: Any) -> FakeServer:
        server = FakeServer(handler, **kw)
        self.addCleanup(server.close)
        return server

    def assertWithin(self, start: float, low: float, high: float) -> None:
        took = time.monotonic() - start
        self.assertGreaterEqual(took, low - 0.05, f"returned after {took:.3f} s")
        self.assertLess(took, high, f"took {took:.3f} s")


def variants(frames: List[Dict[str, Any]]) -> List[str]:
    """The operation of each request frame (``Cancel`` for a cancel)."""
    out = []
    for f in frames:
        if "Cancel" in f:
            out.append("Cancel")
            continue
        msg = f["Request"]["message"]
        (v,) = msg.keys()
        out.append(msg["Call"]["req"]["command"] if v == "Call" else v)
    return out


# --- tests with fake servers ---------------------------------------------------------------------


class HelloChecks(FakeTestCase):
    """``hello`` first, and what the client checks in its reply."""

    def test_hello_is_first_and_well_formed(self) -> None:
        def handler(c: FakeConn) -> None:
            c.hello()
            c.rest()

        server = self.serve(handler)
        with Client.connect(server.path, client_name="tests 1.0", timeout=7) as client:
            self.assertEqual(client.hello.name, "fake")
            self.assertEqual(client.hello.version, "9.9.9")
            self.assertEqual(client.hello.pid, 1234)
            self.assertTrue(client.supports("set-message"))
        server.join()
        (hello,) = server.frames
        req = hello["Request"]
        self.assertEqual(req["message"], {"Hello": {"req": {"protocol": 1, "client": "tests 1.0"}}})
        self.assertIsInstance(req["id"], int)
        deadline = req["context"]["deadline"]
        self.assertLessEqual(deadline["secs"] + deadline["nanos"] / 1e9, 7.0)
        self.assertGreater(deadline["secs"] + deadline["nanos"] / 1e9, 5.0)

    def test_wrong_protocol_stops_there(self) -> None:
        def handler(c: FakeConn) -> None:
            c.hello(protocol=2)
            c.rest()

        server = self.serve(handler)
        with self.assertRaises(WrongProtocol) as cm:
            Client.connect(server.path, timeout=5)
        self.assertEqual(cm.exception.protocol, 2)
        self.assertIsInstance(cm.exception, ProtocolError)
        server.join()
        self.assertEqual(variants(server.frames), ["Hello"])

    def test_wrong_daemon_and_nothing_else_sent(self) -> None:
        def handler(c: FakeConn) -> None:
            c.hello(name="impostor")
            c.rest()

        server = self.serve(handler)
        with self.assertRaises(WrongDaemon) as cm:
            Client.connect(server.path, expect_name="demo", timeout=5)
        self.assertEqual((cm.exception.expected, cm.exception.actual), ("demo", "impostor"))
        self.assertIn("impostor", str(cm.exception))
        server.join()  # returns once the client closed
        self.assertEqual(variants(server.frames), ["Hello"])

    def test_daemon_that_cannot_answer_hello_properly(self) -> None:
        # protocol.md section 5: the fallback hello lists no operations, so nothing is sent.
        def handler(c: FakeConn) -> None:
            c.hello(name="", version="", pid=0, operations=[])
            c.rest()

        server = self.serve(handler)
        with Client.connect(server.path, timeout=5) as client:
            with self.assertRaises(Unsupported) as cm:
                client.status()
            self.assertTrue(cm.exception.local)
            self.assertEqual(cm.exception.supported, [])
        server.join()
        self.assertEqual(variants(server.frames), ["Hello"])

    def test_hello_reply_with_unknown_fields_and_missing_ones(self) -> None:
        def handler(c: FakeConn) -> None:
            req = c.recv()
            assert req is not None
            c.ok(req, {"protocol": 1, "name": "fake", "operations": ["status"], "new": [1]})
            c.rest()

        server = self.serve(handler)
        with Client.connect(server.path, timeout=5) as client:
            self.assertEqual((client.hello.version, client.hello.pid), ("", 0))
            self.assertEqual(client.hello.raw["new"], [1])


class NotSent(FakeTestCase):
    """What the client refuses locally is never sent."""

    def test_operation_not_in_hello_is_not_sent(self) -> None:
        def handler(c: FakeConn) -> None:
            c.hello(operations=["hello", "status"])
            req = c.recv()
            assert req is not None
            c.ok(req, {"Ok": {"name": "fake"}})
            c.rest()

        server = self.serve(handler)
        with Client.connect(server.path, timeout=5) as client:
            for call in (
                client.reload,
                client.ping,
                lambda: client.call("teleport"),
                lambda: client.call("drain"),
                lambda: client.log_level("debug"),
            ):
                with self.assertRaises(Unsupported) as cm:
                    call()
                self.assertTrue(cm.exception.local)
                self.assertEqual(cm.exception.supported, ["hello", "status"])
            self.assertEqual(client.status().name, "fake")
        server.join()
        self.assertEqual(variants(server.frames), ["Hello", "Status"])

    def test_request_over_64_kib_is_not_sent(self) -> None:
        def handler(c: FakeConn) -> None:
            c.hello()
            req = c.recv()
            assert req is not None
            c.ok(req, {"Ok": {"reply": {}}})
            c.rest()

        server = self.serve(handler)
        with Client.connect(server.path, timeout=5) as client:
            with self.assertRaises(TooLarge) as cm:
                client.call("set-message", text="x" * 70000)
            self.assertEqual(cm.exception.limit, 65536)
            self.assertGreater(cm.exception.size, 65536)
            client.ping()  # the connection is still good
        server.join()
        self.assertEqual(variants(server.frames), ["Hello", "ping"])

    def test_request_up_to_64_kib_is_sent(self) -> None:
        sizes: List[int] = []

        def handler(c: FakeConn) -> None:
            c.hello()
            head = c._exact(4)
            assert head is not None
            (n,) = struct.unpack(">I", head)
            sizes.append(n)
            body = c._exact(n)
            assert body is not None
            c.send({"request_id": json.loads(body)["Request"]["id"],
                    "message": {"Ok": {"Call": {"Ok": {"reply": {}}}}}})
            c.rest()

        server = self.serve(handler)
        with Client.connect(server.path, timeout=5) as client:
            # The text whose request is 65536 bytes of JSON, give or take the deadline's digits
            # (which depend on when it is sent): the largest that is not TooLarge is sent.
            base = len(ctl_client._wire.request(2, "Call", {"command": "set-message",
                                                             "args": {"text": ""}}, 5.0))
            refused = 0
            for n in range(65536 - base + 1, 65536 - base - 30, -1):
                try:
                    client.call("set-message", text="y" * n)
                    break
                except TooLarge:
                    refused += 1
            self.assertGreater(refused, 0)
        server.join()
        self.assertEqual(len(sizes), 1)
        self.assertTrue(65536 - 20 <= sizes[0] <= 65536, sizes)


class Deadlines(FakeTestCase):
    """Deadlines are sent and enforced locally."""

    def test_stalled_server_times_out_within_the_bound_and_is_cancelled(self) -> None:
        def handler(c: FakeConn) -> None:
            c.hello()
            c.rest()  # never answers again

        server = self.serve(handler)
        with Client.connect(server.path, timeout=5) as client:
            start = time.monotonic()
            with self.assertRaises(Timeout) as cm:
                client.status(timeout=0.3)
            self.assertWithin(start, 0.3, 0.3 + SLACK)
            self.assertEqual((cm.exception.operation, cm.exception.timeout), ("status", 0.3))
            start = time.monotonic()
            with self.assertRaises(Timeout) as cm:
                client.drain(timeout=0.2)
            self.assertWithin(start, 0.2, 0.2 + SLACK)
            self.assertIn("ask status", str(cm.exception))
        server.join()
        frames = server.frames
        self.assertEqual(variants(frames), ["Hello", "Status", "Cancel", "Drain", "Cancel"])
        status = frames[1]["Request"]
        d = status["context"]["deadline"]
        self.assertEqual(d["secs"], 0)
        self.assertTrue(0 < d["nanos"] <= 300_000_000, d)
        self.assertEqual(frames[2], {"Cancel": {"request_id": status["id"]}})
        self.assertEqual(frames[4], {"Cancel": {"request_id": frames[3]["Request"]["id"]}})

    def test_server_that_never_answers_hello(self) -> None:
        server = self.serve(lambda c: (c.recv(), c.rest()) and None)
        start = time.monotonic()
        with self.assertRaises(Timeout) as cm:
            Client.connect(server.path, timeout=0.3)
        self.assertWithin(start, 0.3, 0.3 + SLACK)
        self.assertEqual(cm.exception.operation, "hello")
        server.join()

    def test_deadline_is_cut_to_24_hours(self) -> None:
        def handler(c: FakeConn) -> None:
            c.hello()
            req = c.recv()
            assert req is not None
            c.ok(req, {"Ok": {"reply": {}}})
            c.rest()

        server = self.serve(handler)
        with Client.connect(server.path, timeout=5) as client:
            client.ping(timeout=7 * 24 * 3600)
        server.join()
        self.assertEqual(server.frames[1]["Request"]["context"]["deadline"],
                         {"secs": 86400, "nanos": 0})

    def test_late_reply_is_dropped_and_replies_matched_by_id(self) -> None:
        def handler(c: FakeConn) -> None:
            c.hello()
            late = c.recv()  # status: answered only after the client gave up
            cancel = c.recv()
            assert late is not None and cancel is not None and "Cancel" in cancel
            ping = c.recv()
            assert ping is not None
            c.ok(late, {"Ok": {"name": "late"}})
            c.ok(ping, {"Ok": {"reply": {"pong": True}}})
            reload_ = c.recv()
            assert reload_ is not None
            c.ok(reload_, {"Ok": {"generation": 2, "summary": "ok", "joined": False,
                                   "unchanged": False}})
            c.rest()

        server = self.serve(handler)
        with Client.connect(server.path, timeout=5) as client:
            with self.assertRaises(Timeout):
                client.status(timeout=0.2)
            self.assertEqual(client.call("ping"), {"pong": True})
            self.assertEqual(client.reload().generation, 2)
        server.join()

    def test_full_queue_is_retried_until_the_deadline(self) -> None:
        # protocol.md section 7: EAGAIN, the queue of connections is full; retry within the
        # deadline. A listener with backlog 0 and one connection nobody accepts is full.
        d = tempfile.mkdtemp(prefix="ctl-client-test-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "full.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(listener.close)
        listener.bind(path)
        listener.listen(0)
        pending = []
        for _ in range(4):  # fill it, whatever the kernel's idea of backlog 0
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            self.addCleanup(s.close)
            if s.connect_ex(path) != 0:
                break
            pending.append(s)
        start = time.monotonic()
        with self.assertRaises(ConnectBusy) as cm:
            Client.connect(path, timeout=0.3)
        self.assertWithin(start, 0.3, 0.3 + SLACK)
        self.assertEqual(cm.exception.errno, errno.EAGAIN)

        # Once the daemon accepts again, the retry gets through.
        def accept_later() -> None:
            time.sleep(0.3)
            for s in pending:
                s.close()  # their connections, once accepted, read as closed
            while True:
                conn, _ = listener.accept()
                fc = FakeConn(conn, types.SimpleNamespace(frames=[]))  # type: ignore[arg-type]
                req = fc.recv()
                if req is None:
                    conn.close()
                    continue
                fc.ok(req, hello_reply())
                fc.rest()
                conn.close()
                return

        t = threading.Thread(target=accept_later, daemon=True)
        t.start()
        start = time.monotonic()
        with Client.connect(path, timeout=20) as client:
            self.assertEqual(client.hello.name, "fake")
        self.assertGreater(time.monotonic() - start, 0.2)
        t.join(10)


class BrokenServers(FakeTestCase):
    """A server that breaks the protocol gives ProtocolError; nothing of its reply is used."""

    def _after_hello(self, answer: Callable[[FakeConn, Dict[str, Any]], None]) -> FakeServer:
        def handler(c: FakeConn) -> None:
            c.hello()
            req = c.recv()
            assert req is not None
            answer(c, req)
            c.rest()

        return self.serve(handler)

    def test_reply_of_another_variant(self) -> None:
        server = self._after_hello(
            lambda c, req: c.ok(req, {"Ok": {"generation": 1, "summary": "", "joined": False,
                                              "unchanged": True}}, variant="Reload")
        )
        client = Client.connect(server.path, timeout=5)
        with self.assertRaises(ProtocolError) as cm:
            client.status()
        self.assertIn("Reload", str(cm.exception))
        self.assertTrue(client.closed)
        with self.assertRaises(ProtocolError):
            client.status()  # and the connection is not used again
        server.join()
        self.assertEqual(variants(server.frames), ["Hello", "Status"])

    def test_call_answered_with_another_variant(self) -> None:
        server = self._after_hello(lambda c, req: c.ok(req, {"Ok": {}}, variant="Status"))
        client = Client.connect(server.path, timeout=5)
        with self.assertRaises(ProtocolError):
            client.call("set-message", text="x")
        server.join()

    def test_server_closes_the_connection(self) -> None:
        def handler(c: FakeConn) -> None:
            c.hello()
            c.recv()  # and closes without a reply

        server = self.serve(handler)
        client = Client.connect(server.path, timeout=5)
        start = time.monotonic()
        with self.assertRaises(ConnectionClosed) as cm:
            client.status()
        self.assertIsInstance(cm.exception, ProtocolError)
        self.assertWithin(start, 0, SLACK)
        server.join()

    def test_server_closes_before_hello(self) -> None:
        server = self.serve(lambda c: None)
        with self.assertRaises(ProtocolError):
            Client.connect(server.path, timeout=5)

    def test_server_closes_in_the_middle_of_a_frame(self) -> None:
        def handler(c: FakeConn) -> None:
            c.hello()
            c.recv()
            c.send_raw(b"\x00\x00\x01\x00{\"requ")  # and closes

        server = self.serve(handler)
        client = Client.connect(server.path, timeout=5)
        with self.assertRaises(ConnectionClosed) as cm:
            client.status()
        self.assertIn("middle of a frame", str(cm.exception))
        server.join()

    def test_not_json(self) -> None:
        server = self._after_hello(lambda c, req: c.send_raw(b"\x00\x00\x00\x05hello"))
        client = Client.connect(server.path, timeout=5)
        with self.assertRaises(ProtocolError):
            client.status()
        self.assertTrue(client.closed)
        server.join()

    def test_reply_over_1_mib(self) -> None:
        server = self._after_hello(lambda c, req: c.send_raw(struct.pack(">I", 1048577)))
        client = Client.connect(server.path, timeout=5)
        with self.assertRaises(ProtocolError) as cm:
            client.status()
        self.assertIn("1048577", str(cm.exception))
        server.join()

    def test_reply_of_exactly_1_mib_is_accepted(self) -> None:
        def answer(c: FakeConn, req: Dict[str, Any]) -> None:
            head = {"request_id": req["Request"]["id"],
                    "message": {"Ok": {"Call": {"Ok": {"reply": {"s": ""}}}}}}
            base = len(json.dumps(head, separators=(",", ":")).encode())
            head["message"]["Ok"]["Call"]["Ok"]["reply"]["s"] = "z" * (1048576 - base)
            data = json.dumps(head, separators=(",", ":")).encode()
            assert len(data) == 1048576
            c.send_raw(struct.pack(">I", len(data)) + data)

        server = self._after_hello(answer)
        with Client.connect(server.path, timeout=5) as client:
            self.assertGreater(len(client.call("set-message", text="x")["s"]), 1048000)
        server.join()

    def test_reply_to_a_request_never_made(self) -> None:
        server = self._after_hello(
            lambda c, req: c.send({"request_id": 999, "message": {"Ok": {"Status": {"Ok": {}}}}})
        )
        client = Client.connect(server.path, timeout=5)
        with self.assertRaises(ProtocolError):
            client.status()
        server.join()

    def test_result_neither_ok_nor_err(self) -> None:
        server = self._after_hello(lambda c, req: c.ok(req, {"Maybe": {}}))
        client = Client.connect(server.path, timeout=5)
        with self.assertRaises(ProtocolError):
            client.status()
        server.join()


class ErrorKinds(FakeTestCase):
    """Each error kind of protocol.md section 7 becomes its exception, fields as attributes."""

    def _answer_with(self, *errors: Dict[str, Any]) -> List[CtlError]:
        def handler(c: FakeConn) -> None:
            c.hello()
            for e in errors:
                req = c.recv()
                assert req is not None
                c.ok(req, {"Err": e})
            c.rest()

        server = self.serve(handler)
        raised: List[CtlError] = []
        with Client.connect(server.path, timeout=5) as client:
            for _ in errors:
                try:
                    client.call("set-message", text="x")
                except CtlError as e:
                    raised.append(e)
        server.join()
        self.assertEqual(len(raised), len(errors))
        return raised

    def test_each_kind(self) -> None:
        unsupported, failed, denied, denied_no_need, busy, bad, shutting, future = (
            self._answer_with(
                {"kind": "unsupported", "operation": "set-message", "supported": ["ping"]},
                {"kind": "failed", "reason": "it broke", "causes": ["outer", "inner"]},
                {"kind": "denied", "operation": "set-message", "uid": 1000, "needed": "operate"},
                {"kind": "denied", "operation": "set-message", "uid": 1000},
                {"kind": "busy", "reason": "reloading"},
                {"kind": "bad_arguments", "command": "set-message", "field": "text",
                 "expected": "a string", "message": "5 does not fit"},
                {"kind": "shutting_down"},
                {"kind": "on_fire", "where": "everywhere"},
            )
        )
        self.assertIsInstance(unsupported, Unsupported)
        assert isinstance(unsupported, Unsupported)
        self.assertEqual((unsupported.supported, unsupported.local), (["ping"], False))
        assert isinstance(failed, Failed)
        self.assertEqual((failed.reason, failed.causes), ("it broke", ["outer", "inner"]))
        self.assertIn("it broke: outer: inner", str(failed))
        assert isinstance(denied, Denied)
        self.assertEqual((denied.uid, denied.needed, denied.denied_operation),
                         (1000, "operate", "set-message"))
        assert isinstance(denied_no_need, Denied)
        self.assertIsNone(denied_no_need.needed)
        assert isinstance(busy, Busy)
        self.assertEqual(busy.reason, "reloading")
        assert isinstance(bad, BadArguments)
        self.assertEqual((bad.command, bad.field, bad.expected, bad.message),
                         ("set-message", "text", "a string", "5 does not fit"))
        self.assertIsInstance(shutting, ShuttingDown)
        self.assertIsInstance(future, Unrecognized)
        self.assertIsInstance(future, Failed)  # treated as a failure
        assert isinstance(future, Unrecognized)
        self.assertEqual(future.fields, {"kind": "on_fire", "where": "everywhere"})
        self.assertIn("on_fire", str(future))
        self.assertIn("everywhere", str(future))
        for e in (unsupported, failed, denied, busy, bad, shutting, future):
            self.assertEqual(e.operation, "set-message")  # type: ignore[attr-defined]

    def test_refused_before_running(self) -> None:
        def handler(c: FakeConn) -> None:
            c.hello()
            req = c.recv()
            assert req is not None
            c.reply(req, {"Err": {"kind": 10, "detail": "too many in flight"}})
            again = c.recv()  # sent again after a pause
            assert again is not None
            c.ok(again, {"Ok": {"reply": {}}})
            req = c.recv()
            assert req is not None
            c.reply(req, {"Err": {"kind": 3, "detail": "something else"}})
            while True:  # would block for ever
                req = c.recv()
                if req is None:
                    return
                if "Request" in req:
                    c.reply(req, {"Err": {"kind": 10, "detail": "still"}})

        server = self.serve(handler)
        with Client.connect(server.path, timeout=5) as client:
            client.ping()
            with self.assertRaises(Rejected) as cm:
                client.ping()
            self.assertEqual((cm.exception.kind, cm.exception.detail), (3, "something else"))
            start = time.monotonic()
            with self.assertRaises(WouldBlock):
                client.ping(timeout=0.3)
            self.assertWithin(start, 0.3, 0.3 + SLACK)
        server.join()


class Values(unittest.TestCase):
    """``status``'s typed values as native Python values."""

    def test_decode(self) -> None:
        self.assertEqual(decode_value("integer", -3), -3)
        self.assertEqual(decode_value("unsigned", 3), 3)
        self.assertEqual(decode_value("float", 1), 1.0)
        self.assertIsInstance(decode_value("float", 1), float)
        self.assertTrue(math.isnan(decode_value("float", None)))
        self.assertIs(decode_value("bool", True), True)
        self.assertEqual(decode_value("string", "s"), "s")
        self.assertEqual(decode_value("duration", {"secs": 90, "nanos": 500_000_000}),
                         datetime.timedelta(seconds=90, milliseconds=500))
        self.assertEqual(decode_value("colour", "red"), Unknown("colour", "red"))
        self.assertEqual(decode_value("unsigned", "3"), Unknown("unsigned", "3"))

    def test_status_from_fake(self) -> None:
        status = {"name": "fake", "values": [
            {"name": "a", "type": "duration", "value": {"secs": 1, "nanos": 0}},
            {"name": "b", "type": "histogram", "value": [1, 2]},
        ], "later_field": 1}
        s = ctl_client.Status.from_json(status)
        self.assertEqual(s.values_dict(), {"a": datetime.timedelta(seconds=1),
                                           "b": Unknown("histogram", [1, 2])})
        self.assertEqual((s.pid, s.draining, s.log_files, s.last_reload), (0, False, [], None))


class ConnectErrors(unittest.TestCase):
    """protocol.md section 7, "Connecting fails"."""

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="ctl-client-test-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def test_enoent(self) -> None:
        with self.assertRaises(SocketMissing) as cm:
            Client.connect(os.path.join(self.dir, "nothing.sock"), timeout=2)
        self.assertEqual(cm.exception.errno, errno.ENOENT)
        self.assertIsInstance(cm.exception, ConnectError)

    def test_econnrefused(self) -> None:
        path = os.path.join(self.dir, "stale.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.close()  # what a crashed daemon leaves
        with self.assertRaises(ConnectionRefused) as cm:
            Client.connect(path, timeout=2)
        self.assertEqual(cm.exception.errno, errno.ECONNREFUSED)
        with self.assertRaises(ConnectionRefused):  # not a socket at all
            open(os.path.join(self.dir, "file"), "w").close()
            Client.connect(os.path.join(self.dir, "file"), timeout=2)

    def test_eacces(self) -> None:
        path = os.path.join(self.dir, "closed.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(listener.close)
        listener.bind(path)
        listener.listen(1)
        os.chmod(path, 0o600)
        if os.geteuid() != 0:
            os.chmod(path, 0o000)
            with self.assertRaises(SocketAccessDenied) as cm:
                Client.connect(path, timeout=2)
            self.assertEqual(cm.exception.errno, errno.EACCES)
            return
        # Root passes every mode: try as another user, in a child.
        os.chmod(self.dir, 0o755)
        self.assertEqual(run_as_nobody(lambda: try_connect(path)), "SocketAccessDenied:13")


def try_connect(path: str) -> str:
    try:
        Client.connect(path, timeout=2).close()
        return "connected"
    except ConnectError as e:
        return f"{type(e).__name__}:{e.errno}"


def run_as_nobody(fn: Callable[[], str]) -> str:
    """Runs ``fn`` in a child process as uid/gid ``NOBODY`` and returns what it returned."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no unittest machinery from here on
        os.close(r)
        out = "child failed"
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            out = fn()
        except BaseException as e:
            out = f"child raised {type(e).__name__}: {e}"
        finally:
            os.write(w, out.encode())
            os._exit(0)
    os.close(w)
    chunks = []
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


class LookupByName(FakeTestCase):
    """A socket found by name (protocol.md section 1), with the trust rule applied."""

    def setUp(self) -> None:
        self.runtime = tempfile.mkdtemp(prefix="ctl-client-xdg-")
        self.addCleanup(shutil.rmtree, self.runtime, True)
        os.chmod(self.runtime, 0o700)
        os.mkdir(os.path.join(self.runtime, "ctl"), 0o700)
        self.name = f"ctl-client-test-{os.getpid()}"
        self.old = os.environ.get("XDG_RUNTIME_DIR")
        os.environ["XDG_RUNTIME_DIR"] = self.runtime
        self.addCleanup(self._restore)
        for path, _ in ctl_client.socket_candidates(self.name)[:2]:
            if os.path.exists(path):
                self.skipTest(f"{path} exists")

    def _restore(self) -> None:
        if self.old is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = self.old

    def _path(self) -> str:
        return os.path.join(self.runtime, "ctl", f"{self.name}.sock")

    def test_found_and_trusted(self) -> None:
        def handler(c: FakeConn) -> None:
            c.hello(name=self.name)
            c.rest()

        server = self.serve(handler, path=self._path())
        with Client.connect_name(self.name, timeout=5) as client:
            self.assertEqual(client.path, self._path())
        server.join()

    def test_name_mismatch(self) -> None:
        def handler(c: FakeConn) -> None:
            c.hello(name="someone-else")
            c.rest()

        server = self.serve(handler, path=self._path())
        with self.assertRaises(WrongDaemon):
            Client.connect_name(self.name, timeout=5)
        server.join()
        self.assertEqual(variants(server.frames), ["Hello"])

    def test_directory_writable_by_others_is_not_trusted(self) -> None:
        server = self.serve(lambda c: c.rest() and None, path=self._path())
        os.chmod(os.path.join(self.runtime, "ctl"), 0o777)
        with self.assertRaises(UntrustedSocket) as cm:
            Client.connect_name(self.name, timeout=5)
        self.assertIn("writable", str(cm.exception))
        time.sleep(0.1)
        self.assertFalse(server.accepted)  # not even connected

    def test_nothing_there(self) -> None:
        with self.assertRaises(SocketMissing):
            Client.connect_name(self.name, timeout=5)


class Packaging(unittest.TestCase):
    """The package is ready for PyPI: metadata, no runtime dependencies."""

    ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

    def test_pyproject(self) -> None:
        try:
            import tomllib  # type: ignore[import-not-found]
        except ImportError:
            self.skipTest("tomllib needs Python 3.11")
        with open(os.path.join(self.ROOT, "pyproject.toml"), "rb") as f:
            meta = tomllib.load(f)
        project = meta["project"]
        self.assertEqual((project["name"], project["version"]), ("ctl-client", "0.1.0"))
        self.assertEqual(project["version"], ctl_client.__version__)
        self.assertEqual(project.get("dependencies", []), [])
        self.assertEqual(project["requires-python"], ">=3.9")
        self.assertIn("build-backend", meta["build-system"])

    def test_imports_only_the_standard_library(self) -> None:
        src = os.path.dirname(ctl_client.__file__)
        stdlib = set(getattr(sys, "stdlib_module_names", ()))
        if not stdlib:
            self.skipTest("sys.stdlib_module_names needs Python 3.10")
        import ast

        for name in os.listdir(src):
            if not name.endswith(".py"):
                continue
            with open(os.path.join(src, name)) as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    mods = [node.module]
                else:
                    continue
                for m in mods:
                    self.assertIn(m.split(".")[0], stdlib | {"__future__"}, f"{name}: {m}")


# --- tests against the real daemon ---------------------------------------------------------------


def counter_values(client: Client, prefix: str = "ctl.") -> Dict[str, Any]:
    return {c.name: c.value for c in client.counters(prefix)}


@unittest.skipUnless(SOCKET, "CTL_TEST_SOCKET is not set: no daemon to test against")
class LiveDaemon(unittest.TestCase):
    """The client against the real demo daemon."""

    def setUp(self) -> None:
        assert SOCKET is not None
        self.client = Client.connect(SOCKET, expect_name=NAME, timeout=30)
        self.addCleanup(self.client.close)

    def test_hello(self) -> None:
        h = self.client.hello
        self.assertEqual(h.protocol, 1)
        self.assertEqual(h.name, NAME)
        self.assertTrue(h.version)
        self.assertGreater(h.pid, 0)
        for op in BUILTINS + ["set-message", "stats"]:
            self.assertIn(op, h.operations)
        if CTL:
            out = subprocess.run([CTL, "--json", "hello", SOCKET], capture_output=True,
                                 text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn(str(h.pid), out.stdout)

    def test_wrong_name_sends_nothing_else(self) -> None:
        assert SOCKET is not None
        before = counter_values(self.client)
        with self.assertRaises(WrongDaemon) as cm:
            Client.connect(SOCKET, expect_name="not-" + NAME, timeout=30)
        self.assertEqual(cm.exception.actual, NAME)
        after = counter_values(self.client)
        changed = {k for k in after if after[k] != before.get(k) and k.startswith("ctl.calls.")}
        # Only the second connection's hello and our own counters calls.
        self.assertEqual(changed - {"ctl.calls.hello.ok", "ctl.calls.counters.ok"}, set())
        self.assertEqual(after["ctl.calls.hello.ok"], before["ctl.calls.hello.ok"] + 1)

    def test_status_values_are_native(self) -> None:
        s = self.client.status()
        self.assertEqual(s.name, NAME)
        self.assertEqual(s.pid, self.client.hello.pid)
        self.assertGreaterEqual(s.config_generation, 1)
        self.assertGreater(len(s.log_files), 0)
        v = s.values_dict()
        self.assertIsInstance(v["lines_written"], int)
        self.assertIsInstance(v["interval"], datetime.timedelta)
        self.assertGreater(v["interval"], datetime.timedelta(0))
        self.assertIsInstance(v["lines_per_second"], float)
        self.assertIsInstance(v["message"], str)
        self.assertEqual([x.name for x in s.values][:1], ["lines_written"])
        self.assertEqual(set(s.fields), set(v))  # the same fields, as text

    def test_reload_and_check(self) -> None:
        r = self.client.reload()
        self.assertGreaterEqual(r.generation, 1)
        self.assertTrue(r.summary)
        c = self.client.check()
        self.assertEqual(c.generation, r.generation)
        self.assertTrue(c.unchanged)
        last = self.client.status().last_reload
        self.assertIsNotNone(last)

    def test_rotate(self) -> None:
        r = self.client.rotate()
        self.assertGreater(len(r.files), 0)
        f = r.files[0]
        self.assertIsNone(f.error)
        self.assertIsNotNone(f.new)
        self.assertIn(f.path, self.client.status().log_files)

    def test_drain_and_resume(self) -> None:
        try:
            d = self.client.drain()
            self.assertTrue(d.completed)
            self.assertTrue(self.client.status().draining)
        finally:
            r = self.client.resume()
        self.assertTrue(r.was_draining)
        self.assertFalse(self.client.status().draining)
        self.assertFalse(self.client.resume().was_draining)

    def test_log_level(self) -> None:
        now = self.client.log_level()
        self.assertTrue(now.filter)
        self.assertIsNone(now.previous)
        try:
            set_ = self.client.log_level("debug")
            self.assertEqual((set_.filter, set_.previous), ("debug", now.filter))
        finally:
            self.client.log_level(now.filter)
        with self.assertRaises(Failed) as cm:
            self.client.log_level("bogus[[")
        self.assertTrue(cm.exception.reason)
        self.assertTrue(cm.exception.causes)
        self.assertEqual(self.client.log_level().filter, now.filter)

    def test_describe(self) -> None:
        d = self.client.describe()
        names = [o.name for o in d.operations]
        for op in BUILTINS + ["set-message", "stats"]:
            self.assertIn(op, names)
        sm = d.get("set-message")
        assert sm is not None
        self.assertEqual(sm.kind, "command")
        self.assertIn("text", sm.args["properties"])

    def test_counters(self) -> None:
        all_ = self.client.counters()
        self.assertGreater(len(all_), 0)
        demo = self.client.counters(NAME + ".")
        self.assertGreater(len(demo), 0)
        self.assertTrue(all(c.name.startswith(NAME + ".") for c in demo))
        self.assertLess(len(demo), len(all_))
        self.assertEqual(self.client.counters("no-such-prefix."), [])
        self.assertTrue(all(c.kind and c.help for c in all_))

    def test_ping(self) -> None:
        self.assertIsNone(self.client.ping())
        self.assertEqual(self.client.call("ping"), {})

    def test_call_set_message_and_stats(self) -> None:
        old = self.client.status().value("message")
        try:
            reply = self.client.call("set-message", text="from python")
            # `unchanged` came with the newcomer branch, merged beside this test.
            self.assertEqual(
                reply, {"previous": old, "message": "from python", "unchanged": False}
            )
            self.assertEqual(self.client.status().value("message"), "from python")
            reply = self.client.call("set-message", {"text": "as a dict"})
            self.assertEqual(reply["message"], "as a dict")
        finally:
            self.client.call("set-message", text=old)
        stats = self.client.call("stats")
        self.assertIsInstance(stats, dict)
        # A built-in named in call() goes in its own variant.
        self.assertEqual(self.client.call("status")["name"], NAME)

    def test_bad_arguments(self) -> None:
        with self.assertRaises(BadArguments) as cm:
            self.client.call("set-message", text=5)
        e = cm.exception
        self.assertEqual((e.command, e.field, e.expected), ("set-message", "text", "a string"))
        self.assertTrue(e.message)
        with self.assertRaises(BadArguments) as cm:
            self.client.call("set-message")
        self.assertEqual(cm.exception.field, "text")

    def test_unknown_command_is_not_sent(self) -> None:
        before = counter_values(self.client)["ctl.refused"]
        with self.assertRaises(Unsupported) as cm:
            self.client.call("teleport", to="mars")
        self.assertTrue(cm.exception.local)
        self.assertIn("set-message", cm.exception.supported)
        self.assertEqual(counter_values(self.client)["ctl.refused"], before)
        self.client.ping()  # the connection is fine: nothing undecodable was sent

    def test_too_large_is_not_sent(self) -> None:
        with self.assertRaises(TooLarge):
            self.client.call("set-message", text="x" * 70000)
        self.client.ping()  # had it been sent, the daemon would have closed the connection

    def test_deadline_while_the_daemon_is_stopped(self) -> None:
        # protocol.md section 7: no reply before the deadline when the daemon is stopped.
        pid = self.client.hello.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            start = time.monotonic()
            with self.assertRaises(Timeout):
                self.client.status(timeout=0.5)
            took = time.monotonic() - start
            self.assertGreaterEqual(took, 0.45)
            self.assertLess(took, 0.5 + SLACK)
        finally:
            os.kill(pid, signal.SIGCONT)
        # The status reply may still come after the cancel: it is dropped, and the next reply
        # is matched by its id.
        self.assertEqual(self.client.call("ping"), {})
        self.assertEqual(self.client.status().name, NAME)

    @unittest.skipUnless(OPEN_TO_OTHERS and os.geteuid() == 0,
                         "needs root and a socket open to other users")
    def test_denied(self) -> None:
        assert SOCKET is not None
        path = SOCKET

        def as_nobody() -> str:
            out = []
            with Client.connect(path, expect_name=NAME, timeout=30) as c:
                out.append(c.hello.name)  # hello needs no access
                for call in (c.status, c.reload, lambda: c.log_level("debug")):
                    try:
                        call()
                        out.append("allowed")
                    except Denied as e:
                        out.append(f"{e.denied_operation}:{e.uid}:{e.needed}")
            return json.dumps(out)

        got = run_as_nobody(as_nobody)
        self.assertEqual(
            json.loads(got),
            [NAME, f"status:{NOBODY}:read", f"reload:{NOBODY}:operate",
             f"log-level:{NOBODY}:admin"],
            got,
        )


if __name__ == "__main__":
    unittest.main()
