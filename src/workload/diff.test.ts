import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { KsmCounters, ProcessCounters } from '../backend/backend.ts';
import { diffOutcomes, diffStepResults, formatDifference } from './diff.ts';
import type { ReplayOutcome, StepResult } from './replay.ts';

const KSM: KsmCounters = {
  run: 1,
  pages_to_scan: 100,
  advisor_mode: 'none',
  full_scans: 2,
  pages_shared: 3,
  pages_sharing: 10,
  pages_unshared: 4,
  general_profit: 40000,
};

const PROCESS: ProcessCounters = { ksm_rmap_items: 17, ksm_merging_pages: 13, ksm_merge_any: false };

function result(step: number, overrides: Partial<StepResult> = {}): StepResult {
  return { step, op: 'scan', ok: true, ksm: KSM, processes: { a: PROCESS, b: PROCESS }, ...overrides };
}

describe('diff of step results', () => {
  test('identical streams have no difference', () => {
    const diff = diffStepResults([result(1), result(2)], [result(1), result(2)]);
    assert.deepEqual(diff, { differences: [], uncompared: [] });
  });

  test('every differing counter of every step is reported, sysfs in table order, then processes', () => {
    const sim = [
      result(1, { ksm: { ...KSM, pages_sharing: 11, general_profit: 44096, pages_unshared: 3 } }),
      result(2, { processes: { a: { ...PROCESS, ksm_merging_pages: 12 }, b: PROCESS } }),
    ];
    const kernel = [result(1), result(2, { processes: { a: PROCESS } })];
    assert.deepEqual(diffStepResults(sim, kernel).differences, [
      { step: 1, counter: 'pages_sharing', sim: 11, kernel: 10 },
      { step: 1, counter: 'pages_unshared', sim: 3, kernel: 4 },
      { step: 1, counter: 'general_profit', sim: 44096, kernel: 40000 },
      { step: 2, counter: 'a.ksm_merging_pages', sim: 12, kernel: 13 },
      { step: 2, counter: 'b.ksm_rmap_items', sim: 17, kernel: null },
      { step: 2, counter: 'b.ksm_merging_pages', sim: 13, kernel: null },
      { step: 2, counter: 'b.ksm_merge_any', sim: false, kernel: null },
    ]);
  });

  test('the outcome of a step is compared too: ok, errno and the number of failed checks', () => {
    const sim = [result(1, { op: 'set', ok: false, errno: 'EBUSY' })];
    const kernel = [
      result(1, {
        op: 'set',
        failures: [{ kind: 'expect', step: 1, counter: 'run', expected: 1, actual: 0 }],
      }),
    ];
    assert.deepEqual(diffStepResults(sim, kernel).differences, [
      { step: 1, counter: 'ok', sim: false, kernel: true },
      { step: 1, counter: 'errno', sim: 'EBUSY', kernel: null },
      { step: 1, counter: 'failures', sim: 0, kernel: 1 },
    ]);
  });

  test('a step missing on one side compares against nothing', () => {
    const differences = diffStepResults([result(1)], []).differences;
    assert.deepEqual(differences.slice(0, 3), [
      { step: 1, counter: 'op', sim: 'scan', kernel: null },
      { step: 1, counter: 'ok', sim: true, kernel: null },
      { step: 1, counter: 'failures', sim: 0, kernel: null },
    ]);
    assert.equal(differences.length, 3 + Object.keys(KSM).length + 2 * Object.keys(PROCESS).length);
  });

  test('pages_to_scan under the scan-time advisor depends on wall-clock time: reported, not compared', () => {
    const advisor = { ...KSM, advisor_mode: 'scan-time' };
    const diff = diffStepResults(
      [
        result(1, { ksm: { ...advisor, pages_to_scan: 500 } }),
        result(2, { ksm: { ...KSM, pages_to_scan: 100 } }),
      ],
      [
        result(1, { ksm: { ...advisor, pages_to_scan: 731 } }),
        result(2, { ksm: { ...KSM, pages_to_scan: 120 } }),
      ],
    );
    assert.deepEqual(diff.uncompared, [{ step: 1, counter: 'pages_to_scan', sim: 500, kernel: 731 }]);
    assert.deepEqual(diff.differences, [{ step: 2, counter: 'pages_to_scan', sim: 100, kernel: 120 }]);
  });

  test('the advisor on one side only is enough to leave pages_to_scan uncompared; advisor_mode itself is compared', () => {
    const diff = diffStepResults(
      [result(1, { ksm: { ...KSM, advisor_mode: 'scan-time', pages_to_scan: 500 } })],
      [result(1)],
    );
    assert.deepEqual(diff.differences, [
      { step: 1, counter: 'advisor_mode', sim: 'scan-time', kernel: 'none' },
    ]);
    assert.deepEqual(diff.uncompared, [{ step: 1, counter: 'pages_to_scan', sim: 500, kernel: 100 }]);
  });

  test('whole replays compare the start as step 0: settings in force and refused setup calls', () => {
    const outcome = (settings: KsmCounters, setup?: ReplayOutcome['start']['setup']): ReplayOutcome => ({
      start: {
        event: 'start',
        workload: 'w',
        backend: 'sim',
        kernelVersion: '6.18',
        settings,
        ...(setup === undefined ? {} : { setup }),
      },
      results: [result(1)],
      exitStatus: 0,
    });
    const diff = diffOutcomes(
      outcome({ run: 0, max_page_sharing: 256 }),
      outcome({ run: 0, max_page_sharing: 10 }, [{ op: 'mlock', process: 'a', region: 'r', errno: 'EPERM' }]),
    );
    assert.deepEqual(diff.differences, [
      { step: 0, counter: 'max_page_sharing', sim: 256, kernel: 10 },
      {
        step: 0,
        counter: 'setup',
        sim: null,
        kernel: '[{"op":"mlock","process":"a","region":"r","errno":"EPERM"}]',
      },
    ]);
  });

  test('a difference reads as one line', () => {
    assert.equal(
      formatDifference({ step: 3, counter: 'pages_sharing', sim: 500, kernel: 499 }, { compared: true }),
      'step 3: pages_sharing: sim 500, kernel 499',
    );
    assert.equal(
      formatDifference({ step: 1, counter: 'pages_to_scan', sim: 500, kernel: null }, { compared: false }),
      'step 1: pages_to_scan: sim 500, kernel absent (not compared: depends on wall-clock time)',
    );
  });
});
