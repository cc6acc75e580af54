import { parseSshAccess } from '@nullspace/protocol';
import type { SshAccessService } from '../services/ssh-access.js';
import type { Router } from './router.js';

/** `POST /v1/machines/{id}/ssh_access`: a short-lived certificate and the relay to use it on. */
export function addSshRoutes(router: Router, ssh: SshAccessService): void {
  router.on('createSshAccess', async (ctx) => ({
    status: 201,
    body: await ssh.create(ctx.params.id ?? '', parseSshAccess(await ctx.body())),
  }));
}
