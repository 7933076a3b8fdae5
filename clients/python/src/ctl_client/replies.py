"""The replies of the built-in operations (docs/protocol.md section 4), as Python objects.

Following protocol.md section 9 (add-only), every reader ignores fields it does not know and
gives a field that is absent its default (False, 0, empty, None). Each object keeps the reply
as received in ``raw``, so fields of a newer daemon stay reachable.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

__all__ = [
    "Unknown",
    "Value",
    "decode_value",
    "Hello",
    "Status",
    "ReloadResult",
    "CheckResult",
    "FileId",
    "RotatedFile",
    "RotateResult",
    "DrainResult",
    "ResumeResult",
    "LogLevelResult",
    "OperationInfo",
    "Describe",
    "Counter",
]


def _dict(v: Any) -> Dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _bool(v: Any) -> bool:
    return v if isinstance(v, bool) else False


def _list(v: Any) -> List[Any]:
    return v if isinstance(v, list) else []


def _opt_str(v: Any) -> Optional[str]:
    return v if isinstance(v, str) else None


@dataclass(frozen=True)
class Unknown:
    """A status value of a type this client does not know (or whose value does not fit its
    type): shown as unknown, not refused (protocol.md section 4)."""

    type: str
    value: Any

    def __str__(self) -> str:
        return f"<unknown {self.type}: {self.value!r}>"


def decode_value(type_: str, value: Any) -> Any:
    """Decodes one status value of type ``type_`` to a native Python value.

    ``integer`` and ``unsigned`` give ``int``, ``float`` a ``float`` (NaN for null: not a
    number), ``bool`` a ``bool``, ``string`` a ``str``, ``duration`` a
    :class:`datetime.timedelta` (whole microseconds: Python has no finer). Anything else gives
    :class:`Unknown`.
    """
    if type_ in ("integer", "unsigned"):
        if isinstance(value, int) and not isinstance(value, bool):
            if type_ == "unsigned" and value < 0:
                return Unknown(type_, value)
            return value
    elif type_ == "float":
        if value is None:
            return math.nan
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif type_ == "bool":
        if isinstance(value, bool):
            return value
    elif type_ == "string":
        if isinstance(value, str):
            return value
    elif type_ == "duration":
        if isinstance(value, dict):
            secs, nanos = value.get("secs", 0), value.get("nanos", 0)
            if all(isinstance(x, int) and not isinstance(x, bool) for x in (secs, nanos)):
                return datetime.timedelta(seconds=secs, microseconds=nanos // 1000)
    return Unknown(type_, value)


@dataclass(frozen=True)
class Value:
    """One of ``status``'s typed ``values``: ``name``, ``type`` as on the wire, ``value``
    decoded (see :func:`decode_value`) and ``raw`` (the value as received)."""

    name: str
    type: str
    value: Any
    raw: Any = None

    @classmethod
    def from_json(cls, j: Any) -> "Value":
        j = _dict(j)
        t = _str(j.get("type"))
        return cls(_str(j.get("name")), t, decode_value(t, j.get("value")), j.get("value"))


@dataclass(frozen=True)
class Hello:
    """``hello``'s reply: ``protocol``, ``name``, ``version``, ``pid``, ``operations``."""

    protocol: int
    name: str
    version: str
    pid: int
    operations: List[str]
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, j: Any) -> "Hello":
        j = _dict(j)
        return cls(
            protocol=j.get("protocol"),  # checked by the client, kept as received
            name=_str(j.get("name")),
            version=_str(j.get("version")),
            pid=_int(j.get("pid")),
            operations=[x for x in _list(j.get("operations")) if isinstance(x, str)],
            raw=j,
        )


@dataclass(frozen=True)
class Status:
    """``status``'s reply. ``values`` are the daemon's own typed fields, in its order, decoded;
    :meth:`value` and :meth:`values_dict` look them up by name. ``fields`` holds the same as
    text. ``last_reload`` and ``last_rotate`` are kept as received (protocol.md does not
    describe their shape)."""

    name: str
    version: str
    pid: int
    uptime_ms: int
    config_generation: int
    last_reload: Any
    last_rotate: Any
    draining: bool
    in_flight: int
    log_files: List[str]
    renamed_log_files: List[Any]
    fields: Dict[str, str]
    values: List[Value]
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, j: Any) -> "Status":
        j = _dict(j)
        return cls(
            name=_str(j.get("name")),
            version=_str(j.get("version")),
            pid=_int(j.get("pid")),
            uptime_ms=_int(j.get("uptime_ms")),
            config_generation=_int(j.get("config_generation")),
            last_reload=j.get("last_reload"),
            last_rotate=j.get("last_rotate"),
            draining=_bool(j.get("draining")),
            in_flight=_int(j.get("in_flight")),
            log_files=[x for x in _list(j.get("log_files")) if isinstance(x, str)],
            renamed_log_files=_list(j.get("renamed_log_files")),
            fields={str(k): str(v) for k, v in _dict(j.get("fields")).items()},
            values=[Value.from_json(v) for v in _list(j.get("values"))],
            raw=j,
        )

    def values_dict(self) -> Dict[str, Any]:
        """The typed values as ``{name: native value}``, in the daemon's order."""
        return {v.name: v.value for v in self.values}

    def value(self, name: str, default: Any = None) -> Any:
        """The native value of the typed field ``name``, or ``default``."""
        for v in self.values:
            if v.name == name:
                return v.value
        return default


