/** Flags derived from the contract's schemas: their help carries the schema's description, default, choices and limits. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CreateMachineBodySchema, MACHINE_LIMITS, TemplateSpecBodySchema } from '@nullspace/protocol';
import { choices, fieldSchema, schemaFlags } from './schema-flags.js';

describe('schemaFlags', () => {
  const { options, help } = schemaFlags(CreateMachineBodySchema, [
    { field: 'memory_mb' },
    { field: 'on_timeout', metavar: 'ACTION' },
    { field: 'auto_resume' },
    { field: 'envs', name: 'env', metavar: 'KEY=VALUE' },
  ]);

  it('gives each field a flag: booleans switch, maps and arrays repeat, the rest take a value', () => {
    assert.deepEqual(options, {
      'memory-mb': { type: 'string' },
      'on-timeout': { type: 'string' },
      'auto-resume': { type: 'boolean' },
      env: { type: 'string', multiple: true },
    });
  });

  it("writes the help from the field's schema: what it is, its default, choices and limits", () => {
    const m = MACHINE_LIMITS.memory_mb;
    const lines = help.split('\n');
    assert.match(
      lines[0] ?? '',
      new RegExp(`^  --memory-mb N +memory in MB \\(default: ${m.default}; ${m.min} to ${m.max}\\)$`),
    );
    assert.match(
      help.replace(/\n +/g, ' '),
      /--on-timeout ACTION +what happens at the timeout \(one of kill, pause, hibernate; default: kill\)/,
    );
    assert.match(help, /--env KEY=VALUE +environment variables of every command \(repeatable\)/);
    for (const line of lines) assert.ok(line.length <= 100, line);
  });

  it('reads nested fields, and the choices of an enum', () => {
    assert.equal(fieldSchema(TemplateSpecBodySchema, 'ready_check.timeout_ms').type, 'integer');
    assert.deepEqual(choices(CreateMachineBodySchema, 'warm_pool_mode'), ['prefer', 'require', 'bypass']);
    assert.throws(() => fieldSchema(CreateMachineBodySchema, 'no_such_field'), /no field/);
  });
});
