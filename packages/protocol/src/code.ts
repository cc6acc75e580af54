/**
 * The code interpreter: notebook-style contexts (python on a Jupyter kernel, javascript in a
 * Node.js `vm` context, bash in a persistent shell) kept by a bridge process inside machines of
 * the `code-interpreter` template, and the runs, installs and artifacts on them.
 */
import { invalidArgument } from './errors.js';
import { EnvsSchema } from './machine.js';
import { check, queryValues } from './schema/check.js';
import { DateTime, Nullable, Pattern, type Static, Strict, StringEnum, Type, named } from './schema/kit.js';
import { ABSOLUTE_PATH } from './validate.js';

export const CODE_LANGUAGES = ['python', 'javascript', 'bash'] as const;
export type CodeLanguage = (typeof CODE_LANGUAGES)[number];

export const CODE_LIMITS = {
  /** Characters of code in one run. */
  codeLength: 1024 * 1024,
  /** Seconds a run may take before it is interrupted (0: no limit). */
  timeout: { max: 24 * 3600, default: 300 },
  packages: 256,
  requirementsLength: 256 * 1024,
} as const;

/** A context id: `ctx_` and 16 hex digits, or the default context of a language. */
export const CODE_CONTEXT_ID = /^(ctx_[0-9a-f]{16}|default-(python|javascript|bash))$/;
export const CODE_EXECUTION_ID = /^cex_[0-9a-f]{16}$/;
export const CODE_ARTIFACT_ID = /^art_[0-9a-f]{20}$/;

export * from './code-core.js';

const LANGUAGE = StringEnum(CODE_LANGUAGES, {
  default: 'python',
  description: 'python (a Jupyter kernel), javascript (a Node.js vm context) or bash (a persistent shell).',
});
const CONTEXT_ID_ERROR = 'must be a context id (ctx_… or default-<language>)';

export const CreateCodeContextBodySchema = named(
  'CreateCodeContextRequest',
  Strict({
    language: Type.Optional(LANGUAGE),
    cwd: Type.Optional(
      Pattern(ABSOLUTE_PATH, 'must be an absolute path', {
        maxLength: 4096,
        description: "The context's working directory (default: the machine's cwd).",
      }),
    ),
    envs: Type.Optional(EnvsSchema),
  }),
);
export interface CreateCodeContextRequest {
  language: CodeLanguage;
  cwd?: string;
  envs: Record<string, string>;
}

export const CodeContextSchema = named(
  'CodeContext',
  Type.Object({
    id: Type.String({ description: '`ctx_…`, or `default-<language>` for the default context.' }),
    language: StringEnum(CODE_LANGUAGES),
    cwd: Type.String(),
    default: Type.Boolean({ description: 'The context a run without `context` uses for its language.' }),
    created_at: DateTime(),
    execution_count: Type.Integer({ description: 'Runs that completed on it since its (re)start.' }),
  }),
);
export type CodeContext = Static<typeof CodeContextSchema>;
export const ListCodeContextsResponseSchema = Type.Object({ contexts: Type.Array(CodeContextSchema) });

export const RunCodeBodySchema = named(
  'RunCodeRequest',
  Strict({
    code: Type.String({ maxLength: CODE_LIMITS.codeLength, description: 'The code to run.' }),
    language: Type.Optional(LANGUAGE),
    context: Type.Optional(
      Pattern(CODE_CONTEXT_ID, CONTEXT_ID_ERROR, {
        description: "The context to run in (default: the language's default context).",
      }),
    ),
    timeout: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: CODE_LIMITS.timeout.max,
        default: CODE_LIMITS.timeout.default,
        description:
          'Seconds; past it the run is interrupted and ends with a TimeoutError (the context and its ' +
          'variables are kept). 0: no limit.',
      }),
    ),
  }),
);
export interface RunCodeRequest {
  code: string;
  /** Absent with a context: the context's language. */
  language?: CodeLanguage;
  context?: string;
  timeout: number;
}

const TEXT = (d: string) => Type.Optional(Type.String({ description: d }));

/** One result of a run: what the kernel displayed, in every format it carried. */
export const CodeResultSchema = named(
  'CodeResult',
  Type.Object({
    type: Type.Literal('result'),
    is_main_result: Type.Boolean({ description: "The cell's value (not a display call)." }),
    text: TEXT('text/plain'),
    html: TEXT('text/html'),
    markdown: TEXT('text/markdown'),
    png: TEXT('image/png, base64'),
    jpeg: TEXT('image/jpeg, base64'),
    svg: TEXT('image/svg+xml'),
    pdf: TEXT('application/pdf, base64'),
    json: Type.Optional(Type.Unknown({ description: 'application/json' })),
    latex: TEXT('text/latex'),
    javascript: TEXT('application/javascript'),
    extra: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), {
        description: 'Other MIME types, as the kernel sent them.',
      }),
    ),
    artifact_ids: Type.Optional(
      Type.Array(Type.String(), { description: 'The artifacts its images and PDFs were saved as.' }),
    ),
  }),
);
export type CodeResult = Static<typeof CodeResultSchema>;

export const CodeErrorSchema = named(
  'CodeError',
  Type.Object({
    type: Type.Literal('error'),
    name: Type.String({ description: 'e.g. ZeroDivisionError, TimeoutError, KernelDied, ExitStatus.' }),
    value: Type.String(),
    traceback: Type.Array(Type.String()),
  }),
);

