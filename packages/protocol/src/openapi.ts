/**
 * The OpenAPI 3.1 document of the API, generated from the route table and the schemas: nothing
 * in it is written by hand. The server serves it at `GET /v1/openapi.json`; `docs/openapi.json` is
 * the same document checked in (`npm run openapi` rewrites it; a test fails when it is stale).
 */
import { ERROR_STATUS, ErrorBodySchema, type ErrorCode } from './errors.js';
import { ROUTES, type RouteSpec } from './routes.js';
import { SCHEMA_NAME, type TSchema } from './schema/kit.js';
import { STREAM_CONTENT_TYPE } from './stream.js';

type Json = Record<string, unknown>;

/** A schema as JSON, with every named schema inside it replaced by a `$ref` (collected in `named`). */
function toJson(schema: unknown, named: Map<string, unknown>, root = true): unknown {
  if (Array.isArray(schema)) return schema.map((s) => toJson(s, named, false));
  if (typeof schema !== 'object' || schema === null) return schema;
  const name = (schema as { [SCHEMA_NAME]?: string })[SCHEMA_NAME];
  if (name !== undefined && !root) {
    if (!named.has(name)) {
      named.set(name, null); // placeholder: a schema that holds itself stops here
      named.set(name, toJson(schema, named, true));
    }
    return { $ref: `#/components/schemas/${name}` };
  }
  const out: Json = {};
  for (const [key, value] of Object.entries(schema)) out[key] = toJson(value, named, false);
  return out;
}

/** A schema for use in an operation: a `$ref` when it is named, else inline. */
function ref(schema: TSchema, named: Map<string, unknown>): unknown {
  return toJson(schema, named, false);
}

/** Responses by status, one per status code: `#/components/responses/E404` says which codes. */
function errorResponses(codes: readonly ErrorCode[]): Json {
  const statuses = [...new Set(codes.map((c) => ERROR_STATUS[c]))].sort((x, y) => x - y);
  return Object.fromEntries(statuses.map((st) => [String(st), { $ref: `#/components/responses/E${st}` }]));
}

function errorComponents(): Json {
  const byStatus = new Map<number, string[]>();
  for (const [code, status] of Object.entries(ERROR_STATUS))
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  const out: Json = {};
  for (const [status, list] of [...byStatus].sort((x, y) => x[0] - y[0]))
    out[`E${status}`] = {
      description: `An error: ${list.join(', ')} (the operation's x-error-codes says which it may answer).`,
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
  return out;
}

function operation(id: string, r: RouteSpec, named: Map<string, unknown>): Json {
  const auth = r.auth ?? 'key';
  const codes = new Set<ErrorCode>([...r.errors, 'internal']);
  if (auth === 'key' || auth === 'operator') codes.add('unauthenticated');
  if (auth === 'operator') codes.add('permission_denied');
  if (r.query || r.body || r.params) codes.add('invalid_argument');
  if (r.body || r.bodyBytes) codes.add('payload_too_large');
  const parameters: Json[] = [];
  for (const [name, schema] of Object.entries(r.params ?? {}))
    parameters.push({ name, in: 'path', required: true, schema: ref(schema, named) });
  const query = r.query as unknown as
    | { properties?: Record<string, TSchema>; required?: string[] }
    | undefined;
  for (const [name, schema] of Object.entries(query?.properties ?? {})) {
    const p: Json = { name, in: 'query', required: query?.required?.includes(name) ?? false };
    const description = (schema as { description?: string }).description;
    if (description !== undefined) p.description = description;
    p.schema = ref(schema, named);
    if ((schema as { type?: string }).type === 'array') Object.assign(p, { style: 'form', explode: true });
    parameters.push(p);
  }
  const op: Json = { operationId: id, summary: r.summary };
  if (r.description !== undefined) op.description = r.description;
  op.tags = [r.tag];
  if (auth !== 'key' && auth !== 'operator') op.security = [];
  if (auth === 'operator') op['x-operator-only'] = true;
  if (parameters.length > 0) op.parameters = parameters;
  if (r.body)
    op.requestBody = {
      required: r.bodyRequired ?? false,
      content: { 'application/json': { schema: ref(r.body, named) } },
    };
  else if (r.bodyBytes)
    op.requestBody = {
      required: true,
      content: {
        'application/octet-stream': {
          schema: { type: 'string', contentMediaType: 'application/octet-stream' },
        },
      },
    };
  const success: Json = {};
  const kind = r.kind ?? 'json';
  if (kind === 'websocket') {
    success['101'] = {
      description: 'Switching Protocols: a WebSocket (send `Connection: Upgrade`, `Upgrade: websocket`).',
      ...(r.response ? { 'x-websocket-message': ref(r.response, named) } : {}),
    };
  } else {
    const content: Json = {};
    if (kind === 'json' && r.response) content['application/json'] = { schema: ref(r.response, named) };
    if (kind === 'ndjson' && r.response)
      content['application/x-ndjson'] = {
        schema: { type: 'string', description: 'One JSON object per line.' },
        'x-ndjson-item': ref(r.response, named),
      };
    if (kind === 'bytes')
      content['application/octet-stream'] = {
        schema: { type: 'string', contentMediaType: 'application/octet-stream' },
      };
    if (kind === 'text') content['text/plain'] = { schema: { type: 'string' } };
    if (r.frameStream)
      content[STREAM_CONTENT_TYPE] = {
        schema: { type: 'string', contentMediaType: STREAM_CONTENT_TYPE, description: 'Frames of output.' },
      };
    success[String(r.status ?? 200)] = { description: r.summary, content };
  }
  op.responses = { ...success, ...errorResponses([...codes]) };
  op['x-error-codes'] = [...codes].sort();
  return op;
}

/** The version of the API the document describes. */
export const API_VERSION = '0.1.0';

/** The whole document. */
export function openApiDocument(version = API_VERSION): Json {
  const named = new Map<string, unknown>();
  ref(ErrorBodySchema, named);
  const paths: Record<string, Json> = {};
  for (const [id, route] of Object.entries(ROUTES) as [string, RouteSpec][]) {
    paths[route.path] = { ...paths[route.path], [route.method.toLowerCase()]: operation(id, route, named) };
  }
  const schemas: Json = {};
  for (const name of [...named.keys()].sort()) schemas[name] = named.get(name);
  return {
    openapi: '3.1.0',
    info: {
      title: 'Nullspace API',
      version,
      description:
        'Machines: isolated Linux environments driven over HTTP. JSON bodies with snake_case fields; ' +
        'in a request, null is the same as leaving a field out. Every response carries x-request-id; ' +
        'errors are {"error": {code, message, details?, request_id}} with one HTTP status per code.',
    },
    servers: [{ url: 'http://127.0.0.1:7070' }],
    security: [{ bearer: [] }, { apiKey: [] }],
    tags: [...new Set(Object.values(ROUTES).map((r) => r.tag))].map((name) => ({ name })),
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'Authorization: Bearer <API key>' },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
      },
      responses: errorComponents(),
      schemas,
    },
  };
}
