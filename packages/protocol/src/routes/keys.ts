/** API keys of tenants: the operator's key alone manages them (docs/tenants.md). */
import {
  ApiKeyInfoSchema,
  CreateKeyBodySchema,
  CreatedApiKeySchema,
  ListKeysResponseSchema,
} from '../keys.js';
import { P, type RouteSpec } from './common.js';

export const KEY_ROUTES = {
  createKey: {
    method: 'POST',
    path: '/v1/keys',
    tag: 'keys',
    auth: 'operator',
    summary: "Create a tenant's API key (the key is in this answer only)",
    body: CreateKeyBodySchema,
    bodyRequired: true,
    response: CreatedApiKeySchema,
    status: 201,
    errors: ['invalid_argument'],
  },
  listKeys: {
    method: 'GET',
    path: '/v1/keys',
    tag: 'keys',
    auth: 'operator',
    summary: "List tenants' API keys (never the keys themselves)",
    response: ListKeysResponseSchema,
    errors: ['invalid_argument'],
  },
  revokeKey: {
    method: 'DELETE',
    path: '/v1/keys/{id}',
    tag: 'keys',
    auth: 'operator',
    summary: 'Revoke an API key: refused at once, its open streams and WebSockets closed',
    params: { id: P.key },
    response: ApiKeyInfoSchema,
    errors: ['not_found'],
  },
} as const satisfies Record<string, RouteSpec>;
