import { Console } from 'node:console';
// One JavaScript context of the code interpreter: a `vm` context kept for the life of this
// process. Requests come as JSON lines on stdin ({id, code, timeout_ms} or {reseed}); events go
// as JSON lines to the pipe named by NULLSPACE_EVENTS_FD: stdout, stderr, result, error, end.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import util from 'node:util';
import vm from 'node:vm';

const events = fs.createWriteStream('', { fd: Number(process.env.NULLSPACE_EVENTS_FD) });
let current = null;
const send = (msg) => events.write(`${JSON.stringify(msg)}\n`);

const writer = (type) =>
  new Writable({
    write(chunk, _enc, cb) {
      if (current) send({ id: current, type, text: chunk.toString() });
      else process[type].write(chunk);
      cb();
    },
  });

// Math.random of a context restored from a memory image would repeat its twin's: it is a
// xorshift128+ here, reseeded by the bridge with fresh bytes from the kernel.
const state = new BigUint64Array(2);
function seed(hex) {
  const b = Buffer.from(hex, 'hex');
  state[0] = b.readBigUInt64LE(0) | 1n;
  state[1] = b.readBigUInt64LE(8) | 2n;
}
seed(randomBytes(16).toString('hex'));
function random() {
  let s1 = state[0];
  const s0 = state[1];
  state[0] = s0;
  s1 ^= (s1 << 23n) & 0xffffffffffffffffn;
  s1 ^= s1 >> 17n;
  s1 ^= s0;
  s1 ^= s0 >> 26n;
  state[1] = s1;
  return Number((state[0] + state[1]) & 0x1fffffffffffffn) / 2 ** 53;
}

const require = createRequire('/opt/nullspace/js/node_modules/');
const sandbox = {
  console: new Console({ stdout: writer('stdout'), stderr: writer('stderr') }),
  require,
  process,
  Buffer,
  URL,
  URLSearchParams,
  TextEncoder,
  TextDecoder,
  setTimeout,
  clearTimeout,
  setInterval,
  clearInterval,
  setImmediate,
  clearImmediate,
  queueMicrotask,
  structuredClone,
  fetch: globalThis.fetch,
  AbortController,
};
sandbox.globalThis = sandbox;
const context = vm.createContext(sandbox);
vm.runInContext('Math', context).random = random;

function errorEvent(id, err) {
  const e = err instanceof Error || (err && typeof err === 'object' && 'stack' in err) ? err : null;
  return {
    id,
    type: 'error',
    name: e?.name ?? 'Error',
    value: e ? String(e.message) : util.inspect(err),
    traceback: e?.stack ? String(e.stack).split('\n') : [],
  };
}

function resultOf(value) {
  const out = { text: util.inspect(value, { depth: 4, colors: false }) };
  if (value !== null && typeof value === 'object') {
    try {
      out.json = JSON.parse(JSON.stringify(value));
    } catch {}
  }
  return out;
}

/**
 * A cell with a top-level `await` as the body of an async function, made to behave like a cell:
 * a declaration at the start of a line (`const x = …`) becomes an assignment to a global, so the
 * next cell sees it, and the last line, when it is an expression, is returned as the value.
 */
function asyncCell(code, filename) {
  const declaration = /^(\s*)(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=/gm;
  const globals = code.replace(declaration, '$1globalThis.$2 =');
  const lines = globals.trimEnd().split('\n');
  const last = (lines.pop() ?? '').replace(/;\s*$/, '');
  const lastOfCode = code.trimEnd().split('\n').pop() ?? '';
  try {
    // An assignment shows nothing, as in a notebook.
    if (new RegExp(declaration.source).test(lastOfCode)) throw new Error('a declaration');
    return new vm.Script(`(async () => {\n${lines.join('\n')}\nreturn (${last}\n);\n})()`, { filename });
  } catch {
    return new vm.Script(`(async () => {\n${globals}\n})()`, { filename });
  }
}

let count = 0;
async function run({ id, code, timeout_ms }) {
  current = id;
  count += 1;
  try {
    let script;
    try {
      script = new vm.Script(code, { filename: `cell${count}.js` });
    } catch (err) {
      // Top-level await: run it as the body of an async function.
      if (!(err instanceof SyntaxError) || !/await/.test(code)) throw err;
      script = asyncCell(code, `cell${count}.js`);
    }
    let value = script.runInContext(context, timeout_ms > 0 ? { timeout: timeout_ms } : {});
    if (value && typeof value.then === 'function') {
      let timer;
      const limit =
        timeout_ms > 0
          ? new Promise((_, reject) => {
              timer = setTimeout(
                () => reject(Object.assign(new Error('timed out'), { code: 'ERR_SCRIPT_EXECUTION_TIMEOUT' })),
                timeout_ms,
              );
            })
          : null;
      try {
        value = await (limit ? Promise.race([value, limit]) : value);
      } finally {
        clearTimeout(timer);
      }
    }
    if (value !== undefined) send({ id, type: 'result', ...resultOf(value) });
  } catch (err) {
    if (err && err.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT')
      send({
        id,
        type: 'error',
        name: 'TimeoutError',
        value: `execution exceeded its timeout of ${timeout_ms / 1000} s and was interrupted; the context is kept`,
        traceback: [],
      });
    else send(errorEvent(id, err));
  }
  // Let output written in this run's last tick reach the pipe first.
  await new Promise((r) => setImmediate(r));
  current = null;
  send({ id, type: 'end' });
}

let chain = Promise.resolve();
createInterface({ input: process.stdin }).on('line', (line) => {
  const msg = JSON.parse(line);
  if (msg.reseed) {
    seed(msg.reseed);
    Object.assign(process.env, msg.envs ?? {});
    return;
  }
  chain = chain.then(() => run(msg));
});
process.on('unhandledRejection', (err) => {
  process.stderr.write(`unhandled rejection: ${util.inspect(err)}\n`);
});
