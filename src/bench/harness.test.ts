/**
 * The whole benchmark harness on tiny workloads, end to end: the engine side
 * (in this process and in a child process), the kernel side where this
 * machine can run it, the JSON schema, the tables. No timing is asserted:
 * only that every figure is there, and that both sides saw the same counters.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { builtIn } from '../simulate/library.ts';
import { scaleScenario } from '../simulate/scenario.ts';
import { kernelSkip } from '../testing/kernel-required.ts';
import { runInChild } from './child.ts';
import { formatRatio, readmeTable, renderTerminal } from './format.ts';
import { compareSides, runBench } from './harness.ts';
import { kernelSideUnavailable } from './kernel-side.ts';
import { parseBenchCommandLine } from './options.ts';
import { parseBenchResults } from './schema.ts';
import { measureSweepSpeed } from './sweep-speed.ts';
import { MIXES, makeWorkload } from './workload.ts';

const MiB = 2 ** 20;
const kernelSideSkip = kernelSkip(kernelSideUnavailable());

describe('bench harness', () => {
  test('the engine side alone on every mix: a complete result that survives its schema', async () => {
    const results = await runBench({
      sizes: [MiB],
      mixes: MIXES,
      kernel: false,
      scale: { guests: 4, guestBytes: MiB },
      sweep: 'none',
      isolate: false,
      command: 'npm run bench -- --sizes 1M --no-kernel',
    });
    const back = parseBenchResults(JSON.parse(JSON.stringify(results)));
    assert.equal(back.workloads.length, MIXES.length);
    assert.equal(back.kernelSide.available, false);
    assert.equal(back.kernelSide.reason, 'not asked for (--no-kernel)');
    for (const w of back.workloads) {
      assert.ok(!('error' in w.engine), `${w.name}: ${JSON.stringify(w.engine)}`);
      assert.deepEqual(
        w.engine.passes.map((p) => p.role).filter((r) => r !== 'settle'),
        ['first', 'merge', 'steady'],
        w.name,
      );
      for (const p of w.engine.passes)
        assert.ok(p.pagesScanned > 0 && p.cpuNs > 0, `${w.name} pass ${p.pass}`);
      assert.ok(w.engine.hashCeiling !== null && w.engine.hashCeiling.perPagePagesPerSecond > 0);
      const m = w.engine.metadata;
      assert.ok(m.allocatedBytes > 0 && m.scannedPages === 4 * 64);
      // The walk finds at least the pools' declared arrays (their free lists and tree roots come on top).
      assert.ok(m.ksmArrayBytes >= m.allocatedBytes, `${w.name}: ${m.ksmArrayBytes} < ${m.allocatedBytes}`);
      assert.ok(w.engine.peakRssBytes > 0);
      assert.equal(w.kernel.ok, false);
      assert.deepEqual(w.ratio, { first: null, merge: null, steady: null });
      assert.equal(w.countersMatch, null);
    }
    assert.ok(back.scale !== null && !('error' in back.scale) && back.scale.fullyMerged);
    const text = renderTerminal(back);
    for (const w of back.workloads) assert.ok(text.includes(w.name), `the table names ${w.name}`);
    assert.ok(text.includes('not asked for (--no-kernel)'), 'the ksmd column says why it is empty');
    assert.ok(readmeTable(back).includes('`npm run bench -- --sizes 1M --no-kernel`'));
  });

  test('the kernel side and the engine side on the same workloads see the same counters after every pass', {
    skip: kernelSideSkip,
  }, async () => {
    const results = await runBench({
      sizes: [MiB],
      mixes: MIXES,
      kernel: true,
      scale: null,
      sweep: 'none',
      isolate: false,
      command: 'test',
    });
    for (const w of parseBenchResults(JSON.parse(JSON.stringify(results))).workloads) {
      assert.ok(w.kernel.ok, `${w.name}: ${w.kernel.ok ? '' : w.kernel.reason}`);
      assert.equal(w.countersMatch, true, `${w.name}: ${w.counterDifference}`);
      for (const p of w.kernel.passes) assert.ok(p.pagesScanned === 4 * 64 || p.role !== 'first');
      assert.ok(w.ratio.first !== null && w.ratio.merge !== null && w.ratio.steady !== null, w.name);
    }
  });

  test('an engine job in a child process returns the same counters as in this one', async () => {
    const w = makeWorkload(MIXES[0]!, MiB);
    const child = await runInChild({ kind: 'engine', workload: w, options: { hashCeiling: false } });
    const here = await runBench({
      sizes: [MiB],
      mixes: [MIXES[0]!],
      kernel: false,
      scale: null,
      sweep: 'none',
      isolate: false,
      command: 'test',
    });
    const inProcess = here.workloads[0]!.engine;
    assert.ok(!('error' in inProcess));
    assert.deepEqual(
      child.passes.map((p) => p.counters),
      inProcess.passes.map((p) => p.counters),
    );
    assert.equal(child.hashCeiling, null);
    assert.equal(child.metadata.afterGc, true, 'the child runs with --expose-gc');
  });

  test('a side that could not run is reported with its reason, and the ratios are left empty', () => {
    const w = makeWorkload(MIXES[1]!, MiB);
    const r = compareSides(w, { ok: false, reason: 'the kernel backend needs root' }, { error: 'boom' });
    assert.equal(r.countersMatch, null);
    assert.deepEqual(r.ratio, { first: null, merge: null, steady: null });
    assert.equal(formatRatio(1.5, 2), '1.50× ✗');
    assert.equal(formatRatio(2.5, 2), '2.50×');
    assert.equal(formatRatio(null, 2), '–');
  });

  test('the default scenario speed is CPU seconds per simulated hour', () => {
    const tiny = {
      ...scaleScenario(builtIn('kvm-clones'), 1 / 64),
      durationMs: 600_000,
      sampleEveryMs: 60_000,
    };
    const s = measureSweepSpeed(true, tiny);
    assert.equal(s.simulatedMs, 600_000);
    assert.ok(Math.abs(s.cpuSecondsPerSimulatedHour - (s.cpuNs / 1e9) * 6) < 1e-9);
  });

  test('command line: defaults, --quick, --no-kernel, --scale and --no-scale, and bad input named', () => {
    const d = parseBenchCommandLine([]);
    assert.deepEqual(d.bench.sizes, [256 * MiB, 2 ** 30, 4 * 2 ** 30]);
    assert.equal(d.bench.mixes.length, MIXES.length);
    assert.equal(d.jsonPath, 'bench-results.json');
    assert.equal(d.bench.kernel, true);
    assert.deepEqual(d.bench.scale, { guests: 64, guestBytes: 2 ** 30 });
    assert.equal(parseBenchCommandLine(['--no-scale']).bench.scale, null);
    assert.equal(parseBenchCommandLine(['--quick']).bench.scale, null);
    assert.equal(d.bench.sweep, 'both');
    assert.equal(d.bench.command, 'npm run bench');
    const q = parseBenchCommandLine(['--quick', '--no-kernel', '--scale', '--json', 'x.json']);
    assert.deepEqual(q.bench.sizes, [256 * MiB]);
    assert.equal(q.bench.kernel, false);
    assert.deepEqual(q.bench.scale, { guests: 64, guestBytes: 2 ** 30 });
    assert.equal(q.bench.sweep, 'fast-forward');
    assert.equal(q.jsonPath, 'x.json');
    assert.equal(
      q.bench.command,
      'npm run bench -- --quick --no-kernel --scale',
      'output paths do not change figures',
    );
    const quiet = { writeErr: () => undefined, writeOut: () => undefined };
    assert.throws(() => parseBenchCommandLine(['--sizes', 'big'], false, quiet), /"big" is not a size/);
    assert.throws(() => parseBenchCommandLine(['--mixes', 'nope'], false, quiet), /no mix named "nope"/);
  });
});
