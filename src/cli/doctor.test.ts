/** `ksmkit doctor` usage: one target, exit 2 with a one-line reason when it cannot run, the engine path. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { doctorReportSchema } from '../tools/doctor/json.ts';
import { nobodySkip } from '../tools/status/test-fixtures.ts';
import { type DoctorCommandOptions, doctorCommand, targetOf } from './doctor.ts';

const FIXTURE = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'tools',
  'doctor',
  'fixtures',
  'why-not-merging.yaml',
);

const BASE: DoctorCommandOptions = {
  json: false,
  targetScan: 180,
  window: 0,
  pages: false,
  maxPages: 1 << 23,
  rows: 10,
};

async function run(workload: string | undefined, opts: Partial<DoctorCommandOptions>) {
  let out = '';
  const err: string[] = [];
  const status = await doctorCommand(
    workload,
    { ...BASE, ...opts },
    {
      write: (t) => {
        out += t;
      },
      err: (l) => err.push(l),
      color: false,
    },
  );
  return { status, out, err };
}

test('targets: exactly one of --pid, --all, --match, --cgroup, --unit', () => {
  assert.deepEqual(targetOf({ pid: [1, 2] }), { kind: 'pids', pids: [1, 2] });
  assert.deepEqual(targetOf({ match: 'qemu' }), { kind: 'match', pattern: 'qemu' });
  assert.match(String(targetOf({})), /^say what to look at/);
  assert.match(String(targetOf({ all: true, unit: 'x' })), /^give one of/);
});

test('no target, two targets, a workload with a target, a missing cgroup: exit 2 with one line', async () => {
  for (const [workload, opts, message] of [
    [undefined, {}, /^ksmkit doctor: say what to look at/],
    [undefined, { all: true, match: 'x' }, /^ksmkit doctor: give one of/],
    [FIXTURE, { all: true }, /^ksmkit doctor: a WORKLOAD file is run on the engine/],
    [undefined, { cgroup: 'no/such/group' }, /^ksmkit doctor: no cgroup no\/such\/group/],
    ['/no/such/workload.yaml', {}, /^ksmkit doctor: \/no\/such\/workload.yaml: cannot read: no such file/],
  ] as const) {
    const r = await run(workload, opts);
    assert.equal(r.status, 2, String(message));
    assert.equal(r.err.length, 1);
    assert.match(r.err[0]!, message);
    assert.equal(r.out, '');
  }
});

test('a workload with findings: exit 1, the table grouped by verdict, --json parses with the schema', async () => {
  const text = await run(FIXTURE, {});
  assert.equal(text.status, 1);
  const lines = text.out.split('\n');
  assert.match(lines[0]!, /^ksmkit doctor: workload why-not-merging \(3 processes\)/);
  const groups = lines
    .filter((l) => /^(FINDING|info {3}|ok {5}) /.test(l))
    .map((l) => /\[([a-z-]+)\]/.exec(l)![1]);
  assert.deepEqual(groups, [
    'not-registered',
    'not-advised',
    'shared-mapping',
    'volatile',
    'unique',
    'chain-full',
    'merged',
  ]);
  assert.match(text.out, /\n3 findings\n$/);
  const json = await run(FIXTURE, { json: true });
  assert.equal(json.status, 1);
  const parsed = doctorReportSchema.parse(JSON.parse(json.out));
  assert.equal(parsed.findings.length, 8);
});

test('--pid of a pid that does not exist: one line, the report goes on (exit by the host findings)', async () => {
  const r = await run(undefined, { pid: [2_147_483_000], json: true });
  const parsed = doctorReportSchema.parse(JSON.parse(r.out));
  assert.deepEqual(parsed.problems, ['pid 2147483000: no such process']);
  assert.deepEqual(parsed.target.pids, []);
  assert.equal(r.status, parsed.healthy ? 0 : 1);
});

test('as another user: it says what it could not see, and goes on', {
  // nobodySkip: root to run a child as nobody, and a checkout nobody can read (a clone in a 0700 mktemp folder is not).
  skip: nobodySkip(),
}, () => {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const p = spawnSync(
    process.execPath,
    [
      '--import',
      import.meta.resolve('tsx/esm'),
      join(root, 'src', 'cli', 'main.ts'),
      'doctor',
      '--all',
      '--json',
      '--window',
      '0',
    ],
    {
      cwd: root,
      uid: 65534,
      gid: 65534,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    },
  );
  assert.ok(p.status === 0 || p.status === 1, p.stderr);
  const report = doctorReportSchema.parse(JSON.parse(p.stdout));
  assert.equal(report.root, false);
  assert.equal(report.pageAnalysis, false);
  assert.ok(
    report.notes.some((n) => /^\d+ processes of other users could not be read: run as root/.test(n)),
    report.notes.join('\n'),
  );
  assert.ok(report.notes.some((n) => n.startsWith('per page verdicts need root')));
  assert.ok(report.notes.some((n) => n.startsWith('running as uid 65534')));
});
