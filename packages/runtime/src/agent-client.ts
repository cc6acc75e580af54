import http from 'node:http';
import {
  AGENT_ROUTES,
  type AgentHealth,
  type AgentRunRequest,
  CodedError,
  type RunCommandResult,
  isErrorCode,
} from '@nullspace/protocol';

/**
 * Talks to the agent inside one machine: HTTP/1.1 over the Unix socket the agent listens on (a
 * host path, through a bind mount). Connections are kept alive for speed; a closed or broken one
 * is simply reopened on the next call, so neither side restarting needs any reconnect protocol.
 */
export class AgentClient {
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  constructor(readonly socketPath: string) {}

  health(timeoutMs = 2000): Promise<AgentHealth> {
    return this.call<AgentHealth>('GET', AGENT_ROUTES.health, undefined, timeoutMs);
  }

  run(req: AgentRunRequest): Promise<RunCommandResult> {
    // The agent enforces the command's own timeout; ours only guards against a wedged agent.
    return this.call<RunCommandResult>('POST', AGENT_ROUTES.run, req, req.timeout_ms + 10_000);
  }

  close(): void {
    this.httpAgent.destroy();
  }

  private call<T>(method: string, path: string, body: unknown, timeoutMs: number): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          path,
          method,
          agent: this.httpAgent,
          headers: payload
            ? { 'content-type': 'application/json', 'content-length': payload.length }
            : { 'content-length': 0 },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text === '' ? undefined : JSON.parse(text);
            } catch {
              reject(new CodedError('internal', `agent sent invalid JSON (status ${res.statusCode})`));
              return;
            }
            if ((res.statusCode ?? 500) >= 400) {
              const err = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
              const code = isErrorCode(err?.code) ? err.code : 'internal';
              reject(
                new CodedError(
                  code,
                  typeof err?.message === 'string' ? err.message : `agent status ${res.statusCode}`,
                ),
              );
              return;
            }
            resolve(parsed as T);
          });
        },
      );
      req.on('timeout', () =>
        req.destroy(new CodedError('timeout', `machine agent did not answer within ${timeoutMs} ms`)),
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof CodedError) reject(err);
        else
          reject(
            new CodedError(
              'unavailable',
              `machine agent is not reachable: ${err.code ?? err.message}`,
              undefined,
              { cause: err },
            ),
          );
      });
      req.end(payload);
    });
  }
}
