import { type ErrorCode, isErrorCode, statusOf } from '@nullspace/protocol';

/** What the SDK knows about a failed call besides its code and message. */
export interface NullspaceErrorInit {
  /** HTTP status of the response; defaults to the status the code maps to. */
  status?: number;
  /** The server's `x-request-id` for the call, when a response arrived. */
  requestId?: string;
  details?: Record<string, unknown>;
  /** Seconds from the `Retry-After` header, when the server sent one. */
  retryAfter?: number;
  cause?: unknown;
}

/**
 * Base class of every error the SDK throws for a failed API call. `code` is one of the API's
 * stable error codes, so callers branch on it (or on the subclass) rather than on messages.
 * Errors raised inside the SDK (the server is unreachable, a request timed out) carry the code
 * that describes them (`unavailable`, `timeout`), no `requestId`, and the status that code maps to.
 *
 * @example
 * ```ts
 * import { Machine, NullspaceError } from '@nullspace/sdk';
 *
 * try {
 *   await Machine.getInfoById('mch_aaaaaaaaaaaaaaaaaaaa');
 * } catch (err) {
 *   if (err instanceof NullspaceError) console.error(err.code, err.status, err.requestId);
 *   else throw err;
 * }
 * ```
 */
export class NullspaceError extends Error {
  /**
   * Stable error code, such as `machine_not_found` or `invalid_argument`.
   *
   * @example
   * ```ts
   * if (err instanceof NullspaceError && err.code === 'machine_not_found') return null;
   * ```
   */
  readonly code: ErrorCode;
  /**
   * HTTP status of the response (for SDK-side errors, the status `code` maps to).
   *
   * @example
   * ```ts
   * if (err instanceof NullspaceError && err.status >= 500) scheduleRetry();
   * ```
   */
  readonly status: number;
  /**
   * The server's request id (`x-request-id`), to quote when reporting a problem.
   *
   * @example
   * ```ts
   * if (err instanceof NullspaceError) console.error(`request ${err.requestId ?? '-'} failed`);
   * ```
   */
  readonly requestId: string | undefined;
  /**
   * Structured details from the server, e.g. `{ field: 'vcpus' }` for `invalid_argument`.
   *
   * @example
   * ```ts
   * if (err instanceof InvalidArgumentError) console.error('bad field:', err.details?.field);
   * ```
   */
  readonly details: Record<string, unknown> | undefined;
  /**
   * Seconds to wait before retrying, from the `Retry-After` header, when the server sent one.
   *
   * @example
   * ```ts
   * if (err instanceof ConflictError && err.retryAfter !== undefined) {
   *   await new Promise((r) => setTimeout(r, err.retryAfter! * 1000));
   * }
   * ```
   */
  readonly retryAfter: number | undefined;

  /**
   * Usually made by the SDK; construct one yourself only to fake a failure.
   *
   * @example
   * ```ts
   * const err = new NullspaceError('internal', 'something broke', { requestId: 'req_123' });
   * ```
   */
  constructor(code: ErrorCode, message: string, init: NullspaceErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = init.status ?? statusOf(code);
    this.requestId = init.requestId;
    this.details = init.details;
    this.retryAfter = init.retryAfter;
  }
}

/**
 * The request was malformed: a field out of range, an unknown field, a bad combination
 * (`invalid_argument`), or a body over the server's limit (`payload_too_large`).
 *
 * @example
 * ```ts
 * try {
 *   await Machine.create({ vcpus: 1000 });
 * } catch (err) {
 *   if (err instanceof InvalidArgumentError) console.error(err.message); // "vcpus: must be between 1 and 64"
 * }
 * ```
 */
export class InvalidArgumentError extends NullspaceError {}

/**
 * A desktop was asked of a machine (or, on create, a template) that has none
 * (`desktop_unavailable`, 400): create it from the `desktop` template.
 *
 * @example
 * ```ts
 * try {
 *   await Machine.create({ template: 'base', desktop: true });
 * } catch (err) {
 *   if (err instanceof DesktopUnavailableError) console.error('use template "desktop"');
 * }
 * ```
 */
