"""The base of every model: ``from_dict`` / ``to_dict``, timestamps as aware datetimes, and the
fields a newer server adds kept in ``extra``."""

from __future__ import annotations

import dataclasses
from dataclasses import field
from datetime import datetime, timezone
from typing import Any, ClassVar, Dict, Mapping, Tuple, Type, TypeVar


M = TypeVar("M", bound="Model")


def parse_time(value: Any) -> Any:
    """An ISO 8601 timestamp from the wire (``2026-01-02T03:04:05.678Z``) as an aware datetime;
    anything else is returned as it is."""
    if not isinstance(value, str):
        return value
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return value


def format_time(value: Any) -> Any:
    if isinstance(value, datetime):
        utc = value.astimezone(timezone.utc)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    return value


class Model:
    """Base of every model: ``from_dict`` / ``to_dict`` and unknown fields kept in ``extra``."""

    #: Fields holding another model (or a list of them: ``[Model]``).
    _nested: ClassVar[Dict[str, Any]] = {}
    #: Fields holding timestamps.
    _times: ClassVar[Tuple[str, ...]] = ()

    extra: Dict[str, Any]

    @classmethod
    def from_dict(cls: Type[M], data: Mapping[str, Any]) -> M:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        known: Dict[str, Any] = {}
        extra: Dict[str, Any] = {}
        for key, value in data.items():
            if key in names and key != "extra":
                known[key] = _from_wire(cls, key, value)
            else:
                extra[key] = value
        obj = cls(**known)
        obj.extra = extra
        return obj

    def to_dict(self) -> Dict[str, Any]:
        """The wire's JSON shape (what the HTTP API returned), unknown fields included."""
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name == "extra":
                continue
            out[f.name] = _to_wire(getattr(self, f.name))
        out.update(self.__dict__.get("extra") or {})
        return out

    def __getattr__(self, name: str) -> Any:
        extra = self.__dict__.get("extra")
        if extra is not None and name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")


def _from_wire(cls: Type[Model], key: str, value: Any) -> Any:
    if key in cls._times:
        return parse_time(value)
    nested = cls._nested.get(key)
    if nested is None or value is None:
        return value
    if isinstance(nested, list):
        inner: Type[Model] = nested[0]
        return [inner.from_dict(v) if isinstance(v, Mapping) else v for v in value]
    return nested.from_dict(value) if isinstance(value, Mapping) else value


def _to_wire(value: Any) -> Any:
    if isinstance(value, Model):
        return value.to_dict()
    if isinstance(value, list):
        return [_to_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_wire(v) for k, v in value.items()}
    return format_time(value)


def _extra() -> Any:
    return field(default_factory=dict, repr=False, compare=False)
