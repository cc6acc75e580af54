/**
 * Where the server's time goes, timed inside it (the machine bench runs the server in the bench's
 * own process): the phases of a create, by wrapping its driver's members, and the steps of a kill's
 * teardown, as the runtime reports them on its diagnostics channel.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';
import { TEARDOWN_CHANNEL, TEARDOWN_STEPS } from '@nullspace/runtime';

/**
 * Times the phases of the server's own RuncDriver.create by wrapping, on this one instance, its
 * `create`, `runc.run` and `waitForAgent` (TypeScript-private members: plain properties at run
 * time). Nothing in the runtime package changes. Returns undefined if those members are not there.
 */
export function instrumentDriver(driver) {
  if (
    typeof driver?.create !== 'function' ||
    typeof driver.runc?.run !== 'function' ||
    typeof driver.waitForAgent !== 'function'
  )
    return undefined;
  const marks = {};
  const wrap = (obj, name, start, end) => {
    const original = obj[name].bind(obj);
    obj[name] = async (...args) => {
      marks[start] = performance.now();
      try {
        return await original(...args);
      } finally {
        marks[end] = performance.now();
      }
    };
  };
  wrap(driver, 'create', 'driverStart', 'driverEnd');
  wrap(driver.runc, 'run', 'runcStart', 'runcEnd');
  wrap(driver, 'waitForAgent', 'agentStart', 'agentEnd');
  // The wait checks `runc state` every 250 ms for liveness: time spent there, during the wait.
  if (typeof driver.runc.state === 'function') {
    const state = driver.runc.state.bind(driver.runc);
    driver.runc.state = async (...args) => {
      const t0 = performance.now();
      try {
        return await state(...args);
      } finally {
        if (marks.agentStart !== undefined && marks.agentEnd === undefined) {
          marks.stateMs = (marks.stateMs ?? 0) + performance.now() - t0;
          marks.stateCalls = (marks.stateCalls ?? 0) + 1;
        }
      }
    };
  }
  return marks;
}

/**
 * Listens on the runtime's teardown channel (TEARDOWN_CHANNEL): the server runs in this process, so
 * the tearDownMachine of each kill reports its steps (TEARDOWN_STEPS) here, each timed by the
 * runtime itself. A kill answers before its teardown runs (the server's Teardowns queue), so
 * `take(id, timed)` waits (up to 60 s) until machine `id`'s teardown has reported every step, adds
 * them to `series` (step → ms) if `timed` (not a warm-up), forgets them, and resolves with the
 * `performance.now()` at which the teardown finished; `stop()` stops listening.
 */
export function listenToTeardowns() {
  const byMachine = new Map();
  const finishedAt = new Map();
  const waiters = new Map();
  const last = TEARDOWN_STEPS[TEARDOWN_STEPS.length - 1];
  const series = Object.fromEntries(TEARDOWN_STEPS.map((step) => [step, []]));
  const onStep = ({ machineId, step, ms }) => {
    const steps = byMachine.get(machineId) ?? new Map();
    byMachine.set(machineId, steps);
    steps.set(step, ms);
    if (step === last) {
      finishedAt.set(machineId, performance.now());
      waiters.get(machineId)?.();
    }
  };
  subscribe(TEARDOWN_CHANNEL, onStep);
  return {
    series,
    async take(id, timed) {
      if (!finishedAt.has(id)) {
        let timer;
        await new Promise((resolve, reject) => {
          waiters.set(id, resolve);
          timer = setTimeout(
            () => reject(new Error(`kill of ${id}: its teardown did not finish in 60 s`)),
            60_000,
          );
        }).finally(() => {
          clearTimeout(timer);
          waiters.delete(id);
        });
      }
      const steps = byMachine.get(id);
      const at = finishedAt.get(id);
      byMachine.delete(id);
      finishedAt.delete(id);
      const missing = TEARDOWN_STEPS.filter((step) => !steps?.has(step));
      if (missing.length > 0)
        throw new Error(`kill of ${id}: the runtime reported no teardown step ${missing.join(', ')}`);
      if (timed) for (const step of TEARDOWN_STEPS) series[step].push(steps.get(step));
      return at;
    },
    stop: () => unsubscribe(TEARDOWN_CHANNEL, onStep),
  };
}
