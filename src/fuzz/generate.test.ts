import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SimBackend } from '../backend/sim/sim-backend.ts';
import { EXIT_OK, parseWorkload, runReplay, STEP_OPS, type Step, type Workload } from '../workload/index.ts';
import {
  DEFAULT_MAX_PAGES,
  DEFAULT_MAX_PROCESSES,
  DEFAULT_MAX_STEPS,
  generateWorkload,
  WAIT_LONG_MS,
  WAIT_SHORT_MS,
  workloadToYaml,
} from './generate.ts';
import { Rng } from './rng.ts';
import { TEST_SIM_CONFIG } from './test-support.ts';

const SEEDS = Array.from({ length: 300 }, (_, i) => i + 1);

/** The workload as a file would give it (and the file's text, for messages). */
function roundTrip(workload: Workload): { text: string; parsed: Workload } {
  const text = workloadToYaml(workload);
  return { text, parsed: parseWorkload(text, workload.fileName, { baseDir: workload.baseDir }) };
}

/** Most pages mapped at once by live processes, following the steps as check.ts does. */
function peakLivePages(workload: Workload): number {
  const live = new Map<string, Map<string, number>>(
    workload.processes.map((p) => [p.name, new Map(p.regions.map((r) => [r.name, r.pageCount]))]),
  );
  const total = (): number =>
    [...live.values()].reduce((sum, regions) => sum + [...regions.values()].reduce((a, b) => a + b, 0), 0);
  let peak = total();
  for (const step of workload.steps) {
    if (step.op === 'mmap') live.get(step.process)!.set(step.region.name, step.region.pageCount);
    if (step.op === 'munmap') live.get(step.process)!.delete(step.region);
    if (step.op === 'fork') live.set(step.child, new Map(live.get(step.process)!));
    if (step.op === 'exit') live.delete(step.process);
    if (step.op === 'exec') live.get(step.process)!.clear();
    peak = Math.max(peak, total());
  }
  return peak;
}

describe('Rng', () => {
  test('the same seed gives the same sequence; int stays in range', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const drawsA = Array.from({ length: 100 }, () => a.int(-3, 3));
    assert.deepEqual(
      drawsA,
      Array.from({ length: 100 }, () => b.int(-3, 3)),
    );
    assert.ok(drawsA.every((n) => n >= -3 && n <= 3));
    assert.deepEqual(new Set(drawsA), new Set([-3, -2, -1, 0, 1, 2, 3]));
    assert.notEqual(new Rng(1).nextU32(), new Rng(2).nextU32());
    assert.notEqual(new Rng(2 ** 40).nextU32(), new Rng(0).nextU32());
  });
});

