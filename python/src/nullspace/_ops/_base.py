"""What every operation module shares: the markers that tell ``machine.py`` how to expose an
operation, and the small helpers around a request (JSON answers, argument errors, timeouts)."""

from __future__ import annotations

from typing import Any, Callable, Generator, Optional

from .._protocol import Call, Request
from ..errors import InvalidArgumentError, NullspaceError


Gen = Generator[Any, Any, Any]


def op(fn: Callable[..., Gen]) -> Callable[..., Gen]:
    fn._op = "call"  # type: ignore[attr-defined]
    return fn


def op_iter(fn: Callable[..., Gen]) -> Callable[..., Gen]:
    fn._op = "iter"  # type: ignore[attr-defined]
    return fn


def cls_op(fn: Callable[..., Gen]) -> Callable[..., Gen]:
    fn._op = "cls"  # type: ignore[attr-defined]
    return fn


def cls_op_iter(fn: Callable[..., Gen]) -> Callable[..., Gen]:
    fn._op = "cls_iter"  # type: ignore[attr-defined]
    return fn


def _json(req: Request) -> Gen:
    resp = yield Call(req)
    return resp.json()


def _invalid(field: str, message: str) -> InvalidArgumentError:
    return InvalidArgumentError("invalid_argument", f"{field}: {message}", details={"field": field})


def _plus(config_timeout: float, per_call: Optional[float], extra_s: float) -> Optional[float]:
    """A request timeout with a wait the server does on purpose added (0 stays "no limit")."""
    base = config_timeout if per_call is None else per_call
    return 0 if base == 0 else base + extra_s


def _transient(err: NullspaceError) -> bool:
    """Refusals worth waiting out: a transition, a paused machine, a briefly unreachable agent."""
    status = (err.details or {}).get("status")
    return err.code in ("unavailable", "machine_transitioning") or (
        err.code == "invalid_state" and status in ("paused", "hibernated")
    )
