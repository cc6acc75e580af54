/** The code interpreter: `/v1/machines/{id}/code/...`. */
import {
  AttachCodeQuerySchema,
  CodeContextSchema,
  CodeEventSchema,
  CreateCodeContextBodySchema,
  InstallCodeBodySchema,
  InstallEventSchema,
  ListCodeArtifactsResponseSchema,
  ListCodeContextsResponseSchema,
  RunCodeBodySchema,
} from '../code.js';
import { Type } from '../schema/kit.js';
import { AGENT, M, P, type RouteSpec, noBody } from './common.js';

const CTX = { id: P.id, ctx: Type.String({ description: 'Context id (`ctx_…` or `default-<language>`).' }) };
/** Besides the agent's errors: a machine whose template has no code interpreter is `invalid_state`. */
const CODE = [...AGENT] as const;

export const CODE_ROUTES = {
  createCodeContext: {
    method: 'POST',
    path: '/v1/machines/{id}/code/contexts',
    tag: 'code',
    summary: 'Create a code context (its own kernel, shell or JavaScript context)',
    params: M,
    body: CreateCodeContextBodySchema,
    response: CodeContextSchema,
    errors: CODE,
  },
  listCodeContexts: {
    method: 'GET',
    path: '/v1/machines/{id}/code/contexts',
    tag: 'code',
    summary: "The machine's code contexts",
    params: M,
    response: ListCodeContextsResponseSchema,
    errors: CODE,
  },
  deleteCodeContext: {
    method: 'DELETE',
    path: '/v1/machines/{id}/code/contexts/{ctx}',
    tag: 'code',
    summary: 'Delete a code context (its kernel or shell ends)',
    params: CTX,
    response: CodeContextSchema,
    errors: CODE,
  },
  restartCodeContext: {
    method: 'POST',
    path: '/v1/machines/{id}/code/contexts/{ctx}/restart',
    tag: 'code',
    summary: 'Restart a code context: a fresh kernel or shell, its state gone',
    params: CTX,
    body: noBody,
    response: CodeContextSchema,
    errors: CODE,
  },
  runCode: {
    method: 'POST',
    path: '/v1/machines/{id}/code/run',
    tag: 'code',
    summary: 'Run code in a context: NDJSON events (start, stdout, stderr, result, error, end) as they come',
    description:
      "Runs on one context are queued in order; different contexts run at once. The code's own errors " +
      'are an `error` event, never an HTTP error. A client that goes away can re-attach with ' +
      '`GET .../code/executions/{execution_id}`.',
    params: M,
    body: RunCodeBodySchema,
    bodyRequired: true,
    kind: 'ndjson',
    response: CodeEventSchema,
    errors: CODE,
  },
  attachCodeExecution: {
    method: 'GET',
    path: '/v1/machines/{id}/code/executions/{execution}',
    tag: 'code',
    summary: 'Re-attach to a run: its events after `after`, then the rest as they come',
    params: { id: P.id, execution: Type.String({ description: 'Execution id (`cex_…`).' }) },
    query: AttachCodeQuerySchema,
    kind: 'ndjson',
    response: CodeEventSchema,
    errors: CODE,
  },
  installCodePackages: {
    method: 'POST',
    path: '/v1/machines/{id}/code/install',
    tag: 'code',
    summary: "Install packages for the code contexts (pip into the kernels' venv, or npm): the log as NDJSON",
    params: M,
    body: InstallCodeBodySchema,
    bodyRequired: true,
    kind: 'ndjson',
    response: InstallEventSchema,
    errors: CODE,
  },
  listCodeArtifacts: {
    method: 'GET',
    path: '/v1/machines/{id}/code/artifacts',
    tag: 'code',
    summary: 'Artifacts: images and PDFs runs displayed, and files written under the artifacts directory',
    params: M,
    response: ListCodeArtifactsResponseSchema,
    errors: CODE,
  },
  downloadCodeArtifact: {
    method: 'GET',
    path: '/v1/machines/{id}/code/artifacts/{artifact}',
    tag: 'code',
    summary: "An artifact's bytes",
    params: { id: P.id, artifact: Type.String({ description: 'Artifact id (`art_…`).' }) },
    kind: 'bytes',
    errors: CODE,
  },
} as const satisfies Record<string, RouteSpec>;
