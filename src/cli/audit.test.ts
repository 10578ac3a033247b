/** `ksmkit audit`: a workload replayed under a policy, its sysfs audit log printed. */
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { auditCommand } from './audit.ts';

const FIXTURE = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'policy',
  'fixtures',
  'tenants-audit.yaml',
);

async function run(policy: 'dormant' | 'fortress' | 'none', json: boolean) {
  const out: string[] = [];
  const err: string[] = [];
  const status = await auditCommand(
    FIXTURE,
    { policy: { name: policy }, json },
    { out: (l) => out.push(l), err: (l) => err.push(l) },
  );
  return { status, out, err };
}

describe('ksmkit audit', () => {
  test('dormant: the tenants are refused, the operator starts ksmd; every attempt listed', async () => {
    const { status, out, err } = await run('dormant', false);
    assert.deepEqual(err, []);
    assert.equal(status, 0, 'the expects of the workload hold under dormant');
    assert.match(out[0]!, /^# tenants-audit under dormant: /);
    assert.deepEqual(out.slice(1), [
      'time_s       pid   comm      uid   file           old    new     result',
      '0.000000000  1001  tenant-a  1000  run            "0"    "1"     EACCES',
      '0.000000000  1002  tenant-b  0     run            "0"    "1"     EPERM',
      '0.000000000  1000  operator  0     pages_to_scan  "100"  "1000"  ok',
      '0.000000000  1000  operator  0     run            "0"    "1"     ok',
    ]);
  });

  test('fortress --json: one object per event; even the operator is refused, the expects fail', async () => {
    const { status, out } = await run('fortress', true);
    assert.equal(status, 1);
    const events = out.map((l) => JSON.parse(l) as { comm: string; file: string; result: string });
    assert.deepEqual(
      events.map((e) => [e.comm, e.file, e.result]),
      [
        ['tenant-a', 'run', 'EACCES'],
        ['tenant-b', 'run', 'EPERM'],
        ['operator', 'pages_to_scan', 'ok'],
        ['operator', 'run', 'EPERM'],
        ['-', 'run', 'EPERM'],
      ],
      'the last is the scan step starting ksmd as the tool itself',
    );
  });

  test('a policy without a log says so', async () => {
    const { out } = await run('none', false);
    assert.deepEqual(out.slice(1), ['# this policy keeps no audit log (dormant and fortress do)']);
  });
});
