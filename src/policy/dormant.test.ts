/** dormant and fortress: who may start ksmd, and the audit log of every attempt. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SimulatedHost } from '../surface/simulated-host.ts';
import { formatAuditLog } from './audit.ts';
import type { PolicyName } from './policy.ts';

const MiB = 2 ** 20;

function host(name: PolicyName): SimulatedHost {
  return new SimulatedHost({ memoryBytes: 64 * MiB, policy: { name } });
}

function errnoOf(fn: () => void): string | null {
  try {
    fn();
    return null;
  } catch (e) {
    return (e as { code: string }).code;
  }
}

describe('dormant', () => {
  test('ksmd is off by default and a root process without CAP_SYS_ADMIN gets EPERM, audited', () => {
    const sim = host('dormant');
    assert.equal(sim.sysfs.read('run'), '0\n');
    const p = sim.host.spawn({ comm: 'tenant', uid: 0, capSysAdmin: false });
    sim.host.clock.advanceNs(1_500_000);
    assert.equal(
      errnoOf(() => sim.writeSysfsAs(p.pid, 'run', '1')),
      'EPERM',
    );
    assert.equal(sim.sysfs.read('run'), '0\n');
    assert.deepEqual(sim.auditLog.entries(), [
      {
        timeNs: 1_500_000,
        pid: p.pid,
        comm: 'tenant',
        uid: 0,
        file: 'run',
        oldValue: '0',
        newValue: '1',
        result: 'EPERM',
      },
    ]);
  });

  test('an unprivileged user is refused at open (EACCES), audited', () => {
    const sim = host('dormant');
    const p = sim.host.spawn({ comm: 'guest', uid: 1000 });
    assert.equal(p.capSysAdmin, false);
    assert.equal(
      errnoOf(() => sim.writeSysfsAs(p.pid, 'run', '1')),
      'EACCES',
    );
    const [event] = sim.auditLog.entries();
    assert.equal(event?.uid, 1000);
    assert.equal(event?.result, 'EACCES');
  });

  test('a privileged process starts ksmd; the event has the old and new value and the virtual time', () => {
    const sim = host('dormant');
    const admin = sim.host.spawn({ comm: 'admin' });
    assert.equal(admin.capSysAdmin, true, 'uid 0 has CAP_SYS_ADMIN by default');
    sim.host.clock.advanceNs(42e9);
    sim.writeSysfsAs(admin.pid, 'run', '1\n');
    assert.equal(sim.sysfs.read('run'), '1\n');
    assert.deepEqual(sim.auditLog.entries(), [
      {
        timeNs: 42e9,
        pid: admin.pid,
        comm: 'admin',
        uid: 0,
        file: 'run',
        oldValue: '0',
        newValue: '1',
        result: 'ok',
      },
    ]);
  });

  test('other writes need no capability but are audited; bad text is EINVAL, audited', () => {
    const sim = host('dormant');
    const p = sim.host.spawn({ comm: 'tuner', capSysAdmin: false });
    sim.writeSysfsAs(p.pid, 'pages_to_scan', '1000');
    sim.writeSysfsAs(p.pid, 'run', '2');
    assert.equal(
      errnoOf(() => sim.writeSysfsAs(p.pid, 'run', 'x')),
      'EINVAL',
    );
    assert.deepEqual(
      sim.auditLog.entries().map((e) => [e.file, e.oldValue, e.newValue, e.result]),
      [
        ['pages_to_scan', '100', '1000', 'ok'],
        ['run', '0', '2', 'ok'],
        ['run', '2', 'x', 'EINVAL'],
      ],
    );
  });

  test('writes with bare credentials (a tool as root) are audited with no pid', () => {
    const sim = host('dormant');
    sim.sysfs.write('run', '1');
    assert.equal(
      errnoOf(() => sim.sysfs.write('pages_shared', '1')),
      'EACCES',
    );
    assert.deepEqual(
      sim.auditLog.entries().map((e) => [e.pid, e.comm, e.uid, e.file, e.result]),
      [
        [null, '-', 0, 'run', 'ok'],
        [null, '-', 0, 'pages_shared', 'EACCES'],
      ],
    );
  });
});

describe('fortress', () => {
  test('root with CAP_SYS_ADMIN cannot start ksmd: EPERM, audited', () => {
    const sim = host('fortress');
    const root = sim.host.spawn({ comm: 'root' });
    assert.equal(
      errnoOf(() => sim.writeSysfsAs(root.pid, 'run', '1')),
      'EPERM',
    );
    assert.equal(
      errnoOf(() => sim.sysfs.write('run', '1')),
      'EPERM',
    );
    assert.equal(sim.sysfs.read('run'), '0\n');
    assert.deepEqual(
      sim.auditLog.entries().map((e) => [e.pid, e.newValue, e.result]),
      [
        [root.pid, '1', 'EPERM'],
        [null, '1', 'EPERM'],
      ],
    );
  });

  test('writes that do not start merging still work (and are audited)', () => {
    const sim = host('fortress');
    const root = sim.host.spawn({ comm: 'root' });
    sim.writeSysfsAs(root.pid, 'run', '2');
    sim.writeSysfsAs(root.pid, 'use_zero_pages', '1');
    assert.equal(sim.sysfs.read('use_zero_pages'), '1\n');
    assert.deepEqual(
      sim.auditLog.entries().map((e) => e.result),
      ['ok', 'ok'],
    );
  });
});

describe('none', () => {
  test('writes behave as before and leave no audit', () => {
    const sim = host('none');
    const p = sim.host.spawn({ comm: 'plain', capSysAdmin: false });
    sim.writeSysfsAs(p.pid, 'run', '1');
    assert.equal(sim.sysfs.read('run'), '1\n');
    assert.equal(
      errnoOf(() => sim.writeSysfsAs(sim.host.spawn({ uid: 1000 }).pid, 'run', '0')),
      'EACCES',
    );
    assert.equal(sim.auditLog.length, 0);
  });
});

describe('formatAuditLog', () => {
  test('one aligned row per event under a header', () => {
    const sim = host('dormant');
    const p = sim.host.spawn({ comm: 'tenant-a', uid: 1000 });
    sim.host.clock.advanceNs(2_000_000_123);
    errnoOf(() => sim.writeSysfsAs(p.pid, 'run', '1'));
    sim.sysfs.write('run', '1');
    assert.deepEqual(formatAuditLog(sim.auditLog.entries()), [
      'time_s       pid   comm      uid   file  old  new  result',
      `2.000000123  ${p.pid}  tenant-a  1000  run   "0"  "1"  EACCES`,
      '2.000000123  -     -         0     run   "0"  "1"  ok',
    ]);
  });
});
