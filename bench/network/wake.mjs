/**
 * The network bench's wake series: a preview request to a paused or hibernated machine with
 * auto_resume, beside the same request to the running machine and the explicit resume (connect).
 */
import { checkInterrupted, fmt, killMachineViaApi, machineMemoryBytes, rssBytes } from '../lib.mjs';
import { apiTimed } from './client.mjs';
import { load } from './cpu.mjs';
import { serviceMachine, servicePidOnHost } from './machine.mjs';
import { S, api } from './state.mjs';

/** A request in the wake series without an answer for this long (ms) is counted as stalled. */
export const WAKE_TIMEOUT_MS = 10_000;

/**
 * Runs the wakes on a machine made for them: a restore brings back the machine's conntrack table
 * (CRIU's netns-ct image), with it the entries of every connection from the preview source of the
 * last two minutes, and a new connection that happens to reuse one of those source ports may hang
 * (see the README); the machine of the latency and throughput series made thousands of them.
 * `push` keeps the samples, `info` what the report says about the machine, its service and stalls;
 * the machine is killed at the end.
 */
export async function measureWakes(opts, { push, info, phase }) {
  phase('a fresh machine for the wakes');
  let B = await serviceMachine(opts.vcpus);
  let wakeBefore = load.sample(B.id);
  info.replaced = [];
  const useWakeMachine = (M) => {
    Object.assign(info, { wakeMachine: M.id, wakeAddr: M.addr, wakePid: M.pid, wakeHostPid: M.hostPid });
    info.stallsBefore = info.stalls.length;
  };
  useWakeMachine(B);
  info.serviceRss = rssBytes(B.hostPid);
  info.machineMemory = machineMemoryBytes(B.id);

  /**
   * After a stalled request the machine's old network namespace may outlive the next hibernation
   * (see the README), and the machine cannot be resumed for minutes: then the series goes on with
   * a new machine (at most twice), and the report says so.
   */
  const replaceIfStuck = async (err) => {
    if (info.stalls.length === info.stallsBefore || info.replaced.length >= 2) return false;
    const m = await api('GET', `/v1/machines/${B.id}`).catch(() => undefined);
    if (!m?.status_reason?.startsWith('resume failed')) return false;
    info.replaced.push(`${B.id} (${m.status}: ${m.status_reason}; ${err.message.slice(0, 80)}…)`);
    load.add(wakeBefore, load.sample(B.id));
    await killMachineViaApi(S, B.id);
    phase(`  ${B.id} cannot be resumed after a stalled request: a new machine for the rest of the series`);
    B = await serviceMachine(opts.vcpus);
    wakeBefore = load.sample(B.id);
    useWakeMachine(B);
    return true;
  };

  // Per iteration: pause (hibernate); one preview request on a new connection, which wakes the
  // machine; the same request once more now that it runs; pause (hibernate) again and resume with
  // the API's connect instead. A request that gets no answer within WAKE_TIMEOUT_MS is counted as
  // stalled, not timed, and the series goes on.
  const wake = async (action, n, wakeKey, connectKey) => {
    const asleep = action === 'pause' ? 'paused' : 'hibernated';
    // A failure names the step and the machine's status and status_reason (the server's own log
    // is not shown).
    const step = (what, fn) =>
      fn().catch(async (err) => {
        const m = await api('GET', `/v1/machines/${B.id}`).catch(() => undefined);
        const state = m ? ` (machine ${m.status}${m.status_reason ? `: ${m.status_reason}` : ''})` : '';
        const after = info.stalls.length
          ? ` after ${info.stalls.length} stalled request(s), see bench/README.md`
          : '';
        throw new Error(`${action} series, ${what}: ${err.message}${state}${after}`, { cause: err });
      });
    const unlessStalled = (what, i, fn) =>
      fn().catch((err) => {
        if (err.code !== 'NSBENCH_TIMEOUT') return step(what, () => Promise.reject(err));
        info.stalls.push(`${action} ${i < 0 ? 'warm-up' : i + 1}: ${what}`);
        return undefined;
      });
    const sleepNow = async () => {
      const slept = await step(`POST …/${action}`, () => api('POST', `/v1/machines/${B.id}/${action}`));
      if (slept.status !== asleep) throw new Error(`${action}: status ${slept.status}`);
      if (action === 'hibernate' && info.imageBytes === undefined && slept.snapshot_id)
        info.imageBytes = (
          await api('GET', `/v1/snapshots/${slept.snapshot_id}`).catch(() => ({}))
        ).size_bytes;
    };
    const request = () => B.expectSmall(B.proxy, { timeoutMs: WAKE_TIMEOUT_MS });
    const once = async (i) => {
      await sleepNow();
      const woken = await unlessStalled('the waking preview request', i, request);
      const now = await api('GET', `/v1/machines/${B.id}`);
      if (now.status !== 'running') throw new Error(`after the waking request: status ${now.status}`);
      B.relink();
      const running = await unlessStalled('the request to the running machine', i, request);
      await sleepNow();
      const connected = await step('POST …/connect', () =>
        apiTimed('POST', `/v1/machines/${B.id}/connect`, {}),
      );
      if (connected.json.status !== 'running') throw new Error(`connect: status ${connected.json.status}`);
      B.relink();
      await unlessStalled('the request after connect', i, request);
      return { woken, running, connected };
    };
    for (let i = -opts.warmup; i < n; i++) {
      checkInterrupted();
      let r;
      try {
        r = await once(i);
      } catch (err) {
        if (!(await replaceIfStuck(err))) throw err;
        i--; // this iteration again, on the new machine
        continue;
      }
      const { woken, running, connected } = r;
      phase(
        `  ${action} ${i < 0 ? 'warm-up' : `${i + 1}/${n}`}: woken by the request in ${woken ? fmt(woken.ms) : 'STALLED'} ms, ` +
          `running ${running ? fmt(running.ms) : 'STALLED'} ms, connect ${fmt(connected.ms)} ms`,
      );
      if (i < 0) continue;
      if (woken) push(wakeKey, woken.ms);
      if (running) push('wakeRunning', running.ms);
      push(connectKey, connected.ms);
      info.wakes = (info.wakes ?? 0) + 2;
    }
  };
  phase(`wake from pause × ${opts.wakePaused} (+${opts.warmup}): preview request, running request, connect`);
  await wake('pause', opts.wakePaused, 'wakePaused', 'connectPaused');
  phase(
    `wake from hibernation × ${opts.wakeHibernated} (+${opts.warmup}): preview request, running request, connect`,
  );
  await wake('hibernate', opts.wakeHibernated, 'wakeHibernated', 'connectHibernated');
  info.wakeHostPidAfter = servicePidOnHost(B.id);
  load.add(wakeBefore, load.sample(B.id));

  await killMachineViaApi(S, B.id);
}