describe('generateWorkload', () => {
  test('the same seed gives the same workload; another seed another one', () => {
    for (const seed of SEEDS.slice(0, 50)) {
      assert.deepEqual(generateWorkload(seed), generateWorkload(seed), `seed ${seed}`);
      assert.notDeepEqual(
        { ...generateWorkload(seed), name: '', description: '', fileName: '' },
        { ...generateWorkload(seed + 1000), name: '', description: '', fileName: '' },
      );
    }
  });

  test('300 seeds: valid files that read back equal (workloadToYaml round trip), within the limits', () => {
    for (const seed of SEEDS) {
      const workload = generateWorkload(seed);
      const { text, parsed } = roundTrip(workload);
      assert.deepEqual(parsed, workload, `seed ${seed}:\n${text}`);
      assert.ok(workload.steps.length <= DEFAULT_MAX_STEPS, `seed ${seed}: steps`);
      assert.ok(peakLivePages(workload) <= DEFAULT_MAX_PAGES, `seed ${seed}: more than 16 MiB mapped`);
      const settings = [
        ...workload.ksm,
        ...workload.steps.flatMap((s) => (s.op === 'set' ? s.settings : [])),
      ];
      assert.ok(!settings.some((s) => s.name === 'advisor_mode' && s.value === 'scan-time'), `seed ${seed}`);
      // The prune interval is set once at most, never to a value a wait could land near (see generate.ts, Time).
      const prune = settings.filter((s) => s.name === 'stable_node_chains_prune_millisecs');
      assert.ok(
        prune.length <= 1 && prune.every((s) => s.value === '0' || s.value === '60000'),
        `seed ${seed}`,
      );
      const waits = workload.steps.flatMap((s) => (s.op === 'wait' ? [s.ms] : []));
      assert.ok(waits.length <= 2, `seed ${seed}: ${waits.length} waits`);
      assert.ok(
        waits.every((ms) => ms === WAIT_SHORT_MS || ms === WAIT_LONG_MS),
        `seed ${seed}: waits ${waits.join(', ')}`,
      );
    }
  });

  test('300 seeds cover every step type, advice, content kind, region flag and refused setting', () => {
    const seen = new Set<string>();
    const note = (key: string): void => {
      seen.add(key);
    };
    let largestLive = 0;
    for (const seed of SEEDS) {
      const workload = generateWorkload(seed);
      const regions = [
        ...workload.processes.flatMap((p) => p.regions),
        ...workload.steps.flatMap((s) => (s.op === 'mmap' ? [s.region] : [])),
      ];
      for (const process of workload.processes) if (process.memoryMerge) note('memory_merge');
      for (const region of regions) {
        for (const flag of ['mergeable', 'shared', 'thp', 'mlock'] as const) if (region[flag]) note(flag);
        if (region.thp && region.pageCount >= 512) note('thp-512+');
        for (const run of region.content) note(`content:${run.spec.kind}`);
      }
      for (const step of workload.steps as Step[]) {
        note(`op:${step.op}`);
        if (step.op === 'madvise') note(`advice:${step.advice}`);
        if (step.op === 'write') for (const run of step.content) note(`write:${run.spec.kind}`);
        if (step.op === 'set') for (const { name, value } of step.settings) note(`set:${name}=${value}`);
      }
      largestLive = Math.max(largestLive, peakLivePages(workload));
    }
    const wanted = [
      ...STEP_OPS.filter((op) => op !== 'expect').map((op) => `op:${op}`),
      ...['mergeable', 'unmergeable', 'hugepage', 'nohugepage', 'dontneed'].map((a) => `advice:${a}`),
      ...['zero', 'byte', 'tag', 'image', 'unique'].map((k) => `content:${k}`),
      ...['zero', 'byte', 'tag', 'image', 'unique'].map((k) => `write:${k}`),
      ...['mergeable', 'shared', 'thp', 'mlock', 'thp-512+', 'memory_merge'],
      ...[
        'run=2',
        'run=3',
        'max_page_sharing=1',
        'max_page_sharing=2',
        'use_zero_pages=1',
        'smart_scan=0',
      ].map((s) => `set:${s}`),
    ];
    assert.deepEqual(
      wanted.filter((key) => !seen.has(key)),
      [],
    );
    assert.ok(largestLive > DEFAULT_MAX_PAGES / 4, `the largest workload maps only ${largestLive} pages`);
    assert.ok(DEFAULT_MAX_PROCESSES >= 4);
  });

  test('300 seeds replay on the simulator: every step runs, every read holds (exit 0)', async () => {
    // One backend for all: `start` builds a fresh host each time.
    const backend = new SimBackend(TEST_SIM_CONFIG);
    for (const seed of SEEDS) {
      const workload = generateWorkload(seed);
      const outcome = await runReplay(workload, backend);
      assert.equal(outcome.results.length, workload.steps.length, `seed ${seed}`);
      const outOfMemory = outcome.results.filter((result) => result.errno === 'ENOMEM');
      assert.deepEqual(outOfMemory, [], `seed ${seed}: the test host is too small`);
      assert.equal(
        outcome.exitStatus,
        EXIT_OK,
        `seed ${seed}: ${JSON.stringify(outcome.results.flatMap((r) => r.failures ?? []))}`,
      );
      assert.equal(outcome.start.setup, undefined, `seed ${seed}: a setup call was refused`);
    }
  });
});
