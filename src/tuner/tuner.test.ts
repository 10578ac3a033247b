/**
 * The tuning policies as decision functions: KubeVirt's handler case by case
 * (pkg/virt-handler/ksm/ksm.go), the objective controller against a model
 * of ksmd (scan rate and CPU proportional to pages_to_scan), the memory
 * gate's hold time, the COW guard, the ksmtuned conf parser, the meter.
 * ksmtuned itself is held against the real script in
 * tools/tune/ksmtuned-oracle.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { guardCowStorm } from './cow-guard.ts';
import { PressureGate } from './gate.ts';
import type { KsmState, MemInfoKb, TunerDecision, TunerInputs } from './inputs.ts';
import {
  KSMTUNED_DEFAULTS,
  KsmtunedConfError,
  ksmtunedAdjust,
  ksmtunedStart,
  parseKsmtunedConf,
} from './ksmtuned.ts';
import { KUBEVIRT_DEFAULTS, KubevirtTuner, kubevirtDecide } from './kubevirt.ts';
import { Meter } from './measure.ts';
import { ObjectiveTuner } from './objective.ts';

const GIB_KB = 1024 * 1024;

function inputs(over: {
  nowMs?: number;
  meminfo?: Partial<MemInfoKb>;
  ksm?: Partial<KsmState>;
  committedKb?: number;
  ksmdCpuNs?: number;
}): TunerInputs {
  return {
    nowMs: over.nowMs ?? 0,
    meminfo: {
      MemTotal: 16 * GIB_KB,
      MemFree: 8 * GIB_KB,
      MemAvailable: 8 * GIB_KB,
      Buffers: 0,
      Cached: 0,
      SwapFree: 0,
      ...over.meminfo,
    },
    committedKb: over.committedKb ?? 0,
    ksm: {
      run: 0,
      pages_to_scan: 100,
      sleep_millisecs: 20,
      advisor_mode: 'none',
      full_scans: 0,
      pages_scanned: 0,
      pages_shared: 0,
      pages_sharing: 0,
      ...over.ksm,
    },
    ksmdCpuNs: over.ksmdCpuNs ?? 0,
  };
}

describe('kubevirt handler', () => {
  const pressure = { MemAvailable: 2 * GIB_KB }; // 12.5% of 16 GiB
  test('no pressure, stopped: run=0 only', () => {
    assert.deepEqual(kubevirtDecide(KUBEVIRT_DEFAULTS, inputs({})).settings, { run: 0 });
  });
  test('pressure, stopped: start at 100 pages; sleep = 100 ms x 16 GiB / used', () => {
    const d = kubevirtDecide(KUBEVIRT_DEFAULTS, inputs({ meminfo: pressure }));
    assert.deepEqual(d.settings, {
      sleep_millisecs: Math.floor((100 * 16 * GIB_KB) / (14 * GIB_KB)),
      pages_to_scan: 100,
      run: 1,
    });
  });
  test('pressure, running: +300, at most 1250; the sleep floor is 10 ms', () => {
    const d = kubevirtDecide(
      KUBEVIRT_DEFAULTS,
      inputs({
        meminfo: { MemTotal: 400 * GIB_KB, MemAvailable: 10 * GIB_KB },
        ksm: { run: 1, pages_to_scan: 1100 },
      }),
    );
    assert.deepEqual(d.settings, { sleep_millisecs: 10, pages_to_scan: 1250, run: 1 });
  });
  test('no pressure, running: -50; under 64 it stops, writing run only', () => {
    assert.equal(
      kubevirtDecide(KUBEVIRT_DEFAULTS, inputs({ ksm: { run: 1, pages_to_scan: 400 } })).settings
        .pages_to_scan,
      350,
    );
    assert.deepEqual(
      kubevirtDecide(KUBEVIRT_DEFAULTS, inputs({ ksm: { run: 1, pages_to_scan: 100 } })).settings,
      { run: 0 },
    );
  });
  test('pressure is MemAvailable <= 20% of MemTotal (the edge is pressure)', () => {
    const edge = inputs({ meminfo: { MemTotal: 1000, MemAvailable: 200 } });
    assert.equal(kubevirtDecide(KUBEVIRT_DEFAULTS, edge).settings.run, 1);
  });
  test('the handler before kubevirt#16049 looks once and never again', () => {
    const legacy = new KubevirtTuner({ ...KUBEVIRT_DEFAULTS, pollMs: undefined });
    assert.deepEqual(legacy.decide(inputs({}), undefined).settings, { run: 0 });
    assert.deepEqual(legacy.decide(inputs({ meminfo: pressure }), undefined).settings, {});
    const fixed = new KubevirtTuner();
    fixed.decide(inputs({}), undefined);
    assert.equal(fixed.decide(inputs({ meminfo: pressure }), undefined).settings.run, 1);
  });
});

describe('ksmtuned', () => {
  test('start values from MemTotal in bash integer arithmetic', () => {
    assert.deepEqual(ksmtunedStart(KSMTUNED_DEFAULTS, 8 * GIB_KB).state, {
      total: 8 * GIB_KB,
      sleep: 20,
      thres: 1677721,
      npages: 0,
    });
    // A 64 GiB host: 2.5 ms, raised to 10.
    assert.equal(ksmtunedStart(KSMTUNED_DEFAULTS, 64 * GIB_KB).state.sleep, 10);
  });
  test('the first decay from npages 0 lands on the minimum; boosts clamp at the maximum', () => {
    const { state } = ksmtunedStart(KSMTUNED_DEFAULTS, 16 * GIB_KB);
    const decay = ksmtunedAdjust(KSMTUNED_DEFAULTS, state, { freeKb: state.thres, committedKb: 16 * GIB_KB });
    assert.equal(decay.decision.settings.pages_to_scan, 64);
    let s = state;
    for (let i = 0; i < 6; i++) s = ksmtunedAdjust(KSMTUNED_DEFAULTS, s, { freeKb: 0, committedKb: 0 }).state;
    assert.equal(s.npages, 1250);
  });
});

describe('ksmtuned.conf parser (never run)', () => {
  test('assignments, quotes, export, comments and empty values (the default, as KEY:-default expands)', () => {
    const { config, warnings } = parseKsmtunedConf(
      '# c\nexport KSM_NPAGES_BOOST="600"\nKSM_NPAGES_DECAY=\'-10\'\nKSM_SLEEP_MSEC= \nKSM_NPAGES_MAX=900 # max\nDEBUG=0\nFOO=1\n',
    );
    assert.equal(config.KSM_NPAGES_BOOST, 600);
    assert.equal(config.KSM_NPAGES_DECAY, -10);
    assert.equal(config.KSM_SLEEP_MSEC, 10);
    assert.equal(config.KSM_NPAGES_MAX, 900);
    assert.equal(config.DEBUG, '0'); // non-empty: ksmtuned's `[ -n "$DEBUG" ]` turns debugging on
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /:7: FOO is not a ksmtuned setting/);
  });
  test('commands, substitutions and expansions are refused with their line, nothing taken', () => {
    for (const line of [
      'KSM_NPAGES_MAX=$(reboot)',
      'KSM_NPAGES_MAX=`id`',
      'rm -rf /',
      'KSM_NPAGES_MAX=$OTHER',
      'A=1; reboot',
    ]) {
      assert.throws(
        () => parseKsmtunedConf(`KSM_NPAGES_MIN=1\n${line}\n`),
        (e: unknown) => {
          assert.ok(e instanceof KsmtunedConfError);
          assert.match(e.message, /ksmtuned\.conf:2: not a plain KEY=value assignment/);
          return true;
        },
      );
    }
    assert.throws(
      () => parseKsmtunedConf('KSM_NPAGES_MAX=12k'),
      /KSM_NPAGES_MAX must be an integer, got "12k"/,
    );
  });
});

describe('memory gate', () => {
  test('opens below the start level, closes only after the hold time above the stop level', () => {
    const gate = new PressureGate({ startBelowKb: 2 * GIB_KB, stopAboveKb: 4 * GIB_KB, holdMs: 60_000 });
    const at = (nowMs: number, availableGib: number) =>
      gate.judge(inputs({ nowMs, meminfo: { MemAvailable: availableGib * GIB_KB } })).open;
    assert.equal(at(0, 3), false);
    assert.equal(at(10_000, 1), true);
    assert.equal(at(20_000, 3), true); // between the levels: stays open
    assert.equal(at(30_000, 5), true); // above, held 0 s
    assert.equal(at(60_000, 5), true); // held 30 s
    assert.equal(at(70_000, 3), true); // dipped: the hold starts again
    assert.equal(at(80_000, 5), true);
    assert.equal(at(140_000, 5), false); // held 60 s: closes
  });
  test('refuses a stop level under the start level', () => {
    assert.throws(() => new PressureGate({ startBelowKb: 4, stopAboveKb: 2, holdMs: 0 }), /--stop-above/);
  });
});

describe('COW guard', () => {
  const start: TunerDecision = {
    action: 'start',
    settings: { run: 1 },
    reason: 'x',
    warnings: [],
    debug: [],
  };
  const tight = inputs({ ksm: { run: 1, pages_sharing: 1_900_000 }, meminfo: { MemAvailable: 8 * GIB_KB } });
  test('warns when a storm would leave less than the reserve, and lets the decision through', () => {
    const d = guardCowStorm({ reserveKb: undefined, stopMerging: false }, tight, start);
    assert.deepEqual(d.settings, { run: 1 });
    assert.match(d.warnings[0]!, /writing every merged page would need 7600000 kB/);
  });
  test('with stopMerging, stops ksmd (run=0: nothing unmerged)', () => {
    assert.deepEqual(guardCowStorm({ reserveKb: undefined, stopMerging: true }, tight, start).settings, {
      run: 0,
    });
  });
  test('quiet when the headroom is there', () => {
    assert.equal(guardCowStorm({ reserveKb: undefined, stopMerging: true }, inputs({}), start), start);
  });
});

/** ksmd as the controller sees it: a rate and a CPU proportional to pages_to_scan, a fixed number of pages a pass. */
function modelKsmd(pagesPerScan: number, cpuPercentPerPage: number) {
  const meter = new Meter();
  let state = inputs({ ksm: { run: 0 } });
  let scanned = 0;
  return {
    get pagesToScan(): number {
      return state.ksm.pages_to_scan;
    },
    look(tuner: ObjectiveTuner, intervalMs: number): { decision: TunerDecision; cpu: number } {
      const measured = meter.look(state);
      const decision = tuner.decide(state, measured);
      const pts = decision.settings.pages_to_scan ?? state.ksm.pages_to_scan;
      const rate = (pts / 0.024) * (intervalMs / 1000); // pages a 20 ms sleep lets through (24 ms period)
      scanned += rate;
      const cpu = Math.min(100, pts * cpuPercentPerPage);
      state = inputs({
        nowMs: state.nowMs + intervalMs,
        ksm: {
          run: 1,
          pages_to_scan: pts,
          full_scans: Math.floor(scanned / pagesPerScan),
          pages_scanned: Math.round(scanned),
        },
        ksmdCpuNs: state.ksmdCpuNs + (cpu / 100) * intervalMs * 1e6,
      });
      return { decision, cpu };
    },
  };
}

