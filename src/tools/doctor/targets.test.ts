/** Which processes doctor looks at: pids, a pattern, a cgroup; this process is never one of them. */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { listProcesses } from './host-reading.ts';
import { resolveTarget, TargetError } from './targets.ts';

test('--pid: a pid that does not exist and a kernel thread are one line each; the rest go on', () => {
  const procs = listProcesses();
  const kthread = procs.find((p) => p.cmdline === '');
  const pids = [process.pid, 2_147_483_000, ...(kthread === undefined ? [] : [kthread.pid])];
  const t = resolveTarget({ kind: 'pids', pids }, procs, -1);
  assert.deepEqual(t.pids, [process.pid]);
  assert.equal(t.problems[0], 'pid 2147483000: no such process');
  if (kthread !== undefined)
    assert.equal(t.problems[1], `pid ${kthread.pid}: a kernel thread (no memory of its own)`);
});

test('--match: command lines by regex, doctor itself left out', () => {
  const procs = listProcesses();
  const t = resolveTarget({ kind: 'match', pattern: 'node' }, procs, process.pid);
  assert.ok(!t.pids.includes(process.pid));
  const none = resolveTarget({ kind: 'match', pattern: '^no such command line$' }, procs, -1);
  assert.deepEqual([none.pids, none.problems], [[], ['no process matches /^no such command line$/']]);
});

/** This process's cgroup as a --cgroup argument: the v2 path, or a v1 controller's (memory/...). */
function ownCgroup(): string | undefined {
  const lines = readFileSync('/proc/self/cgroup', 'latin1').split('\n');
  const v2 = lines.find((l) => l.startsWith('0::'))?.slice(3);
  if (v2 !== undefined && existsSync(`/sys/fs/cgroup${v2}/cgroup.procs`)) return v2;
  const v1 = /^\d+:memory:(.*)$/m.exec(lines.join('\n'))?.[1];
  if (v1 !== undefined && existsSync(`/sys/fs/cgroup/memory${v1}/cgroup.procs`)) return `memory${v1}`;
  return undefined;
}

test('--cgroup: the processes of this process own cgroup include it; a missing cgroup cannot run', (t) => {
  const own = ownCgroup();
  if (own === undefined) {
    t.skip('no readable cgroup hierarchy here');
    return;
  }
  const target = resolveTarget({ kind: 'cgroup', path: own }, listProcesses(), -1);
  assert.ok(target.pids.includes(process.pid), `${own}: ${target.pids.length} pids`);
  assert.throws(() => resolveTarget({ kind: 'cgroup', path: 'no/such/group' }, [], -1), TargetError);
});

test('--unit without systemd running: cannot run, one line', (t) => {
  if (existsSync('/run/systemd/system')) {
    t.skip('systemd runs here');
    return;
  }
  assert.throws(
    () => resolveTarget({ kind: 'unit', name: 'qemu.service' }, [], -1),
    /--unit qemu.service: systemd is not running on this host/,
  );
});
