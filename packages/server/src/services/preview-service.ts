import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CodedError,
  PREVIEW_COOKIE,
  PREVIEW_PROXY_TOKEN_HEADER,
  PREVIEW_QUERY_PARAM,
  PREVIEW_TOKEN_HEADER,
  PREVIEW_TOKEN_PREFIX,
  type PreviewGrantInfo,
  type PreviewGrantKind,
  type PreviewProxyTargetInfo,
  type PreviewReadiness,
  type PreviewRevocation,
  type PreviewUrlInfo,
  newId,
  redactPreviewToken,
} from '@nullspace/protocol';
import type { Logger } from '../log.js';
import {
  type PreviewGrantRecord,
  type PreviewGrantStore,
  grantInfo,
  hashToken,
} from '../store/preview-grant-store.js';
import type { MachineService } from './machines/machine-service.js';

export interface PreviewServiceOptions {
  machines: MachineService;
  grants: PreviewGrantStore;
  /** `preview.localhost:7070` style: preview hosts are `PORT-MACHINE.<domain>`. */
  domain: () => string;
  scheme: 'http' | 'https';
  log: Logger;
}

/** A preview request's target, from its Host header. */
export interface PreviewTarget {
  machineId: string;
  port: number;
}

/** Who a preview request was let in as. */
export interface PreviewAccess {
  grant: PreviewGrantRecord;
  /** The token came in the query: the response sets the cookie that carries it from then on. */
  setCookie?: string;
}

/**
 * Preview grants (create, list, revoke, check) and what is built on them: host info, proxy
 * targets, readiness. Open connections are tracked per grant, so a revocation (or the grant's
 * expiry) closes them at once.
 */
export class PreviewService {
  private readonly open = new Map<string, Set<() => void>>();

  constructor(private readonly o: PreviewServiceOptions) {}

  /** A new grant for `port` of a machine that is not gone. */
  createUrl(machineId: string, port: number, expiresIn: number): PreviewUrlInfo {
    const { record, token } = this.newGrant(machineId, port, expiresIn, 'url');
    const host = this.hostOf(machineId, port);
    const q = `?${PREVIEW_QUERY_PARAM}=${token}`;
    return {
      ...grantInfo(record),
      host,
      token,
      url: `${this.o.scheme}://${host}/${q}`,
      websocket_url: `${this.o.scheme === 'https' ? 'wss' : 'ws'}://${host}/${q}`,
    };
  }

  createProxyTarget(machineId: string, port: number, expiresIn: number): PreviewProxyTargetInfo {
    const { record, token } = this.newGrant(machineId, port, expiresIn, 'proxy');
    const host = this.hostOf(machineId, port);
    return {
      ...grantInfo(record),
      upstream_url: `${this.o.scheme}://${host}/`,
      websocket_upstream_url: `${this.o.scheme === 'https' ? 'wss' : 'ws'}://${host}/`,
      headers: { [PREVIEW_PROXY_TOKEN_HEADER]: token },
    };
  }

  list(machineId: string, port?: number): PreviewGrantInfo[] {
    this.o.machines.get(machineId);
    return this.o.grants.list(machineId, port).map(grantInfo);
  }

  /** Revokes a grant: no request gets in with it any more, and its open connections close now. */
  revoke(machineId: string, grantId: string): PreviewRevocation {
    const g = this.o.grants.get(grantId);
    if (!g || g.machine_id !== machineId)
      throw new CodedError('not_found', `preview grant ${grantId} not found on machine ${machineId}`, {
        grant_id: grantId,
      });
    const revoked = this.o.grants.revoke(grantId, Date.now()) ?? g;
    // A copy: each close untracks itself from the live set.
    const closers = [...(this.open.get(grantId) ?? [])];
    this.open.delete(grantId);
    for (const close of closers) close();
    this.o.log.info('preview grant revoked', {
      machine_id: machineId,
      grant_id: grantId,
      closed: closers.length,
    });
    return {
      id: g.id,
      machine_id: g.machine_id,
      port: g.port,
      revoked: true,
      revoked_at: new Date(revoked.revoked_at ?? Date.now()).toISOString(),
      closed_connections: closers.length,
    };
  }

