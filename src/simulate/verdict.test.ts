/**
 * The report decides: the verdict's headline and its order of concerns, the
 * saving's trend (settled, growing, falling) and what the 50/90/99% times are
 * of, and ksmd's CPU averaged per window instead of per sample.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SHIPPED_CALIBRATION } from './cost.ts';
import type { EngineRun, Sample } from './engine-run.ts';
import { cpuWindowMs, cpuWindows } from './report.ts';
import { parseScenario } from './scenario.ts';
import { summarize } from './summary.ts';
import type { RunResult } from './sweep.ts';
import { decide, milestoneText, savingText } from './verdict.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** 8 guests of 512 MiB (4 GiB) on a host with 3.5 GiB for them, 20 minutes. */
const CHURN = parseScenario(readFileSync(join(ROOT, 'scenarios', 'churn.yaml'), 'utf8'), 'churn.yaml');
const MIB = 2 ** 20;
const GUESTS = 4096 * MIB;

function sample(tMs: number, savingMiB: number, cpuMs: number, inUseMiB = 4096 - savingMiB): Sample {
  return {
    tMs,
    full_scans: 0,
    pages_shared: 0,
    pages_sharing: 0,
    pages_unshared: 0,
    pages_volatile: 0,
    pages_scanned: 0,
    pages_skipped: 0,
    ksm_zero_pages: 0,
    stable_node_chains: 0,
    stable_node_dups: 0,
    rmap_items: 0,
    general_profit: savingMiB * MIB,
    pages_to_scan: 100,
    ksmdCpuMs: cpuMs,
    ksmdCpuPercent: 0,
    memoryInUseBytes: inUseMiB * MIB,
    guestMemoryBytes: GUESTS,
    guestsStarted: 8,
    cowBreaks: 1000,
    guestWrites: 0,
    guestReads: 0,
    extrapolated: false,
  };
}

/** A run of 20 minutes sampled every minute; `saving(minute)` in MiB. */
function run(label: string, saving: (minute: number) => number, cpuShare = 0.01): RunResult {
  const samples = Array.from({ length: 21 }, (_, m) => sample(m * 60_000, saving(m), m * 60_000 * cpuShare));
  const engineRun = { samples } as unknown as EngineRun;
  return {
    spec: { label, settings: [] },
    run: engineRun,
    summary: summarize(CHURN, samples, SHIPPED_CALIBRATION.figures, undefined),
    wallMs: 0,
  };
}

describe('the saving’s trend', () => {
  test('falling (churn: 926 MiB at 10 min, 606 MiB at the end): against the peak, never "still growing"', () => {
    const r = run('pages_to_scan=100', (m) => (m <= 10 ? (926 * m) / 10 : 926 - (320 * (m - 10)) / 10));
    const s = r.summary;
    assert.equal(s.trend, 'falling');
    assert.equal(s.milestoneBasis, 'peak');
    assert.equal(s.peakSavingBytes, 926 * MIB);
    assert.equal(s.timeToMs[50], 5 * 60_000, 'half of the peak, not of the end');
    assert.equal(milestoneText(s, 90), '9.0 min (of the peak)');
    assert.match(savingText(s), /^606\.0 MiB .*falling from its peak of 926\.0 MiB at 10\.0 min$/);
    assert.doesNotMatch(savingText(s), /growing/);
  });

  test('ending mid-climb: growing, the milestones not meaningful, and the verdict says to run longer', () => {
    const r = run('x', (m) => 50 * m);
    assert.equal(r.summary.trend, 'growing');
    assert.equal(milestoneText(r.summary, 99), 'not meaningful (still growing)');
    const v = decide({ results: [r], rescue: [] });
    assert.ok(v.details.some((d) => /did not converge.*--duration 40min/.test(d)));
  });

  test('99% reached only in the last tenth of the run is growing, not settled', () => {
    // 30 min scenario shape: flat at 1000 MiB from minute 19.5 on, but only within 1% of it after 19.
    const r = run('x', (m) => (m >= 20 ? 1000 : m >= 19 ? 995 : (900 * m) / 18));
    assert.equal(r.summary.trend, 'growing');
  });

  test('settled once it stops moving', () => {
    const r = run('x', (m) => Math.min(1000, 200 * m));
    assert.equal(r.summary.trend, 'settled');
    assert.equal(milestoneText(r.summary, 50), '2.5 min');
  });
});

