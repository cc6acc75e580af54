"""Typed errors: every failed call raises a :class:`NullspaceError` whose ``code`` is one of the
API's stable error codes (the same strings the HTTP API returns in ``error.code``).

Families (``NotFoundError``, ``ConflictError`` ...) group codes; each code also has its own class
(``MachineNotFoundError`` is a ``NotFoundError``), so callers catch as broadly or narrowly as they
need. ``ERROR_STATUS`` is the one code → HTTP status table; the tests check it against the
server's.

Example::

    from nullspace import Machine, MachineNotFoundError, NullspaceError

    try:
        Machine.get_info_by_id("mch_aaaaaaaaaaaaaaaaaaaa")
    except MachineNotFoundError as err:
        print("gone:", err.code, err.status, err.request_id)
    except NullspaceError as err:
        print(err.code, err.details)
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Type

#: Every error code of the API with its one HTTP status (packages/protocol/src/errors.ts).
ERROR_STATUS: Dict[str, int] = {
    "invalid_argument": 400,
    "desktop_unavailable": 400,
    "unauthenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "machine_not_found": 404,
    "snapshot_not_found": 404,
    "template_not_found": 404,
    "volume_not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "machine_transitioning": 409,
    "invalid_state": 409,
    "warm_pool_unavailable": 409,
    "events_expired": 410,
    "payload_too_large": 413,
    "git_error": 422,
    "install_failed": 422,
    "resource_exhausted": 429,
    "internal": 500,
    "checkpoint_failed": 500,
    "restore_failed": 500,
    "unavailable": 503,
    "timeout": 504,
    "disk_full": 507,
}


class NullspaceError(Exception):
    """Base class of every error the SDK raises for a failed call.

    ``code`` is a stable API error code; ``status`` the HTTP status (for errors raised inside the
    SDK, such as an unreachable server, the status the code maps to); ``request_id`` the server's
    ``x-request-id`` when a response arrived; ``details`` structured details (e.g.
    ``{"field": "vcpus"}``); ``retry_after`` seconds from a ``Retry-After`` header.

    Example::

        try:
            machine.commands.run("true")
        except NullspaceError as err:
            print(err.code, err.status, err.request_id, err.details)
    """

    code: str

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: Optional[int] = None,
        request_id: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else ERROR_STATUS.get(code, 500)
        self.request_id = request_id
        self.details = details
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status}, message={self.message!r})"


# ---- families ------------------------------------------------------------------------------------


class InvalidArgumentError(NullspaceError):
    """The request was malformed (``invalid_argument``) or too large (``payload_too_large``).

    Example::

        try:
            Machine.create(vcpus=1000)
        except InvalidArgumentError as err:
            print(err.details["field"])  # "vcpus"
    """


class DesktopUnavailableError(InvalidArgumentError):
    """A desktop was asked of a machine (or, on create, a template) that has none
    (``desktop_unavailable``): create the machine from the ``desktop`` template.

    Example::

        try:
            Machine.create(template="base", desktop=True)
        except DesktopUnavailableError:
            print('use template="desktop"')
    """


class AuthenticationError(NullspaceError):
    """The API key is missing or wrong (``unauthenticated``)."""


class PermissionDeniedError(NullspaceError):
    """The API key may not do this (``permission_denied``)."""


class NotFoundError(NullspaceError):
    """The thing named does not exist (``not_found`` and the ``*_not_found`` codes)."""


class ConflictError(NullspaceError):
    """The request clashes with the current state (``conflict``, ``invalid_state``,
    ``machine_transitioning`` — retry after ``retry_after`` seconds — ``warm_pool_unavailable``)."""


class RateLimitError(NullspaceError):
    """Out of capacity or quota (``resource_exhausted``, HTTP 429)."""


class InternalError(NullspaceError):
    """The server failed (``internal``); quote ``request_id`` when reporting it."""


class UnavailableError(NullspaceError):
    """The server (or the machine behind it) cannot answer now (``unavailable``); also raised
    when the API cannot be reached at all, with the URL in the message."""


class NullspaceTimeoutError(NullspaceError):
    """The operation or the HTTP request took too long (``timeout``). The request timeout is
    ``request_timeout`` (seconds) on the call or the connection."""


class DiskFullError(NullspaceError):
    """The machine's disk is full (``disk_full``, HTTP 507)."""


class CheckpointFailedError(NullspaceError):
    """CRIU could not dump the machine (``checkpoint_failed``, HTTP 500): a hibernate, snapshot or
    fork failed and the machine runs on as it was. ``details["reason"]`` is CRIU's own first
    errors."""


class RestoreFailedError(NullspaceError):
    """CRIU could not bring a machine back (``restore_failed``, HTTP 500): a resume leaves the
    machine hibernated (a later resume can retry); a fork child or a machine from a snapshot is not
    made. ``details["reason"]`` is CRIU's own first errors."""


# ---- one class per code --------------------------------------------------------------------------


class PayloadTooLargeError(InvalidArgumentError):
    """``payload_too_large``: the body is over the server's limit."""


class MachineNotFoundError(NotFoundError):
    """``machine_not_found``."""


