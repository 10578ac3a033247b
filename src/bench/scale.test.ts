/**
 * The scale run holds page contents as fingerprints; these tests hold that a
 * fingerprint host gives a byte-backed host's counters, every one of them,
 * on the scale run's own kind of workload (guests cloned from one image with
 * per-guest differences and zero pages), small enough for both.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildEngineHost } from './engine-side.ts';
import { runScale, scaleWorkload } from './scale.ts';
import { MIXES, makeWorkload } from './workload.ts';

const MiB = 2 ** 20;

describe('scale run', () => {
  for (const [label, w] of [
    ['16 cloned guests of 2 MiB', scaleWorkload({ guests: 16, guestBytes: 2 * MiB })],
    ['the zero mix with use_zero_pages', makeWorkload(MIXES.find((m) => m.name === 'zero-zp')!, 4 * MiB, 4)],
    // 600 zero pages in each of 4 processes: chains of max_page_sharing (256) with dups.
    ['the zero mix with chains', makeWorkload(MIXES.find((m) => m.name === 'zero')!, 16 * MiB, 4)],
  ] as const) {
    test(`fingerprints and bytes give equal counters after every batch and pass: ${label}`, () => {
      const bytes = buildEngineHost(w, 'bytes');
      const prints = buildEngineHost(w, 'fingerprint');
      // Uneven batches first (a pass ends mid-batch), then whole passes.
      const steps = [997, 3001, 12_345, 'pass', 'pass', 'pass', 'pass'] as const;
      for (const [i, step] of steps.entries()) {
        for (const { sim } of [bytes, prints]) {
          if (step === 'pass') sim.ksm.fullScans(1);
          else sim.ksm.scanPages(step);
        }
        assert.deepEqual(
          prints.sim.ksm.counters(),
          bytes.sim.ksm.counters(),
          `after step ${i + 1} (${step})`,
        );
        for (const [p, pid] of bytes.pids.entries()) {
          assert.deepEqual(
            prints.sim.readProc(prints.pids[p]!, 'ksm_stat'),
            bytes.sim.readProc(pid, 'ksm_stat'),
            `ksm_stat of process ${p + 1} after step ${i + 1}`,
          );
        }
      }
      assert.ok(bytes.sim.ksm.counters().pages_sharing > 0, 'the workload merged');
    });
  }

  test('a small scale run reaches the full merge and reports its memory', async () => {
    const r = await runScale({ guests: 8, guestBytes: MiB });
    assert.equal(r.fullyMerged, true);
    assert.equal(r.passes.at(-1)!.role, 'steady');
    assert.equal(r.guestMemoryBytes, 8 * MiB);
    assert.ok(r.peakRssBytes > 0 && r.pagesSwappedOut >= 0);
  });
});
