import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../fuzz/rng.ts';
import {
  ACCESS_FAULTS,
  checkTimingModel,
  MEASURED_TIMING,
  percentileAt,
  sampleWriteNs,
  timingModelFromJson,
  type WriteTimingModel,
} from './timing-model.ts';

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

test('percentile table: the points themselves, interpolated between, clamped tails', () => {
  const points = [
    [0.25, 100],
    [0.5, 200],
    [0.75, 400],
  ] as const;
  assert.ok(Math.abs(percentileAt(points, 0.5) - 200) < 1e-9);
  assert.ok(Math.abs(percentileAt(points, 0.75) - 400) < 1e-9);
  const mid = percentileAt(points, 0.375);
  assert.ok(Math.abs(mid - Math.sqrt(100 * 200)) < 1e-9, `log-linear midpoint, got ${mid}`);
  // The end segments' slopes go on (100 -> 50 at 0), clamped at half the first and twice the last time.
  assert.ok(Math.abs(percentileAt(points, 0) - 50) < 1e-9);
  assert.ok(Math.abs(percentileAt(points, 0.999999) - 800) < 1e-2);
  const steep = [
    [0.5, 100],
    [0.6, 1000],
  ] as const;
  assert.equal(percentileAt(steep, 0), 50);
  assert.equal(percentileAt(steep, 0.99), 2000);
});

test('samples follow the measured table: medians per kind, a KSM COW far slower than a plain store', () => {
  const rng = new Rng(7);
  const draw = (fault: (typeof ACCESS_FAULTS)[number]) =>
    median(Array.from({ length: 4001 }, () => sampleWriteNs(MEASURED_TIMING, fault, rng)));
  const none = draw('none');
  const cowKsm = draw('cow-ksm');
  assert.ok(none >= 20 && none <= 31, `none median ${none}`);
  assert.ok(cowKsm > 1800 && cowKsm < 2150, `cow-ksm median ${cowKsm}`);
  assert.ok(cowKsm / none > 30);
});

test('log-normal: median and spread as given', () => {
  const model: WriteTimingModel = {
    origin: 'test',
    byFault: { ...MEASURED_TIMING.byFault, cow: { kind: 'lognormal', medianNs: 1000, sigma: 0.2 } },
  };
  const rng = new Rng(3);
  const values = Array.from({ length: 20001 }, () => sampleWriteNs(model, 'cow', rng));
  const m = median(values);
  assert.ok(Math.abs(m - 1000) < 15, `median ${m}`);
  const logs = values.map(Math.log);
  const mean = logs.reduce((a, b) => a + b, 0) / logs.length;
  const sd = Math.sqrt(logs.reduce((a, b) => a + (b - mean) ** 2, 0) / logs.length);
  assert.ok(Math.abs(sd - 0.2) < 0.01, `sigma ${sd}`);
});

test('a seed replays the same times', () => {
  const a = new Rng(11);
  const b = new Rng(11);
  for (const fault of ACCESS_FAULTS)
    assert.equal(sampleWriteNs(MEASURED_TIMING, fault, a), sampleWriteNs(MEASURED_TIMING, fault, b));
});

test('probe calibration JSON: percentiles or log-normal per kind, others shipped; bad input named', () => {
  const model = timingModelFromJson(
    { faults: { 'cow-ksm': { p5: 2500, p50: 3000, p95: 5000 }, none: { medianNs: 40, sigma: 0.3 } } },
    'probe.json',
  );
  assert.deepEqual(model.byFault['cow-ksm'], {
    kind: 'percentiles',
    points: [
      [0.05, 2500],
      [0.5, 3000],
      [0.95, 5000],
    ],
  });
  assert.deepEqual(model.byFault.none, { kind: 'lognormal', medianNs: 40, sigma: 0.3 });
  assert.equal(model.byFault.anon, MEASURED_TIMING.byFault.anon);
  assert.match(model.origin, /probe\.json \(none, cow-ksm; others shipped\)/);
  assert.throws(
    () => timingModelFromJson({ faults: {} }, 'x.json'),
    /x\.json: no distribution for any of none/,
  );
  assert.throws(
    () => timingModelFromJson({ cow: { p50: 100, p25: 300 } }, 'y.json'),
    /y\.json.*cow: point 1 \[0\.5, 100\]: expected fractions rising/,
  );
  assert.throws(() => timingModelFromJson({ cow: { median: 3 } }, 'z.json'), /z\.json: cow: expected/);
  checkTimingModel(MEASURED_TIMING);
});

test('reads the file `ksmkit probe --calibration` writes (percentiles_ns per kind)', () => {
  const probe = {
    version: 1,
    source: 'ksmkit probe',
    percentiles: [1, 5, 50, 95, 99],
    faults: {
      none: { count: 100, median_ns: 30, percentiles_ns: { p1: 20, p5: 20, p50: 30, p95: 60, p99: 150 } },
      'cow-ksm': {
        count: 100,
        median_ns: 2600,
        percentiles_ns: { p1: 2100, p5: 2200, p50: 2600, p95: 3400, p99: 6000 },
      },
    },
  };
  const model = timingModelFromJson(probe, 'probe-calibration.json');
  const cow = model.byFault['cow-ksm'];
  assert.equal(cow.kind, 'percentiles');
  assert.deepEqual(cow.kind === 'percentiles' ? cow.points[2] : undefined, [0.5, 2600]);
  assert.equal(model.byFault.cow, MEASURED_TIMING.byFault.cow);
});

test('a file of several probe runs ({ models: [...] }) gives the one asked for', () => {
  const run = (median: number) => ({
    faults: { 'cow-ksm': { percentiles_ns: { p5: median - 100, p50: median } } },
  });
  const file = { version: 1, models: [run(2000), run(3000)] };
  const first = timingModelFromJson(file, 'p.json');
  const second = timingModelFromJson(file, 'p.json', MEASURED_TIMING, 1);
  const median = (m: WriteTimingModel) => {
    const d = m.byFault['cow-ksm'];
    return d.kind === 'percentiles' ? d.points[1]![1] : Number.NaN;
  };
  assert.equal(median(first), 2000);
  assert.equal(median(second), 3000);
  assert.match(second.origin, /^p\.json models\[1\] \(cow-ksm; others shipped\)$/);
  assert.throws(
    () => timingModelFromJson(file, 'p.json', MEASURED_TIMING, 2),
    /p\.json: models\[2\]: expected a model object \(the file has 2\)/,
  );
});
