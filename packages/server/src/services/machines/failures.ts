import { CodedError, type ErrorBody } from '@nullspace/protocol';
import { START_TAG } from '../../templates/agent-ops.js';

/**
 * What a machine's owner may read about a failure: a reason the runtime marked as safe, else a
 * pointer to the log (host paths and tools' output stay there).
 */
export function publicReason(err: unknown): string {
  const reason = err instanceof CodedError ? err.details?.public_reason : undefined;
  return typeof reason === 'string' ? reason : 'a host error; the server log has the cause';
}

/** The error of one fork child, as its slot of the answer carries it. */
export function errorBody(err: unknown): ErrorBody['error'] {
  const e =
    err instanceof CodedError
      ? err
      : new CodedError('internal', 'internal error; the server log has the cause');
  const hidden = e.code === 'internal' && typeof e.details?.machine_id !== 'string';
  return {
    code: e.code,
    message: hidden ? 'internal error; the server log has the cause' : e.message,
    ...(e.details && !hidden ? { details: e.details } : {}),
  };
}

/**
 * The error a caller gets for a failed transition (`what`: pause, resume, fork …) of machine
 * `id`, which is `status` now (its state was settled before).
 */
export function transitionError(id: string, what: string, err: unknown, status: string): CodedError {
  const details = { machine_id: id, status };
  if (err instanceof CodedError && err.code === 'disk_full')
    return new CodedError(
      'disk_full',
      `${what} of machine ${id} failed: the host is out of disk space`,
      details,
    );
  // CRIU's refusal, in its own words: the caller learns what held the checkpoint or restore up.
  if (err instanceof CodedError && (err.code === 'checkpoint_failed' || err.code === 'restore_failed')) {
    const reason = String(err.details?.reason ?? '');
    return new CodedError(err.code, `${what} of machine ${id} failed; it is ${status} now: ${reason}`, {
      ...details,
      reason,
    });
  }
  if (err instanceof CodedError && err.code !== 'internal') return err;
  return new CodedError(
    'internal',
    `${what} of machine ${id} failed; it is ${status} now (status_reason says why)`,
    details,
    { cause: err },
  );
}

/**
 * The error a create caller gets when machine `id` could not start: the driver's (`what`
 * undefined) or the template's start command's. A refusal that is the request's to fix keeps its
 * code; host trouble becomes `internal` (or `disk_full`) pointing at the machine's status_reason.
 */
export function startError(id: string, err: unknown, what?: 'start command'): CodedError {
  // A volume that cannot be mounted where asked (a file or symlink at its mount path in the
  // template): the request's to fix.
  if (what === undefined && err instanceof CodedError && err.code === 'invalid_argument')
    return new CodedError('invalid_argument', `machine ${id} could not start: ${err.message}`, {
      ...err.details,
      machine_id: id,
    });
  // The template's start command is the user's own: its failure is theirs to see, not `internal`.
  if (what === 'start command' && err instanceof CodedError && err.code !== 'internal')
    return new CodedError(err.code, `machine ${id}: ${err.message}`, { machine_id: id, tag: START_TAG });
  if (err instanceof CodedError && err.code === 'disk_full')
    return new CodedError('disk_full', `machine ${id} could not start: the host is out of disk space`, {
      machine_id: id,
    });
  // A fork child or a machine from a snapshot whose image CRIU could not restore.
  if (what === undefined && err instanceof CodedError && err.code === 'restore_failed') {
    const reason = String(err.details?.reason ?? '');
    return new CodedError('restore_failed', `machine ${id} could not start: restore failed: ${reason}`, {
      machine_id: id,
      reason,
    });
  }
  return new CodedError(
    'internal',
    `machine ${id} failed to start (its status_reason says why)`,
    { machine_id: id },
    { cause: err },
  );
}

/** The status_reason of a machine that could not start. */
export function startFailedReason(err: unknown, what?: 'start command'): string {
  return `start failed: ${what === 'start command' && err instanceof CodedError ? err.message : publicReason(err)}`;
}
