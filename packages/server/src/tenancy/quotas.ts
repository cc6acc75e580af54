import { CodedError, TENANT_NAME } from '@nullspace/protocol';

/** What one tenant's live machines may hold together; a limit left out is no limit. */
export interface Quota {
  machines?: number;
  vcpus?: number;
  memory_mb?: number;
  disk_mb?: number;
}

export type QuotaUsage = Required<Quota>;

const LIMITS = ['machines', 'vcpus', 'memory_mb', 'disk_mb'] as const;

/**
 * Tenants' quotas, as the operator set them in `NULLSPACE_TENANT_QUOTAS` (docs/tenants.md): a JSON
 * object of tenant → limits, where `*` applies to every tenant not named. None set: no limits (a
 * one-person set-up never meets a quota). The operator's own machines have none; the server's
 * capacity (`NULLSPACE_MAX_MACHINES`, `resource_exhausted`) still applies to everyone.
 */
export class TenantQuotas {
  constructor(private readonly byTenant: Readonly<Record<string, Quota>> = {}) {}

  /** The limits of `tenant` (its own entry, else `*`, else none). */
  of(tenant: string): Quota {
    return this.byTenant[tenant] ?? this.byTenant['*'] ?? {};
  }

  /**
   * Refuses with `quota_exceeded` (429) when one more machine of `adds`' sizes would take
   * `tenant`'s live machines over a limit; `details` name the limit, its value and the usage.
   */
  check(tenant: string, used: QuotaUsage, adds: Omit<QuotaUsage, 'machines'>): void {
    const quota = this.of(tenant);
    const after: QuotaUsage = {
      machines: used.machines + 1,
      vcpus: used.vcpus + adds.vcpus,
      memory_mb: used.memory_mb + adds.memory_mb,
      disk_mb: used.disk_mb + adds.disk_mb,
    };
    for (const limit of LIMITS) {
      const max = quota[limit];
      if (max === undefined || after[limit] <= max) continue;
      throw new CodedError(
        'quota_exceeded',
        `tenant ${tenant}'s quota of ${limit} is ${max}: its live machines hold ${used[limit]}, this machine would take it to ${after[limit]}`,
        { tenant, limit, max, used: used[limit], requested: after[limit] - used[limit] },
      );
    }
  }
}

/**
 * Parses `NULLSPACE_TENANT_QUOTAS`: `{"*": {"machines": 10}, "acme": {"vcpus": 16, ...}}`. Every
 * key a tenant name or `*`, every limit a known one and a non-negative integer; anything else
 * stops the server at start with what is wrong, rather than running without the intended limit.
 */
export function parseTenantQuotas(raw: string | undefined): Record<string, Quota> {
  if (raw === undefined || raw.trim() === '') return {};
  const fail = (why: string) =>
    new CodedError('invalid_argument', `NULLSPACE_TENANT_QUOTAS: ${why}`, {
      field: 'NULLSPACE_TENANT_QUOTAS',
    });
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw fail(`is not valid JSON (${(err as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw fail('must be a JSON object of tenant → limits');
  const out: Record<string, Quota> = {};
  for (const [tenant, limits] of Object.entries(parsed)) {
    if (tenant !== '*' && !TENANT_NAME.test(tenant)) throw fail(`"${tenant}" is not a tenant name or "*"`);
    if (typeof limits !== 'object' || limits === null || Array.isArray(limits))
      throw fail(`${tenant}: must be an object such as {"machines": 10, "vcpus": 16}`);
    const quota: Quota = {};
    for (const [limit, value] of Object.entries(limits)) {
      if (!(LIMITS as readonly string[]).includes(limit))
        throw fail(`${tenant}.${limit}: unknown limit; known: ${LIMITS.join(', ')}`);
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
        throw fail(`${tenant}.${limit}: must be a non-negative integer`);
      quota[limit as keyof Quota] = value;
    }
    out[tenant] = quota;
  }
  return out;
}
