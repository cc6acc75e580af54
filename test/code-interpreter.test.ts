/**
 * The code interpreter in real machines of the `code-interpreter` template, through the real SDK
 * over HTTP (bad input over raw HTTP): state across runs and contexts, live streams, errors as
 * data, charts as PNG and artifacts, timeouts, JavaScript and bash, an offline wheel install,
 * state through pause, hibernate, fork and snapshots with fresh random numbers in each copy,
 * re-attach, parallel contexts, and a kernel that dies.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { before, it } from 'node:test';
import { Machine } from '@nullspace/sdk';
import { TEMPLATES_DIR, api, cli, describeWithServer } from './harness.js';

const TEMPLATE = 'code-interpreter';
const built = existsSync(join(TEMPLATES_DIR, TEMPLATE, 'template.json'));
if (!built && process.env.CI)
  throw new Error(`code interpreter: no ${TEMPLATE} template; run scripts/setup.sh`);

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

async function expectCode(p: Promise<unknown>, status: number, code: string, field?: RegExp): Promise<void> {
  await assert.rejects(p, (err: { status?: number; code?: string; message?: string }) => {
    assert.equal(err.status, status, err.message);
    assert.equal(err.code, code, err.message);
    if (field) assert.match(err.message ?? '', field);
    return true;
  });
}

describeWithServer('code interpreter', (ctx) => {
  if (!built) {
    it(`skipped: no ${TEMPLATE} template in ${TEMPLATES_DIR} (scripts/setup.sh builds it)`, { skip: true });
    return;
  }
  // One machine for these tests (the server's teardown kills it).
  let m: Machine;
  before(async () => {
    m = await Machine.create({ ...ctx.server.conn, template: TEMPLATE, memoryMb: 1024 });
  });

  it('keeps variables across runs; the value is the main result', async () => {
    const first = await m.codeInterpreter.run('x = 6 * 7');
    assert.equal(first.error, undefined);
    assert.equal(first.results.length, 0);
    const second = await m.codeInterpreter.run('x');
    assert.equal(second.text, '42');
    assert.equal(second.contextId, 'default-python');
    assert.ok((second.executionCount ?? 0) > (first.executionCount ?? 0));
    assert.match(second.id, /^cex_[0-9a-f]{16}$/);
  });

  it('keeps two contexts apart', async () => {
    const a = await m.codeInterpreter.createContext({ language: 'python' });
    const b = await m.codeInterpreter.createContext();
    await m.codeInterpreter.run('v = "a"', { context: a });
    await m.codeInterpreter.run('v = "b"', { context: b.id });
    assert.equal((await m.codeInterpreter.run('v', { context: a })).text, "'a'");
    assert.equal((await m.codeInterpreter.run('v', { context: b })).text, "'b'");
    const listed = (await m.codeInterpreter.listContexts()).map((c) => c.id);
    assert.ok(listed.includes(a.id) && listed.includes(b.id) && listed.includes('default-python'));
    assert.ok(a.createdAt instanceof Date);
    await m.codeInterpreter.deleteContext(a);
    await m.codeInterpreter.deleteContext(b);
    assert.ok(!(await m.codeInterpreter.listContexts()).some((c) => c.id === a.id));
  });

  it('starts a default context once for runs that come at once', async () => {
    const runs = await Promise.all(
      [1, 2, 3].map((i) => m.codeInterpreter.run(`echo ${i}`, { language: 'bash' })),
    );
    assert.deepEqual(
      runs.map((r) => r.logs.stdout.join('')),
      ['1\n', '2\n', '3\n'],
    );
    assert.deepEqual(
      (await m.codeInterpreter.listContexts()).filter((c) => c.language === 'bash').map((c) => c.id),
      ['default-bash'],
    );
    const shells = await m.commands.run("pgrep -fc '^bash --noprofile --norc$'");
    assert.equal(shells.stdout.trim(), '1', 'one shell, none left over');
  });

  it('streams stdout and stderr apart, live: the first line arrives before the run ends', async () => {
    const order: string[] = [];
    const ex = await m.codeInterpreter.run(
      [
        'import os, sys, time',
        'print("first", flush=True)',
        'print("oops", file=sys.stderr, flush=True)',
        // The run goes on only once the client has seen the first line (it writes this file then).
        'while not os.path.exists("/tmp/seen-first"): time.sleep(0.01)',
        'print("second")',
      ].join('\n'),
      {
        timeoutMs: 60_000,
        onStdout: (t) => {
          order.push(`out:${t.trim()}`);
          if (t.includes('first')) void m.files.write('/tmp/seen-first', 'yes');
        },
        onStderr: (t) => order.push(`err:${t.trim()}`),
      },
    );
    assert.equal(ex.error, undefined, 'the run ended by itself (it saw the file the client wrote)');
    assert.deepEqual(ex.logs.stdout.join(''), 'first\nsecond\n');
    assert.deepEqual(ex.logs.stderr.join(''), 'oops\n');
    assert.ok(order.indexOf('out:first') < order.indexOf('out:second'));
  });

  it('reports 1/0 as ZeroDivisionError in error, and the next run works', async () => {
    const ex = await m.codeInterpreter.run('1/0');
    assert.equal(ex.error?.name, 'ZeroDivisionError');
    assert.match(ex.error?.value ?? '', /division by zero/);
    assert.ok((ex.error?.traceback.length ?? 0) > 0);
    assert.equal((await m.codeInterpreter.run('2 + 2')).text, '4');
  });

  it('returns a matplotlib chart as PNG bytes and as an artifact', async () => {
    const ex = await m.codeInterpreter.run(
      'import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.title("squares")\nplt.show()',
    );
    assert.equal(ex.error, undefined, ex.error?.value);
    const chart = ex.results.find((r) => r.png !== undefined);
    assert.ok(chart, 'a result carries a PNG');
    const bytes = Buffer.from(chart.png ?? '', 'base64');
    assert.deepEqual(bytes.subarray(0, 8), PNG);
    const artifacts = await m.codeInterpreter.listArtifacts();
    const art = artifacts.find((a) => a.executionId === ex.id && a.mimeType === 'image/png');
    assert.ok(art, `an artifact of run ${ex.id}: ${JSON.stringify(artifacts)}`);
    assert.deepEqual(chart.artifactIds, [art.id]);
    assert.equal(art.size, bytes.length);
    assert.deepEqual(await m.codeInterpreter.downloadArtifact(art), bytes);
    // A file the code writes under the artifacts directory is one too, downloadable by signed URL.
    const csv = await m.codeInterpreter.run(
      'import os\nopen(os.path.join(os.environ["NULLSPACE_ARTIFACTS_DIR"], "table.csv"), "w").write("a,b\\n1,2\\n")',
    );
    const table = (await m.codeInterpreter.listArtifacts()).find((a) => a.name === 'table.csv');
    assert.equal(table?.executionId, csv.id);
    assert.equal(table?.mimeType, 'text/csv');
    const url = await m.codeInterpreter.artifactUrl(table);
    assert.equal(await (await fetch(url)).text(), 'a,b\n1,2\n');
  });

  it('interrupts a run past its timeout with a TimeoutError and keeps the context', async () => {
    await m.codeInterpreter.run('kept = "still here"');
    const ex = await m.codeInterpreter.run('import time\nwhile True: time.sleep(0.05)', { timeoutMs: 1000 });
    assert.equal(ex.error?.name, 'TimeoutError');
    assert.equal((await m.codeInterpreter.run('kept')).text, "'still here'");
  });

  it('runs JavaScript in a context of its own, with state, results, errors and timeouts', async () => {
    const js = await m.codeInterpreter.createContext({ language: 'javascript' });
    assert.equal(js.language, 'javascript');
    await m.codeInterpreter.run('let n = 40; const add = (a, b) => a + b;', { context: js });
    const ex = await m.codeInterpreter.run('console.log("hi from js"); add(n, 2)', { context: js });
    assert.equal(ex.text, '42');
    assert.equal(ex.logs.stdout.join(''), 'hi from js\n');
    // Top-level await: a declaration stays for the next run, the last expression is the value.
    const awaited = await m.codeInterpreter.run(
      'const later = await new Promise((r) => setTimeout(() => r(n + 1), 10))',
      {
        context: js,
      },
    );
    assert.equal(awaited.error, undefined, awaited.error?.value);
    assert.equal(awaited.results.length, 0);
    assert.equal((await m.codeInterpreter.run('later', { context: js })).text, '41');
    assert.equal(
      (await m.codeInterpreter.run('await Promise.resolve(later * 2)', { context: js })).text,
      '82',
    );
    const err = await m.codeInterpreter.run('null.x', { context: js });
    assert.equal(err.error?.name, 'TypeError');
    const loop = await m.codeInterpreter.run('while (true) {}', { context: js, timeoutMs: 500 });
    assert.equal(loop.error?.name, 'TimeoutError');
    assert.equal((await m.codeInterpreter.run('n', { context: js })).text, '40');
    // The default javascript context, by language alone.
    assert.equal((await m.codeInterpreter.run('1 + 1', { language: 'javascript' })).text, '2');
  });

  it('runs bash in a persistent shell with its exit status', async () => {
    const sh = await m.codeInterpreter.createContext({ language: 'bash', cwd: '/tmp' });
    await m.codeInterpreter.run('export GREETING=hello; cd /etc', { context: sh });
    const ex = await m.codeInterpreter.run('echo "$GREETING from $(pwd)"; echo to-stderr >&2', {
      context: sh,
    });
    assert.equal(ex.logs.stdout.join(''), 'hello from /etc\n');
    assert.equal(ex.logs.stderr.join(''), 'to-stderr\n');
    assert.equal(ex.exitCode, 0);
    assert.equal(ex.error, undefined);
    const failed = await m.codeInterpreter.run('printf no-newline; false', { context: sh });
    assert.equal(failed.exitCode, 1);
    assert.equal(failed.error?.name, 'ExitStatus');
    assert.equal(failed.logs.stdout.join(''), 'no-newline');
    const slow = await m.codeInterpreter.run('sleep 30', { context: sh, timeoutMs: 500 });
    assert.equal(slow.error?.name, 'TimeoutError');
    assert.equal(
      (await m.codeInterpreter.run('echo $GREETING', { context: sh })).logs.stdout.join(''),
      'hello\n',
    );
  });

  it('installs a local wheel offline into the venv, then imports it', async () => {
    const build = await m.commands.run(
      [
        'set -e; rm -rf /tmp/nspkg && mkdir -p /tmp/nspkg/nsdemo',
        'echo "def answer(): return 42" > /tmp/nspkg/nsdemo/__init__.py',
        'printf "from setuptools import setup\\nsetup(name=\\"nsdemo\\", version=\\"1.0\\", packages=[\\"nsdemo\\"])\\n" > /tmp/nspkg/setup.py',
        '/opt/nullspace/venv/bin/python -m pip wheel --no-deps --no-index --no-build-isolation -q -w /tmp/nspkg/dist /tmp/nspkg',
        'ls /tmp/nspkg/dist',
      ].join('\n'),
      { timeoutMs: 120_000 },
    );
    assert.equal(build.exitCode, 0, build.stderr);
    const wheel = `/tmp/nspkg/dist/${build.stdout.trim()}`;
    assert.match(wheel, /nsdemo-1\.0-py3-none-any\.whl$/);
    const missing = await m.codeInterpreter.run('import nsdemo');
    assert.equal(missing.error?.name, 'ModuleNotFoundError');
    const streamed: string[] = [];
    const done = await m.codeInterpreter.install([wheel], {
      noIndex: true,
      onStdout: (t) => streamed.push(t),
    });
    assert.equal(streamed.join(''), done.stdout, 'the log came as it was written');
    assert.match(done.stdout, /Successfully installed nsdemo-1\.0/);
    assert.equal((await m.codeInterpreter.run('import nsdemo; nsdemo.answer()')).text, '42');
    // A failure carries pip's own message.
    await assert.rejects(
      m.codeInterpreter.install(['/tmp/nspkg/none.whl'], { noIndex: true }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'install_failed');
        assert.match(err.message, /none\.whl/);
        return true;
      },
    );
  });

  it('installs a local npm package offline for JavaScript, then requires it', async () => {
    await m.files.write(
      '/tmp/nsjs/package.json',
      JSON.stringify({ name: 'nsjs', version: '1.0.0', main: 'index.js' }),
    );
    await m.files.write('/tmp/nsjs/index.js', 'exports.answer = () => 42;\n');
    const done = await m.codeInterpreter.install(['/tmp/nsjs'], { language: 'javascript' });
    assert.match(done.stdout + done.stderr, /added 1 package/);
    const ex = await m.codeInterpreter.run('require("nsjs").answer()', { language: 'javascript' });
    assert.equal(ex.text, '42', ex.error?.value);
  });

  it('re-attaches to a running execution and gets the rest', async () => {
    const abort = new AbortController();
    let id = '';
    const partial = await m.codeInterpreter.run(
      'import os, time\nprint("one", flush=True)\nwhile not os.path.exists("/tmp/go-on"): time.sleep(0.01)\nprint("two")\n"done"',
      {
        onStart: (s) => {
          id = s.executionId;
        },
        onStdout: (t) => {
          if (t.includes('one')) abort.abort();
        },
        signal: abort.signal,
      },
    );
    assert.equal(partial.done, false);
    assert.equal(partial.id, id);
    await m.files.write('/tmp/go-on', '1');
    const rest = await m.codeInterpreter.attach(id, { after: partial.eventCount });
    assert.equal(rest.done, true);
    assert.equal(rest.logs.stdout.join(''), 'two\n');
    assert.equal(rest.text, "'done'");
    // From the start, everything.
    const all = await m.codeInterpreter.attach(id);
    assert.equal(all.logs.stdout.join(''), 'one\ntwo\n');
  });

  it('queues runs on one context in order', async () => {
    await m.codeInterpreter.run('order = []');
    let second: Promise<unknown> | undefined;
    const first = m.codeInterpreter.run('import time\ntime.sleep(0.3)\norder.append("first")', {
      // Sent while the first one runs: it waits for it.
      onStart: () => {
        second = m.codeInterpreter.run('order.append("second")');
      },
    });
    await first;
    await second;
    assert.equal((await m.codeInterpreter.run('order')).text, "['first', 'second']");
  });

  it('runs 4 contexts in parallel (each waits for all the others to start)', async () => {
    const contexts = await Promise.all([0, 1, 2, 3].map(() => m.codeInterpreter.createContext()));
    await m.commands.run('rm -rf /tmp/barrier && mkdir /tmp/barrier');
    const runs = await Promise.all(
      contexts.map((c, i) =>
        m.codeInterpreter.run(
          `import os, time\nopen("/tmp/barrier/${i}", "w").close()\nwhile len(os.listdir("/tmp/barrier")) < 4: time.sleep(0.01)\n${i}`,
          { context: c, timeoutMs: 60_000 },
        ),
      ),
    );
    assert.deepEqual(
      runs.map((r) => r.error?.name ?? r.text),
      ['0', '1', '2', '3'],
    );
    for (const c of contexts) await m.codeInterpreter.deleteContext(c);
  });

  it('refuses bad input with 400 and a code', async () => {
    const base = `/v1/machines/${m.id}/code`;
    await expectCode(
      api(ctx.server, 'POST', `${base}/run`, { code: '1', language: 'cobol' }),
      400,
      'invalid_argument',
      /language/,
    );
    await expectCode(
      api(ctx.server, 'POST', `${base}/run`, { code: '1', context: 'ctx_0000000000000000' }),
      400,
      'invalid_argument',
      /context/,
    );
    await expectCode(
      api(ctx.server, 'POST', `${base}/run`, { code: '1', context: 'nope' }),
      400,
      'invalid_argument',
      /context/,
    );
    await expectCode(
      api(ctx.server, 'POST', `${base}/run`, { code: 'x'.repeat(1024 * 1024 + 1) }),
      400,
      'invalid_argument',
      /code/,
    );
    await expectCode(
      api(ctx.server, 'POST', `${base}/contexts`, { language: 'ruby' }),
      400,
      'invalid_argument',
    );
    await expectCode(api(ctx.server, 'DELETE', `${base}/contexts/ctx_0000000000000000`), 404, 'not_found');
    await expectCode(api(ctx.server, 'GET', `${base}/executions/cex_0000000000000000`), 404, 'not_found');
    await expectCode(api(ctx.server, 'GET', `${base}/artifacts/art_00000000000000000000`), 404, 'not_found');
    await expectCode(api(ctx.server, 'POST', `${base}/install`, { packages: [] }), 400, 'invalid_argument');
  });

  it('reports a kernel that dies and restarts it on the next run', async () => {
    const c = await m.codeInterpreter.createContext();
    await m.codeInterpreter.run('lost = 1', { context: c });
    const died = await m.codeInterpreter.run('import os; os._exit(1)', { context: c });
    assert.equal(died.error?.name, 'KernelDied');
    const next = await m.codeInterpreter.run('1 + 1', { context: c });
    assert.equal(next.text, '2');
    assert.match(next.logs.stderr.join(''), /restarted/);
    assert.equal((await m.codeInterpreter.run('lost', { context: c })).error?.name, 'NameError');
    await m.codeInterpreter.deleteContext(c);
  });

  it('runs code from the CLI: an argument, stdin, --json, exit 1 on error, and a --repl', async () => {
    const s = ctx.server;
    const arg = await cli(s, ['machine', 'code', m.id, 'cli_value = 7\nprint("printed")\ncli_value * 6']);
    assert.equal(arg.code, 0, arg.stderr);
    assert.equal(arg.stdout, 'printed\nOut: 42\n');
    const fromStdin = await cli(s, ['machine', 'code', m.id], 'print(cli_value)');
    assert.equal(fromStdin.stdout, '7\n');
    const failed = await cli(s, ['machine', 'code', m.id, '1/0']);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /ZeroDivisionError/);
    const json = await cli(s, ['machine', 'code', m.id, '--language', 'bash', '--json', 'echo hi']);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as { stdout: string; exit_code: number; context_id: string };
    assert.equal(parsed.stdout, 'hi\n');
    assert.equal(parsed.exit_code, 0);
    assert.equal(parsed.context_id, 'default-bash');
    const repl = await cli(
      s,
      ['machine', 'code', m.id, '--repl'],
      'def f(x):\n    return x + 1\n\nf(cli_value)\n',
    );
    assert.equal(repl.code, 0, repl.stderr);
    assert.match(repl.stdout, /Out: 8/);
    const bad = await cli(s, ['machine', 'code', m.id, '--language', 'cobol', '1']);
    assert.equal(bad.code, 2);
  });

  it('lists code-interpreter and agent as shipped templates; an agent machine has its tools', async () => {
    const { items } = (await api(ctx.server, 'GET', '/v1/templates')) as {
      items: { id: string; shipped: boolean; purpose: string | null }[];
    };
    for (const name of [TEMPLATE, 'agent']) {
      const t = items.find((i) => i.id === name);
      assert.ok(t?.shipped, `${name} is listed as shipped`);
      assert.ok((t?.purpose ?? '').length > 0, `${name} has a purpose`);
    }
    if (!existsSync(join(TEMPLATES_DIR, 'agent', 'template.json'))) return;
    await using a = await Machine.create({ ...ctx.server.conn, template: 'agent' });
    const r = await a.commands.run(
      'for t in git gcc make node npm python3 pip3 rg jq unzip curl ssh less ps; do command -v $t >/dev/null || echo "missing $t"; done; python3 -m venv /tmp/v && echo venv-ok',
      { timeoutMs: 60_000 },
    );
    assert.equal(r.stdout, 'venv-ok\n', r.stderr);
  });

  it('refuses a machine whose template has no code interpreter', async () => {
    await using plain = await Machine.create(ctx.server.conn);
    await expectCode(
      api(ctx.server, 'POST', `/v1/machines/${plain.id}/code/run`, { code: '1' }),
      409,
      'invalid_state',
      /code-interpreter/,
    );
  });
});

describeWithServer('code interpreter state across the lifecycle', (ctx) => {
  if (!built) {
    it(`skipped: no ${TEMPLATE} template in ${TEMPLATES_DIR} (scripts/setup.sh builds it)`, { skip: true });
    return;
  }
  const draw = 'import random; random.random()';

  it('two machines from the template draw different random numbers', async () => {
    await using a = await Machine.create({
      ...ctx.server.conn,
      template: TEMPLATE,
      envs: { GREETING: 'hi' },
    });
    await using b = await Machine.create({ ...ctx.server.conn, template: TEMPLATE });
    const [x, y] = await Promise.all([a.codeInterpreter.run(draw), b.codeInterpreter.run(draw)]);
    // The kernel was started in the template's snapshot: it has this machine's envs all the same.
    const env = await a.codeInterpreter.run(
      'import os; (os.environ["GREETING"], os.environ["NULLSPACE_MACHINE_ID"])',
    );
    assert.equal(env.text, `('hi', '${a.id}')`);
    assert.ok(x.text && y.text);
    assert.notEqual(x.text, y.text);
    const np = 'import numpy; numpy.random.rand()';
    const [p, q] = await Promise.all([a.codeInterpreter.run(np), b.codeInterpreter.run(np)]);
    assert.notEqual(p.text, q.text);
  });

  it('keeps state through pause/resume and hibernate/connect', async () => {
    await using m = await Machine.create({ ...ctx.server.conn, template: TEMPLATE });
    await m.codeInterpreter.run('import numpy as np\nstate = np.arange(5)');
    const js = await m.codeInterpreter.createContext({ language: 'javascript' });
    await m.codeInterpreter.run('var kept = "js state"', { context: js });
    await m.pause();
    await Machine.connect(m.id, ctx.server.conn);
    assert.equal((await m.codeInterpreter.run('int(state.sum())')).text, '10');
    await m.hibernate();
    await Machine.connect(m.id, ctx.server.conn);
    assert.equal((await m.codeInterpreter.run('state.tolist()')).text, '[0, 1, 2, 3, 4]');
    assert.equal((await m.codeInterpreter.run('kept', { context: js })).text, "'js state'");
  });

  it("appears in a fork's children, which draw different numbers", async () => {
    await using m = await Machine.create({ ...ctx.server.conn, template: TEMPLATE });
    await m.codeInterpreter.run('import random\nforked = "from the parent"');
    const sh = await m.codeInterpreter.createContext({ language: 'bash' });
    await m.codeInterpreter.run('X=parent-shell', { context: sh });
    const children = await m.fork({ count: 2 });
    const [c1, c2] = children.map((c) => {
      if (c.error) throw c.error;
      return c.machine;
    });
    assert.ok(c1 && c2);
    try {
      for (const c of [c1, c2]) {
        assert.equal((await c.codeInterpreter.run('forked')).text, "'from the parent'");
        const id = await c.codeInterpreter.run('echo $NULLSPACE_MACHINE_ID', { context: sh });
        assert.equal(id.logs.stdout.join(''), `${c.id}\n`, "a child's contexts know its own id");
        assert.equal(
          (await c.codeInterpreter.run('echo $X', { context: sh })).logs.stdout.join(''),
          'parent-shell\n',
        );
      }
      const [x, y] = await Promise.all([c1.codeInterpreter.run(draw), c2.codeInterpreter.run(draw)]);
      assert.notEqual(x.text, y.text);
    } finally {
      await c1.kill();
      await c2.kill();
    }
  });

  it('goes on through a hibernation that cut its stream; re-attached, the rest comes', async () => {
    await using m = await Machine.create({ ...ctx.server.conn, template: TEMPLATE });
    let seen: () => void = () => {};
    const before = new Promise<void>((r) => {
      seen = r;
    });
    const streaming = m.codeInterpreter.run(
      'import os, time\nprint("before", flush=True)\nwhile not os.path.exists("/tmp/go"): time.sleep(0.01)\nprint("after")\n"done"',
      { timeoutMs: 0, onStdout: (t) => t.includes('before') && seen() },
    );
    await before;
    await m.hibernate();
    const partial = await streaming;
    assert.equal(partial.done, false);
    assert.ok(partial.interrupted, 'the stream said why it ended');
    assert.deepEqual(partial.logs.stdout, ['before\n']);
    await Machine.connect(m.id, ctx.server.conn);
    await m.files.write('/tmp/go', '1');
    const rest = await m.codeInterpreter.attach(partial.id, { after: partial.eventCount });
    assert.equal(rest.done, true);
    assert.deepEqual(rest.logs.stdout, ['after\n']);
    assert.equal(rest.text, "'done'");
  });

  it('appears in a machine created from a snapshot', async () => {
    await using m = await Machine.create({ ...ctx.server.conn, template: TEMPLATE });
    await m.codeInterpreter.run('saved = {"k": [1, 2]}');
    const snap = await m.createSnapshot();
    await using copy = await Machine.create({ ...ctx.server.conn, snapshotId: snap.id });
    assert.equal((await copy.codeInterpreter.run('saved["k"][1]')).text, '2');
    await api(ctx.server, 'DELETE', `/v1/snapshots/${snap.id}`).catch(() => undefined);
  });
});
