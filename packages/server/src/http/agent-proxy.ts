import http from 'node:http';
import { CodedError, STREAM_CONTENT_TYPE, encodeEventFrame, isErrorCode } from '@nullspace/protocol';
import type { AgentLease, MachineService } from '../services/machines/machine-service.js';
import type { HandlerResult, RequestContext } from './router.js';

export interface ProxyOptions {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Agent path, with its query. */
  path: string;
  /**
   * `'request'`: the client's body is streamed through as is; a function: called with the machine
   * (its envs, cwd) to make the JSON body; otherwise a value sent as JSON.
   */
  body?: unknown;
  /** Extra headers for the agent (content-type and length of a streamed body are passed on). */
  headers?: Record<string, string>;
  /**
   * A response that may last (a stream of output, a big download): not counted as in flight, and
   * cut at once when the machine is checkpointed or stopped.
   */
  long?: boolean;
  /** How long a short request may take before `timeout` (default 60 s). */
  timeoutMs?: number;
}

/**
 * Sends one request to a machine's agent and streams its answer to the client unchanged: bodies
 * are piped both ways, never held whole, so a 200 MiB upload or download costs the server only its
 * socket buffers. Errors the agent answers with are passed on by code, message and field only.
 */
export async function proxyToAgent(
  ctx: RequestContext,
  machines: MachineService,
  id: string,
  o: ProxyOptions,
): Promise<HandlerResult> {
  const lease = await machines.openAgent(id, { long: o.long ?? false });
  try {
    await new Promise<void>((resolve, reject) => {
      const streamed = o.body === 'request';
      const value =
        typeof o.body === 'function'
          ? (o.body as (m: AgentLease['machine']) => unknown)(lease.machine)
          : o.body;
      const payload = streamed || value === undefined ? undefined : Buffer.from(JSON.stringify(value));
      const headers: Record<string, string | number> = { ...o.headers };
      if (streamed) {
        const len = ctx.req.headers['content-length'];
        if (len !== undefined) headers['content-length'] = len;
        else headers['transfer-encoding'] = 'chunked';
        headers['content-type'] = ctx.req.headers['content-type'] ?? 'application/octet-stream';
      } else if (payload) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = payload.length;
      } else headers['content-length'] = 0;
      const req = http.request({
        socketPath: lease.socketPath,
        path: o.path,
        method: o.method,
        headers,
        // Short requests share the machine's keep-alive pool (see AgentClient.pool: a piped body is
        // only safe on a connection the agent keeps open); a stream holds its own connection.
        agent: o.long ? false : lease.pool,
        ...(o.long ? {} : { timeout: o.timeoutMs ?? 60_000 }),
      });
      let settled = false;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        reject(err);
      };
      lease.onCut((reason) => {
        const type = ctx.res.headersSent ? ctx.res.getHeader('content-type') : undefined;
        if (type === STREAM_CONTENT_TYPE || type === 'application/x-ndjson') {
          // A stream of frames (or NDJSON events) ends with its reason, so the client knows to re-attach later.
          ctx.res.end(
            type === STREAM_CONTENT_TYPE
              ? encodeEventFrame({ type: 'interrupted', reason })
              : `${JSON.stringify({ type: 'interrupted', reason })}\n`,
          );
          req.destroy();
          settled = true;
          resolve();
          return;
        }
        req.destroy(agentCut(reason));
      });
      req.on('timeout', () => req.destroy(agentTimeout(o.timeoutMs)));
      let answered = false;
      req.on('error', (err: NodeJS.ErrnoException) => {
        // Once the agent answered, a late write error (it closed before the body's last write) is moot.
        if (answered && !(err instanceof CodedError)) return;
        if (err instanceof CodedError) return fail(err);
        if (ctx.res.headersSent) {
          ctx.res.destroy();
          settled = true;
          return resolve();
        }
        fail(
          new CodedError('unavailable', `machine agent is not reachable: ${err.code ?? err.message}`, {
            retry_after: 1,
          }),
        );
      });
      // The client went away: so does our request (a process in the machine goes on).
      ctx.res.on('close', () => {
        if (!ctx.res.writableFinished) req.destroy();
      });
      req.on('response', (res) => {
        answered = true;
        const status = res.statusCode ?? 500;
        if (status >= 400) {
          readAgentError(res, status).then(fail, fail);
          return;
        }
        const out: Record<string, string | number> = {};
        for (const h of ['content-type', 'content-length', 'content-disposition', 'last-modified', 'etag']) {
          const v = res.headers[h];
          if (typeof v === 'string') out[h] = v;
        }
        if (out['content-type'] === STREAM_CONTENT_TYPE || out['content-type'] === 'application/x-ndjson')
          out['cache-control'] = 'no-store';
        ctx.res.writeHead(status, out);
        res.pipe(ctx.res);
        res.on('end', () => {
          settled = true;
          resolve();
        });
        res.on('error', () => {
          ctx.res.destroy();
          settled = true;
          resolve();
        });
      });
      if (streamed) {
        ctx.req.pipe(req);
        ctx.req.on('error', (err) => req.destroy(err));
      } else req.end(payload);
    });
  } catch (err) {
    throw await lease.failed(err);
  } finally {
    lease.release();
  }
  return undefined;
}

