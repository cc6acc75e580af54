/** Preview URLs, proxy targets and SSH access. */
import {
  CreatePreviewGrantBodySchema,
  ListPreviewGrantsQuerySchema,
  ListPreviewGrantsResponseSchema,
  PreviewProxyTargetInfoSchema,
  PreviewReadinessSchema,
  PreviewRevocationSchema,
  PreviewUrlInfoSchema,
  WaitForPreviewBodySchema,
} from '../preview.js';
import { SshAccessBodySchema, SshAccessInfoSchema } from '../ssh.js';

import { BUSY, M, MACHINE, P, type RouteSpec } from './common.js';

/** Preview URLs, proxy targets and SSH access. */
function networkingRoutes() {
  const MPORT = { id: P.id, port: P.port };
  return {
    createPreviewUrl: {
      method: 'POST',
      path: '/v1/machines/{id}/preview_urls',
      tag: 'network',
      summary: 'A signed preview URL of a port (a new grant)',
      params: M,
      body: CreatePreviewGrantBodySchema,
      bodyRequired: true,
      response: PreviewUrlInfoSchema,
      status: 201,
      errors: [...MACHINE, 'invalid_state'],
    },
    listPreviewUrls: {
      method: 'GET',
      path: '/v1/machines/{id}/preview_urls',
      tag: 'network',
      summary: "A machine's preview grants (tokens not shown)",
      params: M,
      query: ListPreviewGrantsQuerySchema,
      response: ListPreviewGrantsResponseSchema,
      errors: MACHINE,
    },
    revokePreviewUrl: {
      method: 'DELETE',
      path: '/v1/machines/{id}/preview_urls/{grant}',
      tag: 'network',
      summary: 'Revoke a preview grant (its open connections close at once)',
      params: { id: P.id, grant: P.grant },
      response: PreviewRevocationSchema,
      errors: [...MACHINE, 'not_found'],
    },
    getHostInfo: {
      method: 'GET',
      path: '/v1/machines/{id}/ports/{port}/host',
      tag: 'network',
      summary: 'Host information of a port, with a fresh grant and its signed URLs',
      params: MPORT,
      response: PreviewUrlInfoSchema,
      errors: [...MACHINE, 'invalid_state'],
    },
    waitForPreview: {
      method: 'POST',
      path: '/v1/machines/{id}/ports/{port}/wait',
      tag: 'network',
      summary: 'Wait until a port answers (wakes a paused machine with auto_resume)',
      params: MPORT,
      body: WaitForPreviewBodySchema,
      response: PreviewReadinessSchema,
      errors: [...MACHINE, ...BUSY, 'timeout', 'unavailable'],
    },
    createPreviewProxyTarget: {
      method: 'POST',
      path: '/v1/machines/{id}/preview_proxy_targets',
      tag: 'network',
      summary: 'A target for a preview proxy you run (URL without a secret, header with it)',
      params: M,
      body: CreatePreviewGrantBodySchema,
      bodyRequired: true,
      response: PreviewProxyTargetInfoSchema,
      status: 201,
      errors: [...MACHINE, 'invalid_state'],
    },
    createSshAccess: {
      method: 'POST',
      path: '/v1/machines/{id}/ssh_access',
      tag: 'network',
      summary: 'A short-lived OpenSSH certificate for your public key, and where to connect',
      params: M,
      body: SshAccessBodySchema,
      bodyRequired: true,
      response: SshAccessInfoSchema,
      status: 201,
      errors: [...MACHINE, ...BUSY, 'unavailable'],
    },
  } as const satisfies Record<string, RouteSpec>;
}

export const NETWORKING_ROUTES = networkingRoutes();
