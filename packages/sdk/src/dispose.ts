/**
 * `await using` looks up `Symbol.asyncDispose` at run time. Node 20.4+ defines it; older
 * runtimes get the registered symbol Node itself uses, so `Machine` is disposable everywhere.
 * Imported for its side effect before any class uses the symbol as a method name.
 */
const symbolConstructor = Symbol as { asyncDispose?: symbol };
symbolConstructor.asyncDispose ??= Symbol.for('nodejs.asyncDispose');

export {};
