import { ERROR_STATUS, type ErrorCode } from './errors-core.js';
import { FreeMap, type Static, StringEnum, Type, named } from './schema/kit.js';

export * from './errors-core.js';

/** The JSON body of every error response. */
export const ErrorBodySchema = named(
  'Error',
  Type.Object({
    error: Type.Object({
      code: StringEnum(Object.keys(ERROR_STATUS) as ErrorCode[], {
        description: 'Stable code; each has one HTTP status (docs/errors.md).',
      }),
      message: Type.String(),
      details: Type.Optional(
        FreeMap({ description: 'e.g. `field` (invalid_argument), `machine_id`, `retry_after`.' }),
      ),
      request_id: Type.Optional(Type.String({ description: 'The `x-request-id` of the request.' })),
    }),
  }),
);
export type ErrorBody = Static<typeof ErrorBodySchema>;
