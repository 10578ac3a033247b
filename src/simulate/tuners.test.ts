/**
 * The tuners replayed in virtual time (`simulate --tuner`): the same
 * decision code as `ksmkit tune`, against the engine. A small host whose load
 * changes: guests boot, the host's own use rises, guests leave.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_TUNER_OPTIONS, makeTuner, type TunerPolicyName } from '../tuner/policies.ts';
import { SHIPPED_CALIBRATION } from './cost.ts';
import { type EngineRun, runOnEngine } from './engine-run.ts';
import { parseScenario } from './scenario.ts';
import { summarize } from './summary.ts';
import { expandTuners, runSweep } from './sweep.ts';

const figures = SHIPPED_CALIBRATION.figures;

const scenario = parseScenario(
  `version: 1
name: tuner-small
host: { memory: 320MiB, reserved: 32MiB, page_cache: 64MiB, load: [{ at: 6min, used: 96MiB }] }
run: { duration: 12min, sample_every: 10s, seed: 5 }
groups:
  - name: vm
    count: 6
    memory: 48MiB
    start_every: 2s
    content:
      - { share: 0.5, image: base }
      - { share: 0.2, zero: true }
      - { share: 0.3, unique: true }
  - name: late
    count: 2
    memory: 48MiB
    start_at: 3min
    stop_at: 9min
    stop_every: 30s
    content:
      - { share: 0.6, image: base }
      - { share: 0.4, unique: true }
`,
  'tuner-small.yaml',
);

const cowGuard = { reserveKb: undefined, stopMerging: false };

function run(policy: TunerPolicyName, targetScanS = 60, durationMs = scenario.durationMs): EngineRun {
  return runOnEngine(
    { ...scenario, durationMs },
    {
      figures,
      tuner: { tuner: makeTuner(policy, { ...DEFAULT_TUNER_OPTIONS, targetScanS }), cowGuard },
    },
  );
}

test('replay: the objective tuner brings the full scan within 20% of its target in virtual time, deterministically', () => {
  const a = run('objective');
  const summary = summarize(scenario, a.samples, figures, a.steadyAtMs);
  assert.ok(summary.fullScanS !== undefined, 'no full scan in the second half');
  assert.ok(
    Math.abs(summary.fullScanS - 60) / 60 <= 0.2,
    `full scan ${summary.fullScanS.toFixed(1)} s, target 60 s`,
  );
  assert.ok(summary.savingBytes > 50 * 2 ** 20, `saved only ${summary.savingBytes} bytes`);
  const b = run('objective');
  assert.deepEqual(
    b.decisions!.map((d) => d.written),
    a.decisions!.map((d) => d.written),
  );
  assert.deepEqual(b.samples, a.samples);
});

test('replay: ksmtuned decides first after its 60 s interval, and sees the committed memory move as guests come and go', () => {
  const r = run('ksmtuned');
  const decisions = r.decisions!;
  assert.equal(decisions[0]!.inputs.nowMs, 60_000);
  const committed = decisions.map((d) => d.inputs.committedKb);
  assert.equal(Math.max(...committed), 8 * 48 * 1024);
  assert.equal(committed.at(-1), 6 * 48 * 1024);
  // Its pace is its own (64..1250 pages), never the objective's.
  for (const d of decisions) {
    const p = d.decision.settings.pages_to_scan;
    if (p !== undefined) assert.ok(p >= 64 && p <= 1250);
  }
});

test('replay: the KubeVirt handler before kubevirt#16049 looks once, so rising pressure never starts KSM', () => {
  const legacy = run('kubevirt-legacy');
  assert.deepEqual(legacy.decisions![0]!.decision.settings, { run: 0 });
  assert.ok(legacy.decisions!.slice(1).every((d) => Object.keys(d.written).length === 0));
  assert.equal(legacy.samples.at(-1)!.full_scans, 0);
  assert.equal(legacy.samples.at(-1)!.general_profit, 0);
  const current = run('kubevirt');
  assert.ok(
    current.decisions!.some((d) => d.written.run === 1),
    'the current handler, looking every 3 min, starts ksmd',
  );
  assert.ok(current.samples.at(-1)!.pages_scanned > 0);
  // Its sleep is scaled to a 16 GiB host: on this small one, seconds between batches.
  const sleeps = current.decisions!.flatMap((d) => d.decision.settings.sleep_millisecs ?? []);
  assert.ok(
    sleeps.every((ms) => ms > 1000),
    sleeps.join(' '),
  );
});

test('replay: the advisor policy hands pacing to the scan-time advisor, which moves pages_to_scan itself', () => {
  const r = run('advisor', 60, 180_000);
  assert.deepEqual(r.decisions![0]!.written, {
    advisor_target_scan_time: 60,
    advisor_max_cpu: 10,
    advisor_mode: 'scan-time',
    run: 1,
  });
  const paces = new Set(r.samples.map((s) => s.pages_to_scan));
  assert.ok(paces.size >= 2, `pages_to_scan took ${[...paces].join(', ')}`);
});

test('--tuner: one run per tuner, labelled, and an unknown name refused with the list', () => {
  const specs = expandTuners(
    [{ label: 'scenario settings', settings: [] }],
    'objective,ksmtuned',
    DEFAULT_TUNER_OPTIONS,
    cowGuard,
  );
  assert.deepEqual(
    specs.map((s) => s.label),
    ['tuner=objective', 'tuner=ksmtuned'],
  );
  assert.throws(
    () => expandTuners(specs, 'ksmtune', DEFAULT_TUNER_OPTIONS, cowGuard),
    /--tuner ksmtune: not a tuner; allowed: objective, ksmtuned, kubevirt, kubevirt-legacy, advisor/,
  );
  const results = runSweep({ ...scenario, durationMs: 90_000, sampleEveryMs: 10_000 }, specs, figures);
  assert.equal(results.length, 2);
  assert.ok(results.every((r) => (r.run.decisions?.length ?? 0) > 0));
});