class SnapshotNotFoundError(NotFoundError):
    """``snapshot_not_found``."""


class TemplateNotFoundError(NotFoundError):
    """``template_not_found``."""


class VolumeNotFoundError(NotFoundError):
    """``volume_not_found``."""


class MethodNotAllowedError(NullspaceError):
    """``method_not_allowed``: the path exists, the method does not."""


class InvalidStateError(ConflictError):
    """``invalid_state``: the machine is not in a state that allows this (``details["status"]``)."""


class MachineTransitioningError(ConflictError):
    """``machine_transitioning``: retry after ``retry_after`` seconds."""


class WarmPoolUnavailableError(ConflictError):
    """``warm_pool_unavailable``: ``warm_pool_mode="require"`` and no ready machine in time."""


class EventsExpiredError(NullspaceError):
    """``events_expired``: events after the given id are no longer all retained."""


class InstallError(NullspaceError):
    """``install_failed``: pip or npm failed in ``code_interpreter.install``; the message is theirs.

    Example::

        try:
            machine.code_interpreter.install(["no-such-package"])
        except InstallError as err:
            print(err.message)
    """

    def __init__(self, message: str, *, exit_code: Optional[int], log: str) -> None:
        super().__init__("install_failed", message, details={"exit_code": exit_code})
        self.exit_code = exit_code
        self.log = log


class GitError(NullspaceError):
    """A git command in the machine failed (``git_error``; raised by ``machine.git``).

    ``subcommand`` is the git command (``clone``, ``push`` ...), ``exit_code`` git's status (None
    when it did not exit by itself), ``stderr`` what it said (credentials redacted), ``timed_out``
    whether it ran past its timeout.

    Example::

        try:
            machine.git.clone("/srv/missing.git", path="/workspace/app")
        except GitError as err:
            print(err.subcommand, err.exit_code, err.message)
    """

    def __init__(
        self,
        message: str,
        *,
        subcommand: str,
        exit_code: Optional[int],
        stderr: str,
        timed_out: bool = False,
    ) -> None:
        details: Dict[str, Any] = {"subcommand": subcommand, "exit_code": exit_code, "stderr": stderr}
        if timed_out:
            details["timed_out"] = True
        super().__init__("git_error", message, details=details)
        self.subcommand = subcommand
        self.exit_code = exit_code
        self.stderr = stderr
        self.timed_out = timed_out


class UnsupportedFeatureError(InvalidArgumentError):
    """A feature of the contract this SDK and server do not offer yet (``invalid_argument``, the
    same code the server answers when asked for it): ``machine.code_interpreter``. ``details["feature"]`` names it."""


#: The class of each code; every code of ERROR_STATUS has one (tested).
CLASS_OF_CODE: Dict[str, Type[NullspaceError]] = {
    "invalid_argument": InvalidArgumentError,
    "desktop_unavailable": DesktopUnavailableError,
    "payload_too_large": PayloadTooLargeError,
    "unauthenticated": AuthenticationError,
    "permission_denied": PermissionDeniedError,
    "not_found": NotFoundError,
    "machine_not_found": MachineNotFoundError,
    "snapshot_not_found": SnapshotNotFoundError,
    "template_not_found": TemplateNotFoundError,
    "volume_not_found": VolumeNotFoundError,
    "method_not_allowed": MethodNotAllowedError,
    "conflict": ConflictError,
    "machine_transitioning": MachineTransitioningError,
    "invalid_state": InvalidStateError,
    "warm_pool_unavailable": WarmPoolUnavailableError,
    "events_expired": EventsExpiredError,
    "resource_exhausted": RateLimitError,
    "internal": InternalError,
    "checkpoint_failed": CheckpointFailedError,
    "restore_failed": RestoreFailedError,
    "unavailable": UnavailableError,
    "timeout": NullspaceTimeoutError,
    "disk_full": DiskFullError,
    "git_error": NullspaceError,
    "install_failed": NullspaceError,
}

_CODE_OF_STATUS = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    429: "resource_exhausted",
    502: "unavailable",
    503: "unavailable",
    504: "timeout",
    507: "disk_full",
}


def error_from_code(
    code: Optional[str],
    message: str,
    *,
    status: Optional[int] = None,
    request_id: Optional[str] = None,
    details: Optional[Dict[str, Any]] = None,
    retry_after: Optional[float] = None,
) -> NullspaceError:
    """The typed error for a code: the one place that maps codes to classes. A code this SDK does
    not know (from a newer server) is mapped by HTTP status and kept in ``details["server_code"]``.

    Example::

        err = error_from_code("machine_not_found", "no machine mch_x", status=404)
        assert isinstance(err, MachineNotFoundError)
    """
    if code is not None and code in CLASS_OF_CODE:
        cls = CLASS_OF_CODE[code]
        return cls(code, message, status=status, request_id=request_id, details=details, retry_after=retry_after)
    known = _CODE_OF_STATUS.get(status or 500, "internal")
    if code is not None:
        details = dict(details or {}, server_code=code)
    return CLASS_OF_CODE[known](
        known, message, status=status, request_id=request_id, details=details, retry_after=retry_after
    )
