import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { namesAnotherMachine } from './teardown.js';

/** A /proc/PID/cgroup text of a host with cgroup v1 hierarchies and the v2 one (hybrid). */
function cgroupFile(path: string, unified = path): string {
  return [
    `9:name=systemd:${path}`,
    `8:pids:${path}`,
    `6:freezer:${path}`,
    `4:memory:${path}`,
    `1:cpu,cpuacct:${path}`,
    `0::${unified}`,
    '',
  ].join('\n');
}

describe('namesAnotherMachine: the check before teardown signals a pid', () => {
  const m = { id: 'mch_aaaaaaaaaaaaaaaaaaaa', cgroupParent: '/nullspace' };

  it('a process of the machine itself, or of a cgroup below its own, is not another machine’s', () => {
    assert.equal(namesAnotherMachine(cgroupFile('/nullspace/mch_aaaaaaaaaaaaaaaaaaaa'), m), false);
    assert.equal(namesAnotherMachine(cgroupFile('/nullspace/mch_aaaaaaaaaaaaaaaaaaaa/sub'), m), false);
  });

  it('a process outside every machine (runc, CRIU before runc moves it, the server) is not either', () => {
    assert.equal(namesAnotherMachine(cgroupFile('/', '/'), m), false);
    assert.equal(namesAnotherMachine(cgroupFile('/user.slice/session-1.scope'), m), false);
    // A process already gone: nothing read, nothing to keep it from.
    assert.equal(namesAnotherMachine('', m), false);
  });

  it('a process of another machine is, in any one hierarchy, even with a longer id sharing the prefix', () => {
    // A fork parent's process, the same pid in its namespace as the failed child's.
    assert.equal(namesAnotherMachine(cgroupFile('/nullspace/mch_bbbbbbbbbbbbbbbbbbbb'), m), true);
    assert.equal(namesAnotherMachine(cgroupFile('/nullspace/mch_aaaaaaaaaaaaaaaaaaaab'), m), true);
    // Only the v2 hierarchy says so (a restore that left it in another machine's there).
    assert.equal(
      namesAnotherMachine(
        cgroupFile('/nullspace/mch_aaaaaaaaaaaaaaaaaaaa', '/nullspace/mch_bbbbbbbbbbbbbbbbbbbb'),
        m,
      ),
      true,
    );
  });

  it('reads the path after the second colon (a path may hold colons), with another cgroup parent', () => {
    const other = { id: 'mch_aaaaaaaaaaaaaaaaaaaa', cgroupParent: '/x:y' };
    assert.equal(namesAnotherMachine('0::/x:y/mch_aaaaaaaaaaaaaaaaaaaa\n', other), false);
    assert.equal(namesAnotherMachine('0::/x:y/mch_cccccccccccccccccccc\n', other), true);
  });
});