export class DesktopUnavailableError extends InvalidArgumentError {}

/**
 * The API key is missing or wrong (`unauthenticated`).
 *
 * @example
 * ```ts
 * try {
 *   await Machine.create({ apiKey: 'wrong' });
 * } catch (err) {
 *   if (err instanceof AuthenticationError) console.error('check NULLSPACE_API_KEY');
 * }
 * ```
 */
export class AuthenticationError extends NullspaceError {}

/**
 * The API key is valid but may not do this (`permission_denied`).
 *
 * @example
 * ```ts
 * if (err instanceof PermissionDeniedError) console.error('this key may not do that');
 * ```
 */
export class PermissionDeniedError extends NullspaceError {}

/**
 * The thing named does not exist: `not_found`, `machine_not_found`, `snapshot_not_found`,
 * `template_not_found`, `volume_not_found`.
 *
 * @example
 * ```ts
 * try {
 *   await Machine.getInfoById('mch_aaaaaaaaaaaaaaaaaaaa');
 * } catch (err) {
 *   if (err instanceof NotFoundError) console.error('no such machine');
 * }
 * ```
 */
export class NotFoundError extends NullspaceError {}

/**
 * The request clashes with the current state: `conflict`, `invalid_state`,
 * `machine_transitioning` (retry after `retryAfter` seconds) or `warm_pool_unavailable`.
 *
 * @example
 * ```ts
 * try {
 *   await machine.commands.run('true');
 * } catch (err) {
 *   if (err instanceof ConflictError && err.code === 'machine_transitioning') {
 *     await new Promise((r) => setTimeout(r, (err.retryAfter ?? 1) * 1000));
 *   }
 * }
 * ```
 */
export class ConflictError extends NullspaceError {}

/**
 * The server refused for lack of capacity or quota (`resource_exhausted`, HTTP 429).
 *
 * @example
 * ```ts
 * if (err instanceof RateLimitError) console.error(`retry in ${err.retryAfter ?? 1}s`);
 * ```
 */
export class RateLimitError extends NullspaceError {}

/**
 * The operation, or the HTTP request itself, took too long (`timeout`). The request timeout is
 * `requestTimeoutMs` in the connection options.
 *
 * @example
 * ```ts
 * try {
 *   await Machine.create({ requestTimeoutMs: 1 });
 * } catch (err) {
 *   if (err instanceof TimeoutError) console.error(err.message);
 * }
 * ```
 */
export class TimeoutError extends NullspaceError {}

/**
 * The server, or the machine behind it, cannot answer now (`unavailable`); also thrown when the
 * API cannot be reached at all (connection refused, unknown host), with the URL in the message.
 *
 * @example
 * ```ts
 * try {
 *   await Machine.list({ apiUrl: 'http://127.0.0.1:7999' });
 * } catch (err) {
 *   if (err instanceof UnavailableError) console.error(err.message); // "cannot reach the Nullspace API at ..."
 * }
 * ```
 */
export class UnavailableError extends NullspaceError {}

/**
 * The server failed (`internal`, or a response the SDK could not understand). Quote `requestId`
 * when reporting it.
 *
 * @example
 * ```ts
 * if (err instanceof InternalError) console.error(`server error, request ${err.requestId}`);
 * ```
 */
export class InternalError extends NullspaceError {}

/**
 * The machine's disk is full (`disk_full`, HTTP 507): a write did not fit in its `disk_mb`. A
 * file write that fails so leaves the old file as it was.
 *
 * @example
 * ```ts
 * try {
 *   await machine.files.write('/workspace/big.bin', data);
 * } catch (err) {
 *   if (err instanceof DiskFullError) console.error('create the machine with a larger diskMb');
 * }
 * ```
 */
export class DiskFullError extends NullspaceError {}