  /**
   * Checks a preview request's grant: a proxy token in its header, else a token in the query, the
   * header or the cookie (in that order). It must be for this machine and port, unexpired and
   * unrevoked.
   */
  authorize(req: http.IncomingMessage, url: URL, target: PreviewTarget): PreviewAccess {
    const proxyToken = header(req, PREVIEW_PROXY_TOKEN_HEADER);
    const queryToken = url.searchParams.get(PREVIEW_QUERY_PARAM) ?? undefined;
    const token =
      proxyToken ?? queryToken ?? header(req, PREVIEW_TOKEN_HEADER) ?? cookie(req, PREVIEW_COOKIE);
    if (!token)
      throw new CodedError(
        'unauthenticated',
        `this preview needs a grant: ?${PREVIEW_QUERY_PARAM}=..., the ${PREVIEW_TOKEN_HEADER} header or its cookie`,
      );
    const g = token.startsWith(PREVIEW_TOKEN_PREFIX) ? this.o.grants.byToken(token) : undefined;
    const denied = (why: string) =>
      new CodedError('permission_denied', `preview grant ${redactPreviewToken(token)} ${why}`, {
        machine_id: target.machineId,
        port: target.port,
      });
    if (!g) throw denied('is not valid');
    if (g.machine_id !== target.machineId || g.port !== target.port) throw denied('is for another preview');
    if ((g.kind === 'proxy') !== (proxyToken !== undefined))
      throw denied(
        g.kind === 'proxy' ? `goes only in ${PREVIEW_PROXY_TOKEN_HEADER}` : 'is not a proxy token',
      );
    if (g.revoked_at !== null) throw denied('was revoked');
    if (g.expires_at <= Date.now()) throw denied('has expired');
    const access: PreviewAccess = { grant: g };
    if (queryToken !== undefined && proxyToken === undefined) {
      const maxAge = Math.max(1, Math.floor((g.expires_at - Date.now()) / 1000));
      access.setCookie =
        `${PREVIEW_COOKIE}=${token}; Max-Age=${maxAge}; Path=/; HttpOnly; SameSite=Lax` +
        (this.o.scheme === 'https' ? '; Secure' : '');
    }
    return access;
  }

  /**
   * Tracks an open connection of a grant: `close` runs on revocation, or when the grant expires.
   * Returns what the connection calls when it ends.
   */
  track(g: PreviewGrantRecord, close: () => void): () => void {
    const set = this.open.get(g.id) ?? new Set<() => void>();
    this.open.set(g.id, set);
    set.add(close);
    const expiry = setTimeout(
      () => {
        set.delete(close);
        close();
      },
      Math.min(Math.max(0, g.expires_at - Date.now()), 2 ** 31 - 1),
    );
    expiry.unref();
    return () => {
      clearTimeout(expiry);
      set.delete(close);
      if (set.size === 0 && this.open.get(g.id) === set) this.open.delete(g.id);
    };
  }

  /**
   * Waits until `port` of the machine accepts connections (a paused or hibernated machine with
   * auto_resume is woken, like preview traffic would), polling every 100 ms until `timeoutMs`.
   */
  async waitFor(machineId: string, port: number, timeoutMs: number): Promise<PreviewReadiness> {
    const started = Date.now();
    const deadline = started + timeoutMs;
    const m = this.o.machines.get(machineId);
    if ((m.status === 'paused' || m.status === 'hibernated') && !m.auto_resume)
      throw new CodedError(
        'invalid_state',
        `machine ${machineId} is ${m.status} and auto_resume is off: connect (resume) it first`,
        { machine_id: machineId, status: m.status },
      );
    let last = 'the machine is not running';
    while (Date.now() < deadline) {
      try {
        const { lease, socket } = await this.o.machines.connectPort(machineId, port, {
          long: false,
          wakeTimeoutMs: Math.max(1, deadline - Date.now()),
          connectTimeoutMs: Math.max(1, deadline - Date.now()),
        });
        socket.destroy();
        lease.release();
        return { machine_id: machineId, port, ready: true, waited_ms: Date.now() - started };
      } catch (err) {
        if (!(err instanceof CodedError) || err.code !== 'unavailable') throw err;
        last = err.message;
      }
      await sleep(Math.min(100, Math.max(0, deadline - Date.now())));
    }
    throw new CodedError(
      'timeout',
      `port ${port} of machine ${machineId} did not answer within ${timeoutMs} ms: ${last}`,
      {
        machine_id: machineId,
        port,
      },
    );
  }

  hostOf(machineId: string, port: number): string {
    return `${port}-${machineId}.${this.o.domain()}`;
  }

  private newGrant(
    machineId: string,
    port: number,
    expiresIn: number,
    kind: PreviewGrantKind,
  ): { record: PreviewGrantRecord; token: string } {
    const m = this.o.machines.get(machineId);
    if (m.status === 'killed' || m.status === 'killing' || m.status === 'failed')
      throw new CodedError('invalid_state', `machine ${machineId} is ${m.status}`, {
        machine_id: machineId,
        status: m.status,
      });
    const token = `${PREVIEW_TOKEN_PREFIX}${randomBytes(24).toString('base64url')}`;
    const now = Date.now();
    const record: PreviewGrantRecord = {
      id: newId('previewGrant'),
      machine_id: machineId,
      port,
      kind,
      token_hash: hashToken(token),
      token_hint: redactPreviewToken(token),
      created_at: now,
      expires_at: now + expiresIn * 1000,
      revoked_at: null,
    };
    this.o.grants.insert(record);
    this.o.log.info('preview grant created', { machine_id: machineId, port, kind, grant_id: record.id });
    return { record, token };
  }
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function cookie(req: http.IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