/** One JSON call to the agent, for routes that answer with the agent's result as is. */
export function callAgent(
  ctx: RequestContext,
  machines: MachineService,
  id: string,
  method: ProxyOptions['method'],
  path: string,
  body?: unknown,
): Promise<HandlerResult> {
  return proxyToAgent(ctx, machines, id, { method, path, body });
}

/**
 * One JSON call to a machine's agent whose answer the server uses itself (not passed through):
 * leased like a proxied request (auto-resume, checkpoints wait for it), errors as the proxy's.
 */
export async function agentJson<T>(
  machines: MachineService,
  id: string,
  o: { method: ProxyOptions['method']; path: string; body?: unknown; timeoutMs?: number },
): Promise<T> {
  const lease = await machines.openAgent(id, { long: false });
  try {
    return await new Promise<T>((resolve, reject) => {
      const payload = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
      const req = http.request({
        socketPath: lease.socketPath,
        path: o.path,
        method: o.method,
        headers: payload
          ? { 'content-type': 'application/json', 'content-length': payload.length }
          : { 'content-length': 0 },
        agent: lease.pool,
        timeout: o.timeoutMs ?? 60_000,
      });
      lease.onCut((reason) => req.destroy(agentCut(reason)));
      req.on('timeout', () => req.destroy(agentTimeout(o.timeoutMs)));
      req.on('error', (err: NodeJS.ErrnoException) =>
        reject(
          err instanceof CodedError
            ? err
            : new CodedError('unavailable', `machine agent is not reachable: ${err.code ?? err.message}`, {
                retry_after: 1,
              }),
        ),
      );
      req.on('response', (res) => {
        const status = res.statusCode ?? 500;
        if (status >= 400) {
          readAgentError(res, status).then(reject, reject);
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as T);
          } catch (err) {
            reject(err);
          }
        });
      });
      req.end(payload);
    });
  } catch (err) {
    throw await lease.failed(err);
  } finally {
    lease.release();
  }
}

async function readAgentError(res: http.IncomingMessage, status: number): Promise<CodedError> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of res) {
    size += (c as Buffer).length;
    if (size <= 64 * 1024) chunks.push(c as Buffer);
  }
  let parsed:
    | { error?: { code?: unknown; message?: unknown; details?: Record<string, unknown> } }
    | undefined;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const err = parsed?.error;
  const code = isErrorCode(err?.code) ? err.code : 'internal';
  // The agent runs inside the machine: pass on only what the API edge would say itself.
  const details: Record<string, unknown> = {};
  for (const k of ['field', 'pid', 'tag', 'path', 'key', 'window_id', 'recording_id']) {
    const v = err?.details?.[k];
    if (typeof v === 'string' || typeof v === 'number') details[k] = v;
  }
  return new CodedError(
    code,
    typeof err?.message === 'string' ? err.message.slice(0, 2000) : `agent status ${status}`,
    Object.keys(details).length ? details : undefined,
  );
}

export type { AgentLease };

/** The error of a request whose agent connection was cut (a checkpoint, a kill): worth a retry. */
function agentCut(reason: string): CodedError {
  return new CodedError('unavailable', `the machine's agent connection was closed: ${reason}`, {
    retry_after: 1,
  });
}

/** The error of a request the agent did not answer in time. */
function agentTimeout(timeoutMs: number | undefined): CodedError {
  return new CodedError('timeout', `machine agent did not answer within ${timeoutMs ?? 60_000} ms`);
}