/** One line of a run's NDJSON stream. */
export const CodeEventSchema = named(
  'CodeEvent',
  Type.Union([
    Type.Object({
      type: Type.Literal('start'),
      execution_id: Type.String({ description: 'Re-attach with GET .../code/executions/{execution_id}.' }),
      context_id: Type.String(),
      language: StringEnum(CODE_LANGUAGES),
    }),
    Type.Object({ type: Type.Literal('stdout'), text: Type.String() }),
    Type.Object({ type: Type.Literal('stderr'), text: Type.String() }),
    CodeResultSchema,
    CodeErrorSchema,
    Type.Object({
      type: Type.Literal('end'),
      execution_count: Nullable(Type.Integer()),
      duration_ms: Type.Number(),
      exit_code: Type.Optional(Type.Integer({ description: 'bash: the exit status of the code.' })),
    }),
    Type.Object({
      type: Type.Literal('interrupted'),
      reason: Type.String({ description: 'The stream was cut (the machine paused…): re-attach later.' }),
    }),
  ]),
);
export type CodeEvent = Static<typeof CodeEventSchema>;

export const AttachCodeQuerySchema = Type.Object({
  after: Type.Optional(
    Type.Integer({
      minimum: 0,
      default: 0,
      description: 'Events already received: the stream resumes after them.',
    }),
  ),
});

export const InstallCodeBodySchema = named(
  'InstallCodePackagesRequest',
  Strict({
    packages: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), {
        maxItems: CODE_LIMITS.packages,
        description: 'Package specifiers or paths of local wheels / tarballs in the machine.',
      }),
    ),
    requirements: Type.Optional(
      Type.String({
        maxLength: CODE_LIMITS.requirementsLength,
        description: 'python: the text of a requirements file.',
      }),
    ),
    language: Type.Optional(
      StringEnum(['python', 'javascript'] as const, {
        default: 'python',
        description: 'python: pip into the venv the kernels use; javascript: npm.',
      }),
    ),
    no_index: Type.Optional(
      Type.Boolean({
        default: false,
        description: 'python: do not reach a package index (local files only).',
      }),
    ),
  }),
);
export interface InstallCodeRequest {
  packages: string[];
  requirements?: string;
  language: 'python' | 'javascript';
  no_index: boolean;
}

/** One line of an install's NDJSON stream. */
export const InstallEventSchema = named(
  'InstallEvent',
  Type.Union([
    Type.Object({ type: Type.Literal('stdout'), text: Type.String() }),
    Type.Object({ type: Type.Literal('stderr'), text: Type.String() }),
    Type.Object({
      type: Type.Literal('error'),
      name: Type.String(),
      value: Type.String({ description: "The installer's own message." }),
      exit_code: Type.Optional(Type.Integer()),
    }),
    Type.Object({ type: Type.Literal('end'), exit_code: Type.Integer(), duration_ms: Type.Number() }),
  ]),
);
export type InstallEvent = Static<typeof InstallEventSchema>;

export const CodeArtifactSchema = named(
  'CodeArtifact',
  Type.Object({
    id: Type.String({ description: '`art_…`' }),
    name: Type.String({ description: 'Its path under the artifacts directory.' }),
    path: Type.String({
      description: 'Its absolute path in the machine (for the files API and signed URLs).',
    }),
    mime_type: Type.String(),
    size: Type.Integer(),
    execution_id: Nullable(Type.String(), { description: 'The run that made it, when known.' }),
    created_at: DateTime(),
  }),
);
export type CodeArtifact = Static<typeof CodeArtifactSchema>;
export const ListCodeArtifactsResponseSchema = Type.Object({ artifacts: Type.Array(CodeArtifactSchema) });

export function parseCreateCodeContext(body: unknown): CreateCodeContextRequest {
  const b = check(CreateCodeContextBodySchema, body ?? {});
  return {
    language: b.language ?? 'python',
    envs: b.envs ?? {},
    ...(b.cwd !== undefined ? { cwd: b.cwd } : {}),
  };
}

export function parseRunCode(body: unknown): RunCodeRequest {
  const b = check(RunCodeBodySchema, body);
  return {
    code: b.code,
    timeout: b.timeout ?? CODE_LIMITS.timeout.default,
    ...(b.language !== undefined ? { language: b.language } : {}),
    ...(b.context !== undefined ? { context: b.context } : {}),
  };
}

export function parseInstallCode(body: unknown): InstallCodeRequest {
  const b = check(InstallCodeBodySchema, body);
  const language = b.language ?? 'python';
  const packages = b.packages ?? [];
  if (packages.length === 0 && !b.requirements)
    throw invalidArgument('packages', 'name at least one package (or give requirements)');
  if (b.requirements !== undefined && language !== 'python')
    throw invalidArgument('requirements', 'is for python only');
  for (const [i, p] of packages.entries())
    if (p.startsWith('-')) throw invalidArgument(`packages[${i}]`, 'must be a package, not an option');
  return {
    packages,
    language,
    no_index: b.no_index ?? false,
    ...(b.requirements !== undefined ? { requirements: b.requirements } : {}),
  };
}

export function parseCodeContextId(raw: string): string {
  if (!CODE_CONTEXT_ID.test(raw)) throw invalidArgument('context', CONTEXT_ID_ERROR);
  return raw;
}

export function parseCodeExecutionId(raw: string): string {
  if (!CODE_EXECUTION_ID.test(raw)) throw invalidArgument('execution', 'must be an execution id (cex_…)');
  return raw;
}

export function parseCodeArtifactId(raw: string): string {
  if (!CODE_ARTIFACT_ID.test(raw)) throw invalidArgument('artifact', 'must be an artifact id (art_…)');
  return raw;
}

export function parseAttachCodeQuery(params: URLSearchParams): { after: number } {
  const v = check(AttachCodeQuerySchema, queryValues(params, AttachCodeQuerySchema));
  return { after: v.after ?? 0 };
}