describe('objective controller', () => {
  const config = {
    targetScanS: 60,
    maxCpuPercent: 10,
    intervalMs: 10_000,
    sleepMs: 20,
    gate: { startBelowKb: undefined, stopAboveKb: undefined, holdMs: 0 },
  };
  test('settles a full scan within 10% of the target when the budget allows', () => {
    const ksmd = modelKsmd(1_000_000, 0.001);
    const tuner = new ObjectiveTuner(config);
    for (let i = 0; i < 60; i++) ksmd.look(tuner, 10_000);
    // 1M pages in 60 s: 16 667 pages/s, 400 pages a 24 ms batch.
    const scanS = 1_000_000 / (ksmd.pagesToScan / 0.024);
    assert.ok(Math.abs(scanS - 60) / 60 < 0.1, `a full scan takes ${scanS.toFixed(1)} s`);
  });
  test('says when the target and the budget cannot both be met, and keeps to the budget', () => {
    const ksmd = modelKsmd(10_000_000, 0.02); // a 60 s scan would need 83% CPU
    const tuner = new ObjectiveTuner(config);
    const cpus: number[] = [];
    const warnings: string[] = [];
    for (let i = 0; i < 40; i++) {
      const { decision, cpu } = ksmd.look(tuner, 10_000);
      cpus.push(cpu);
      warnings.push(...decision.warnings);
    }
    assert.ok(
      cpus.slice(5).every((c) => c <= 10),
      cpus.join(' '),
    );
    assert.ok(
      warnings.some((w) => /target and budget cannot both be met/.test(w)),
      warnings.join('\n'),
    );
  });
});
