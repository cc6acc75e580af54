/**
 * Tenants and their API keys (docs/tenants.md). The operator's key (`NULLSPACE_API_KEY`, or the
 * one the server generated) sees everything and alone manages keys; every other key belongs to a
 * tenant, which sees and touches only its own machines, snapshots, templates (and the operator's,
 * which are shared), volumes and warm pools.
 */
import { invalidArgument } from './errors.js';
import { check } from './schema/check.js';
import { DateTime, Nullable, Pattern, type Static, Strict, Type, named } from './schema/kit.js';

/**
 * A tenant: 1-63 of a-z, 0-9, `_`, `-`, starting with a letter or digit. It is also the first
 * segment of the names of the tenant's templates (`acme/app:stable`), so it is a valid template
 * name segment, without `.` (which would make `acme.x` and `acme` look related).
 */
export const TENANT_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export const KEY_LIMITS = {
  nameLength: 100,
} as const;

export const CreateKeyBodySchema = named(
  'CreateApiKeyRequest',
  Strict({
    tenant: Pattern(TENANT_NAME, 'must be 1-63 of a-z, 0-9, "_" and "-", starting with a letter or digit', {
      maxLength: 63,
      description: 'The tenant the key acts for: 1-63 of a-z, 0-9, `_`, `-`.',
    }),
    name: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: KEY_LIMITS.nameLength,
        description: 'A label for people (who or what uses the key); not unique.',
      }),
    ),
  }),
);
export type CreateKeyRequest = { tenant: string; name: string | null };

/** A key as listed: never the key itself, only its last characters. */
export const ApiKeyInfoSchema = named(
  'ApiKey',
  Type.Object({
    id: Type.String({ description: '`key_...`' }),
    tenant: Type.String(),
    name: Nullable(Type.String()),
    hint: Type.String({ description: "The key's last 4 characters, to tell keys apart." }),
    created_at: DateTime(),
  }),
);
export type ApiKeyInfo = Static<typeof ApiKeyInfoSchema>;

/** `POST /v1/keys`: the key, shown this once (the server keeps only its SHA-256). */
export const CreatedApiKeySchema = named(
  'CreatedApiKey',
  Type.Object({
    id: Type.String({ description: '`key_...`' }),
    key: Type.String({ description: 'The key (`ns_` + 32 characters). Shown only in this answer.' }),
    tenant: Type.String(),
    name: Nullable(Type.String()),
    created_at: DateTime(),
  }),
);
export type CreatedApiKey = Static<typeof CreatedApiKeySchema>;

export const ListKeysResponseSchema = named(
  'ListApiKeysResponse',
  Type.Object({ items: Type.Array(ApiKeyInfoSchema, { description: 'Keys not revoked, oldest first.' }) }),
);
export type ListKeysResponse = Static<typeof ListKeysResponseSchema>;

export function parseCreateKey(body: unknown): CreateKeyRequest {
  const b = check(CreateKeyBodySchema, body ?? {});
  if (b.name !== undefined && b.name.trim() === '') throw invalidArgument('name', 'must not be blank');
  return { tenant: b.tenant, name: b.name ?? null };
}
