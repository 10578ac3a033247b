/** Process identity (uid, cgroup, label, cap_sys_admin) and `as:` beside `set`: for the simulated host's policies. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SimBackend } from '../backend/sim/sim-backend.ts';
import { formatWorkloadIssue, parseWorkload, WorkloadError } from './parse.ts';
import { runReplay } from './replay.ts';

function parse(text: string) {
  return parseWorkload(text, 'w.yaml', { baseDir: '/' });
}

function errorsOf(text: string): string[] {
  try {
    parse(text);
  } catch (error) {
    assert.ok(error instanceof WorkloadError, `expected a WorkloadError, got ${String(error)}`);
    return error.issues.map(formatWorkloadIssue);
  }
  assert.fail('the workload was accepted');
}

const TWO = `version: 1
name: t
processes:
  - name: admin
  - name: guest
    uid: 1000
    cgroup: /tenants/a
    label: tenant-a
    cap_sys_admin: false
steps:
`;

describe('process identity and as:', () => {
  test('identity fields parse into the process spec; a process without them has none', () => {
    const w = parse(`${TWO}  - set: { run: 1 }\n    as: guest\n  - set: { run: 0 }\n`);
    assert.equal(w.processes[0]?.identity, undefined);
    assert.deepEqual(w.processes[1]?.identity, {
      uid: 1000,
      cgroup: '/tenants/a',
      label: 'tenant-a',
      capSysAdmin: false,
    });
    assert.deepEqual(w.steps, [
      { op: 'set', settings: [{ name: 'run', value: '1' }], as: 'guest' },
      { op: 'set', settings: [{ name: 'run', value: '0' }] },
    ]);
  });

  test('as: beside another operation, or naming no process, is refused with the reason', () => {
    assert.deepEqual(errorsOf(`${TWO}  - scan: 1\n    as: guest\n`), [
      'w.yaml:12:9: steps.0.as: as (the process that writes) is allowed only beside set',
    ]);
    assert.deepEqual(errorsOf(`${TWO}  - set: { run: 1 }\n    as: nobody\n`), [
      'w.yaml:12:9: steps.0.as: no process "nobody" at step 1; processes at this step: admin, guest',
    ]);
  });

  test('a bad uid or cgroup names what is allowed', () => {
    const text = `${TWO.replace('uid: 1000', 'uid: -1').replace('cgroup: /tenants/a', 'cgroup: tenants')}  - scan: 1\n`;
    const errors = errorsOf(text);
    assert.equal(errors.length, 2);
    assert.match(errors[0]!, /processes\.1\.uid: .*expected an integer 0\.\.4294967294 \(a uid\)/);
    assert.match(errors[1]!, /processes\.1\.cgroup: .*expected a cgroup path starting with \//);
  });
});

describe('identity through a replay on the simulated host', () => {
  test('labels reach the host: under trust-domains two tenants of one image share nothing across', async () => {
    const guest = (name: string, label: string) =>
      `  - name: ${name}\n    label: ${label}\n    regions:\n      - { name: ram, pages: 4, mergeable: true, content: [{ pages: 4, image: os }] }\n`;
    const w = parse(
      `version: 1\nname: t\nprocesses:\n${guest('a1', 'a')}${guest('a2', 'a')}${guest('b1', 'b')}steps:\n  - scan: 2\n`,
    );
    const shared = async (policy: 'none' | 'trust-domains') => {
      const outcome = await runReplay(w, new SimBackend({ policy: { name: policy } }));
      const ksm = outcome.results.at(-1)!.ksm;
      return [ksm.pages_shared, ksm.pages_sharing];
    };
    assert.deepEqual(await shared('none'), [4, 8]);
    assert.deepEqual(await shared('trust-domains'), [4, 4], 'a1 and a2 share; b1 waits alone');
  });
});
