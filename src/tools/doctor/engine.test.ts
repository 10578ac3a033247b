/** `ksmkit doctor WORKLOAD`: the engine's page states in doctor's words, one region per cause. */
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DECLINE_REASONS } from '../../ksm/events.ts';
import { loadCalibration } from '../../simulate/cost.ts';
import { runOnEngine } from '../../simulate/engine-run.ts';
import { parseScenario } from '../../simulate/scenario.ts';
import type { DoctorReport } from './doctor.ts';
import { declineVerdict, doctorWorkload, explainEngineRun, WorkloadDoctorError } from './engine.ts';
import { toJson } from './json.ts';
import { VERDICT_INFO, type Verdict } from './verdicts.ts';

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'why-not-merging.yaml');

test('doctor WORKLOAD: each region of why-not-merging gets exactly its cause', async () => {
  const report = await doctorWorkload(FIXTURE);
  const byRegion = new Map<string, Partial<Record<Verdict, number>>>();
  for (const f of report.findings) {
    if (f.subject.pid === undefined) continue;
    const key = `${f.subject.command}.${f.subject.name}`;
    const v = byRegion.get(key) ?? {};
    v[f.verdict] = (v[f.verdict] ?? 0) + f.pages;
    byRegion.set(key, v);
  }
  assert.deepEqual(Object.fromEntries(byRegion), {
    'vm-a.ram': { merged: 10, unique: 3, volatile: 1, 'chain-full': 1 },
    'vm-a.shm': { 'shared-mapping': 4 },
    'vm-a.heap': { 'not-advised': 4 },
    'vm-b.ram': { merged: 8 },
    'plain.data': { 'not-registered': 4 },
  });
  assert.equal(report.source, 'engine');
  assert.equal(report.healthy, false);
  assert.deepEqual(report.pageTotals, {
    merged: 18,
    'twin-waiting': 0,
    'zero-candidate': 0,
    volatile: 1,
    unique: 3,
    'chain-full': 1,
  });
  assert.doesNotThrow(() => toJson(report));
});

test('every engine decline reason has a verdict of the shared vocabulary', () => {
  for (const reason of DECLINE_REASONS) {
    for (const state of ['unshared', 'volatile'] as const) {
      assert.ok(VERDICT_INFO[declineVerdict(reason, state)] !== undefined, reason);
    }
  }
  assert.equal(declineVerdict('chain_full', 'unshared'), 'chain-full');
  assert.equal(declineVerdict('checksum_changed', 'volatile'), 'volatile');
  assert.equal(declineVerdict(null, 'unshared'), 'unique');
});

test('a missing or invalid workload cannot run: WorkloadDoctorError', async () => {
  await assert.rejects(doctorWorkload('/nonexistent/w.yaml'), WorkloadDoctorError);
});

test('simulate --explain: a scenario run judged per guest group, pages summing to the guests memory', async () => {
  const scenario = parseScenario(
    `
version: 1
name: explained
host: { memory: 32MiB }
run: { duration: 6s, sample_every: 2s }
ksm: { pages_to_scan: 1000 }
groups:
  - name: vm
    count: 3
    memory: 4MiB
    content:
      - { share: 0.5, image: golden }
      - { share: 0.5, unique: true }
`,
    'explained.yaml',
  );
  let report: DoctorReport | undefined;
  runOnEngine(scenario, {
    figures: loadCalibration(undefined).figures,
    onEnd: (end) => {
      report = explainEngineRun(end, 'scenario explained');
    },
  });
  assert.ok(report !== undefined);
  const rows = report.findings.filter((f) => f.subject.command !== undefined);
  assert.ok(rows.every((f) => f.subject.command === 'vm (3 guests)'));
  const pages = Object.fromEntries(rows.map((f) => [f.verdict, f.pages]));
  // Three guests of 1024 pages: the image half merges, the unique half does not.
  assert.deepEqual(pages, { merged: 3 * 512, unique: 3 * 512 });
  assert.doesNotThrow(() => toJson(report!));
});
