export * from './errors.js';
export * from './ids.js';
export * from './validate.js';
export * from './machine.js';
export * from './commands.js';
export * from './agent.js';
export * from './lifecycle.js';
export * from './stream.js';