/**
 * CRIU could not dump the machine (`checkpoint_failed`, HTTP 500): a hibernate, snapshot or fork
 * failed, and the machine runs on as it was (paused stays paused). `details.reason` is CRIU's own
 * first errors (for example a socket connected to something outside the machine); the machine's
 * `statusReason` says the same.
 *
 * @example
 * ```ts
 * try {
 *   await machine.hibernate();
 * } catch (err) {
 *   if (err instanceof CheckpointFailedError) console.error(err.details?.reason);
 * }
 * ```
 */
export class CheckpointFailedError extends NullspaceError {}

/**
 * CRIU could not bring a machine back from its image (`restore_failed`, HTTP 500): a resume leaves
 * the machine hibernated (its image kept, so a later resume can retry), a fork child or a machine
 * from a snapshot is not made. `details.reason` is CRIU's own first errors.
 *
 * @example
 * ```ts
 * const children = await machine.fork({ count: 2 });
 * for (const c of children) if (c.error instanceof RestoreFailedError) console.error(c.error.details?.reason);
 * ```
 */
export class RestoreFailedError extends NullspaceError {}

type ErrorClass = new (code: ErrorCode, message: string, init?: NullspaceErrorInit) => NullspaceError;

// Every code names its class here; the `satisfies` makes a new code without a class a compile error.
// Codes no subclass describes well (`method_not_allowed`, `events_expired`) use the base class.
const CLASS_OF_CODE = {
  invalid_argument: InvalidArgumentError,
  payload_too_large: InvalidArgumentError,
  desktop_unavailable: DesktopUnavailableError,
  unauthenticated: AuthenticationError,
  permission_denied: PermissionDeniedError,
  not_found: NotFoundError,
  machine_not_found: NotFoundError,
  snapshot_not_found: NotFoundError,
  template_not_found: NotFoundError,
  volume_not_found: NotFoundError,
  method_not_allowed: NullspaceError,
  conflict: ConflictError,
  machine_transitioning: ConflictError,
  invalid_state: ConflictError,
  warm_pool_unavailable: ConflictError,
  resource_exhausted: RateLimitError,
  internal: InternalError,
  checkpoint_failed: CheckpointFailedError,
  restore_failed: RestoreFailedError,
  unavailable: UnavailableError,
  timeout: TimeoutError,
  disk_full: DiskFullError,
  events_expired: NullspaceError,
  // Raised in the SDK by `machine.git` as `GitError` (git.ts, which imports this module); never sent by the server.
  git_error: NullspaceError,
  // Raised in the SDK by `machine.codeInterpreter.install` as `InstallError`; never sent by the server.
  install_failed: NullspaceError,
} as const satisfies Record<ErrorCode, ErrorClass>;

/** A code this SDK knows for an HTTP status, for responses whose code it does not know. */
function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 400:
      return 'invalid_argument';
    case 401:
      return 'unauthenticated';
    case 403:
      return 'permission_denied';
    case 404:
      return 'not_found';
    case 405:
      return 'method_not_allowed';
    case 409:
      return 'conflict';
    case 413:
      return 'payload_too_large';
    case 429:
      return 'resource_exhausted';
    case 502:
    case 503:
      return 'unavailable';
    case 504:
      return 'timeout';
    case 507:
      return 'disk_full';
    default:
      return 'internal';
  }
}

/**
 * Makes the typed error for a code: the one place that maps codes to classes. A code this SDK
 * does not know (from a newer server) is mapped by HTTP status and kept in `details.server_code`;
 * `undefined` (a response that was not a Nullspace error) is mapped by HTTP status alone.
 *
 * @example
 * ```ts
 * const err = errorFromCode('machine_not_found', 'machine mch_x not found', { status: 404 });
 * err instanceof NotFoundError; // true
 * ```
 */
export function errorFromCode(
  code: string | undefined,
  message: string,
  init: NullspaceErrorInit = {},
): NullspaceError {
  if (isErrorCode(code)) return new CLASS_OF_CODE[code](code, message, init);
  const known = codeForStatus(init.status ?? 500);
  const details = code === undefined ? init.details : { ...init.details, server_code: code };
  return new CLASS_OF_CODE[known](known, message, { ...init, ...(details === undefined ? {} : { details }) });
}
