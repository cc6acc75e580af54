// The error codes and the error class, without a schema (errors.ts adds the error body's): plain
// code the agent shares through `@nullspace/protocol/core`.

/**
 * Stable error codes of the Nullspace API. Every code has exactly one HTTP status; the
 * `satisfies` clause makes the compiler refuse a code without one.
 */
export const ERROR_STATUS = {
  invalid_argument: 400,
  desktop_unavailable: 400, // a desktop asked of a machine or template that has none (docs/desktop.md)
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  machine_not_found: 404,
  snapshot_not_found: 404,
  template_not_found: 404,
  volume_not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  machine_transitioning: 409,
  invalid_state: 409,
  warm_pool_unavailable: 409,
  events_expired: 410,
  payload_too_large: 413,
  git_error: 422, // raised by the SDK's git helpers (a git command in a machine failed); see docs/git.md
  install_failed: 422, // raised by the SDKs' code_interpreter.install (pip or npm failed); see docs/code-interpreter.md
  resource_exhausted: 429,
  quota_exceeded: 429, // a tenant's own limit (machines, vCPUs, memory, disk; docs/tenants.md), not the server's
  internal: 500,
  checkpoint_failed: 500, // CRIU could not dump the machine (hibernate, snapshot, fork); it runs on as it was
  restore_failed: 500, // CRIU could not bring a machine back (resume, fork child, create from a snapshot)
  unavailable: 503,
  timeout: 504,
  disk_full: 507,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_STATUS;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_STATUS, value);
}

export function statusOf(code: ErrorCode): number {
  return ERROR_STATUS[code];
}

/**
 * An error that carries a stable code. Thrown at the boundary where a failure is understood
 * (validation, a driver turning an exit status into a code) and mapped to HTTP by one handler.
 */
export class CodedError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  constructor(
    code: ErrorCode,
    message: string,
    details?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CodedError';
    this.code = code;
    this.details = details;
  }

  get status(): number {
    return statusOf(this.code);
  }
}

/** A 400 `invalid_argument` naming the offending field. */
export function invalidArgument(field: string, message: string): CodedError {
  return new CodedError('invalid_argument', `${field}: ${message}`, { field });
}
