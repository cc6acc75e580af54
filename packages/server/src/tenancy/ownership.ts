import {
  CodedError,
  ROUTE_PARAMS as P,
  ROUTES,
  type RouteId,
  type RouteSpec,
  type TSchema,
  isVolumeId,
} from '@nullspace/protocol';
import type { MachineStore } from '../store/machine-store.js';
import type { SnapshotStore } from '../store/snapshot-store.js';
import type { VolumeStore } from '../store/volume-store.js';
import type { Principal } from './keys.js';

/** The kinds of resources a tenant owns, and the route parameter schema that names each. */
export type OwnedKind = 'machine' | 'snapshot' | 'volume' | 'template' | 'warm_pool';

const KIND_OF_PARAM = new Map<TSchema, OwnedKind>([
  [P.id, 'machine'],
  [P.snap, 'snapshot'],
  [P.vol, 'volume'],
  [P.ref, 'template'],
  [P.pool, 'warm_pool'],
]);

/** What the ownership check reads: the stores, and the templates' and pools' own lookups. */
export interface OwnershipSources {
  machines: Pick<MachineStore, 'ownerOf'>;
  snapshots: Pick<SnapshotStore, 'ownerOf'>;
  volumes: Pick<VolumeStore, 'get' | 'byName'>;
  /** Whose template a reference names (undefined: none; null tenant: the operator's or shipped, shared). */
  templateOwner(ref: string): { tenant: string | null } | undefined;
  /** Whose warm pool an id names (undefined: none). */
  poolOwner(id: string): string | null | undefined;
}

/**
 * Which resource each path parameter of a route names: `owned` parameters are checked against the
 * caller's tenant; the others (a pid, an attachment, a grant ...) are looked up by the route's
 * service under the owned one of the same path (the machine), so checking that one covers them.
 * Throws for a route of the API key whose parameters name nothing owned, so a route added with a
 * new kind of id cannot go unchecked: the server does not start (and tenants.test.ts fails).
 */
export function ownedParams(id: RouteId, spec: RouteSpec = ROUTES[id]): { name: string; kind: OwnedKind }[] {
  const params = Object.entries(spec.params ?? {});
  const owned = params.flatMap(([name, schema]) => {
    const kind = KIND_OF_PARAM.get(schema);
    return kind ? [{ name, kind }] : [];
  });
  const auth = spec.auth ?? 'key';
  if (auth === 'key' && params.length > 0 && owned.length === 0)
    throw new Error(
      `route ${id} (${spec.method} ${spec.path}) has path parameters but none names an owned resource (tenancy/ownership.ts)`,
    );
  return owned;
}

/**
 * Tenants' isolation on every route (docs/tenants.md): before a handler runs, each id in the path
 * that names a machine, snapshot, volume, template or warm pool must be the caller's tenant's (a
 * template: or the operator's, which are shared); another tenant's answers exactly as an id that
 * does not exist (the same code and message), so a tenant cannot learn that it exists. The
 * operator's key passes unchecked. Ids in request bodies are checked the same way by the routes
 * that take them ({@link Ownership.require}).
 */
export class Ownership {
  constructor(private readonly o: OwnershipSources) {}

  /** Each route's owned parameters, worked out once (the table does not change at run time). */
  private readonly owned = new Map<RouteId, { name: string; kind: OwnedKind }[]>();

  /** Checks every owned parameter of `id` for `principal`; returns the params (a volume name → its id). */
  check(id: RouteId, params: Record<string, string>, principal: Principal): Record<string, string> {
    if (principal.tenant === null) return params;
    let owned = this.owned.get(id);
    if (owned === undefined) {
      owned = ownedParams(id);
      this.owned.set(id, owned);
    }
    if (owned.length === 0) return params;
    const out = { ...params };
    for (const { name, kind } of owned) {
      const value = params[name];
      if (value !== undefined) out[name] = this.require(kind, value, principal);
    }
    return out;
  }

  /**
   * `ref` of `kind`, checked for `principal` (the operator: anything); returns it, or for a volume
   * named by name, its id (names are per tenant). Throws the kind's own not-found error otherwise.
   */
  require(kind: OwnedKind, ref: string, principal: Principal): string {
    const tenant = principal.tenant;
    if (tenant === null) return ref;
    switch (kind) {
      case 'machine':
        if (this.o.machines.ownerOf(ref)?.tenant !== tenant)
          throw new CodedError('machine_not_found', `machine ${ref} not found`, { machine_id: ref });
        return ref;
      case 'snapshot':
        if (this.o.snapshots.ownerOf(ref)?.tenant !== tenant)
          throw new CodedError('snapshot_not_found', `snapshot ${ref} not found`, { snapshot_id: ref });
        return ref;
      case 'volume': {
        const v = isVolumeId(ref) ? this.o.volumes.get(ref) : this.o.volumes.byName(ref, tenant);
        if (v?.tenant !== tenant)
          throw new CodedError('volume_not_found', `volume ${ref} not found`, { volume: ref });
        return v.id;
      }
      case 'template': {
        const owner = this.o.templateOwner(ref);
        if (owner !== undefined && owner.tenant !== null && owner.tenant !== tenant)
          throw new CodedError('template_not_found', `template ${ref} not found`, { template: ref });
        return ref;
      }
      case 'warm_pool':
        if (this.o.poolOwner(ref) !== tenant)
          throw new CodedError('not_found', `warm pool ${ref} not found`, { warm_pool: ref });
        return ref;
    }
  }
}