describe('the verdict', () => {
  test('over host memory for minutes comes first, says swap and OOM are not modelled, names the sweep', () => {
    // Over 3.5 GiB until the saving passes 512 MiB (minute 6 at 100 MiB/min).
    const slow = run('pages_to_scan=100 sleep_millisecs=20', (m) => Math.min(1200, 100 * m));
    const fast = run('pages_to_scan=1000', (m) => Math.min(1200, 1200 * m), 0.08);
    assert.ok(slow.summary.overcommittedMs >= 5 * 60_000);
    const pointed = decide({
      results: [slow],
      rescue: [],
      sweepCommand: 'ksmkit simulate churn --set pages_to_scan=100,1000,4000',
    });
    assert.match(pointed.details[0]!, /^Over the host's memory: .* Swap and OOM are not modelled/);
    assert.match(pointed.details[1]!, /ksmkit simulate churn --set pages_to_scan=100,1000,4000/);
    assert.match(
      pointed.headline,
      /^Verdict: turn KSM on, but with more than pages_to_scan=100 sleep_millisecs=20: .*over the host's memory for 5\.0 min.*ksmkit simulate churn --set/,
      'without the sweep run, the verdict does not claim KSM is not enough',
    );
    const v = decide({ results: [slow], rescue: [fast] });
    assert.equal(v.chosen, fast);
    assert.match(
      v.headline,
      /^Verdict: turn KSM on with pages_to_scan=1000\. It keeps the guests within the host's memory/,
    );
    assert.match(v.headline, /8\.00% of one CPU/);
    assert.match(
      v.details[1]!,
      /pages_to_scan sweep .*pages_to_scan=100 sleep_millisecs=20: over the host's memory for 5\.0 min.*pages_to_scan=1000: over the host's memory only at the first sample/,
    );
  });

  test('a small saving on guests that fit anyway: leave KSM off', () => {
    const CHURN_FITS = { ...CHURN, host: { ...CHURN.host, memoryBytes: 16 * 2 ** 30 } };
    const samples = Array.from({ length: 21 }, (_, m) => sample(m * 60_000, Math.min(100, 20 * m), m * 600));
    const r: RunResult = {
      spec: { label: 'pages_to_scan=100 sleep_millisecs=20', settings: [] },
      run: { samples } as unknown as EngineRun,
      summary: summarize(CHURN_FITS, samples, SHIPPED_CALIBRATION.figures, undefined),
      wallMs: 0,
    };
    const v = decide({ results: [r], rescue: [] });
    assert.match(
      v.headline,
      /^Verdict: leave KSM off\. It saves only 100\.0 MiB \(2\.4% .*fit the host without it/,
    );
  });

  test('nothing avoids it: KSM alone is not enough', () => {
    const r = run('pages_to_scan=100', () => 0);
    const v = decide({ results: [r], rescue: [run('pages_to_scan=400', () => 10)] });
    assert.match(v.headline, /^Verdict: KSM alone is not enough here/);
  });
});

test('ksmd CPU per window: the average over each window, not the sample that caught a pass', () => {
  const samples = [0, 15, 30, 45, 60, 75, 90, 105, 120].map((s, i) =>
    sample(s * 1000, 0, i % 2 === 0 ? i * 1000 : i * 1000 + 900),
  );
  const windows = cpuWindows(samples, 60_000);
  assert.deepEqual(
    windows.map((w) => [w.startMs, w.endMs, Number(w.percent.toFixed(3))]),
    [
      [0, 60_000, 6.667],
      [60_000, 120_000, 6.667],
    ],
  );
  assert.equal(cpuWindowMs(60 * 60_000, 15_000), 60_000);
  assert.equal(cpuWindowMs(90_000, 1000), 1500);
});