@dataclass(frozen=True)
class ReloadResult:
    """``reload``'s reply: ``generation``, ``summary``, ``joined``, ``unchanged``."""

    generation: int
    summary: str
    joined: bool
    unchanged: bool
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, j: Any) -> "ReloadResult":
        j = _dict(j)
        return cls(
            _int(j.get("generation")),
            _str(j.get("summary")),
            _bool(j.get("joined")),
            _bool(j.get("unchanged")),
            j,
        )


@dataclass(frozen=True)
class CheckResult:
    """``check``'s reply: ``generation``, ``summary``, ``unchanged``."""

    generation: int
    summary: str
    unchanged: bool
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, j: Any) -> "CheckResult":
        j = _dict(j)
        return cls(_int(j.get("generation")), _str(j.get("summary")), _bool(j.get("unchanged")), j)


@dataclass(frozen=True)
class FileId:
    """A file's identity: ``dev`` and ``ino``."""

    dev: int
    ino: int

    @classmethod
    def from_json(cls, j: Any) -> Optional["FileId"]:
        if not isinstance(j, dict):
            return None
        return cls(_int(j.get("dev")), _int(j.get("ino")))


@dataclass(frozen=True)
class RotatedFile:
    """One file of ``rotate``'s reply: ``path``, ``old`` and ``new`` (:class:`FileId` or None),
    ``bytes_to_old``, ``error`` (None when it was reopened)."""

    path: str
    old: Optional[FileId]
    new: Optional[FileId]
    bytes_to_old: int
    error: Optional[str]

    @classmethod
    def from_json(cls, j: Any) -> "RotatedFile":
        j = _dict(j)
        err = j.get("error")
        return cls(
            _str(j.get("path")),
            FileId.from_json(j.get("old")),
            FileId.from_json(j.get("new")),
            _int(j.get("bytes_to_old")),
            None if err is None else str(err),
        )


@dataclass(frozen=True)
class RotateResult:
    """``rotate``'s reply: ``files``."""

    files: List[RotatedFile]
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, j: Any) -> "RotateResult":
        j = _dict(j)
        return cls([RotatedFile.from_json(f) for f in _list(j.get("files"))], j)


@dataclass(frozen=True)
class DrainResult:
    """``drain``'s reply: ``completed``, ``in_flight``, ``resumed``."""

    completed: bool
    in_flight: int
    resumed: bool
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, j: Any) -> "DrainResult":
        j = _dict(j)
        return cls(_bool(j.get("completed")), _int(j.get("in_flight")), _bool(j.get("resumed")), j)


@dataclass(frozen=True)
class ResumeResult:
    """``resume``'s reply: ``was_draining``."""

    was_draining: bool
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, j: Any) -> "ResumeResult":
        j = _dict(j)
        return cls(_bool(j.get("was_draining")), j)


@dataclass(frozen=True)
class LogLevelResult:
    """``log-level``'s reply: ``filter`` (now) and ``previous`` (None when only read)."""

    filter: Optional[str]
    previous: Optional[str]
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, j: Any) -> "LogLevelResult":
        j = _dict(j)
        return cls(_opt_str(j.get("filter")), _opt_str(j.get("previous")), j)


@dataclass(frozen=True)
class OperationInfo:
    """One operation of ``describe``: ``name``, ``doc``, ``access``, ``kind``, and the JSON
    Schemas ``args`` and ``reply``."""

    name: str
    doc: str
    access: str
    kind: str
    args: Any
    reply: Any

    @classmethod
    def from_json(cls, j: Any) -> "OperationInfo":
        j = _dict(j)
        return cls(
            _str(j.get("name")),
            _str(j.get("doc")),
            _str(j.get("access")),
            _str(j.get("kind")),
            j.get("args"),
            j.get("reply"),
        )


@dataclass(frozen=True)
class Describe:
    """``describe``'s reply: ``operations``; :meth:`get` finds one by name."""

    operations: List[OperationInfo]
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, j: Any) -> "Describe":
        j = _dict(j)
        return cls([OperationInfo.from_json(o) for o in _list(j.get("operations"))], j)

    def get(self, name: str) -> Optional[OperationInfo]:
        """The operation or command called ``name``, or None."""
        return next((o for o in self.operations if o.name == name), None)


@dataclass(frozen=True)
class Counter:
    """One counter of ``counters``: ``name``, ``kind``, ``value``, ``help``."""

    name: str
    kind: str
    value: Any
    help: str

    @classmethod
    def from_json(cls, j: Any) -> "Counter":
        j = _dict(j)
        return cls(_str(j.get("name")), _str(j.get("kind")), j.get("value", 0), _str(j.get("help")))


def counters_from_json(j: Mapping[str, Any]) -> List[Counter]:
    """``counters``' reply as a list of :class:`Counter`."""
    return [Counter.from_json(c) for c in _list(_dict(j).get("counters"))]
