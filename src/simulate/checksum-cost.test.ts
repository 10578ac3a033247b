/**
 * ksmd's checksum cost: cmp_and_merge_page() (6.9+) runs calc_checksum() on
 * every processed visit of a page that is not a KSM page, and on nothing
 * else (a KSM page returns before it; a page smart_scan skips is never
 * processed). The engine's cost model must charge exactly that: a simulation
 * that added "missing" checksums on top (as engine-run.ts did) counted part
 * of ksmd's CPU twice.
 *
 * The count is checked pass by pass against the page tables: with no write
 * during a pass, a page's KSM state at its visit is its state at the pass
 * start (a pass only turns pages it has already visited, or the one it is on,
 * into KSM pages), so the checksums of a pass are its processed pages less
 * the mappings of KSM frames in mergeable VMAs at its start.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FRAME_KSM } from '../host/frames.ts';
import { VM_MERGEABLE } from '../host/mm.ts';
import { type Scenario, scenario } from '../testing/scenario.ts';
import { CountingCostModel, SHIPPED_CALIBRATION } from './cost.ts';
import { runOnEngine } from './engine-run.ts';
import { parseScenario } from './scenario.ts';

/** Mappings of KSM frames in mergeable VMAs: the visits that skip calc_checksum(). */
function ksmMappings(t: Scenario): number {
  const flags = t.host.frames.flags;
  let n = 0;
  for (const mm of t.host.liveMms()) {
    for (const vma of mm.vmas) {
      if (!vma.has(VM_MERGEABLE)) continue;
      for (let i = 0; i < vma.pageCount; i++) {
        const pte = vma.pte[i]!;
        if (pte > 0 && flags[pte - 1]! & FRAME_KSM) n++;
      }
    }
  }
  return n;
}

describe('checksum cost', () => {
  test('each pass charges one calc_checksum() per processed visit of a page that is not a KSM page', () => {
    const cost = new CountingCostModel(SHIPPED_CALIBRATION.figures);
    const t = scenario({ costModel: cost });
    t.write('use_zero_pages', '1');
    t.write('max_page_sharing', '3');
    const a = t.process('A');
    const b = t.process('B');
    // Equal pages (chains past max_page_sharing 3), unique pages, zero pages, and a page rewritten between passes.
    const ra = a
      .mmap(64)
      .fill((p) => (p < 24 ? 1 + (p % 4) : p < 40 ? 0 : 100 + p))
      .madvise('mergeable');
    const rb = b
      .mmap(64)
      .fill((p) => (p < 24 ? 1 + (p % 4) : p < 40 ? 0 : 200 + p))
      .madvise('mergeable');
    t.write('run', '1');
    const perPass: Array<{ checksums: number; expected: number; ksm: number; skipped: number }> = [];
    for (let pass = 0; pass < 14; pass++) {
      if (pass % 3 === 1) {
        ra.write(60, [pass, 7]);
        rb.write(5, [pass]);
      }
      const ksm = ksmMappings(t);
      const processed = t.ksm.pagesScanned;
      const skipped = t.ksm.pagesSkipped;
      cost.reset();
      t.ksmd.fullScans(1);
      const processedNow = t.ksm.pagesScanned - processed;
      perPass.push({
        checksums: cost.checksums,
        expected: processedNow - ksm,
        ksm,
        skipped: t.ksm.pagesSkipped - skipped,
      });
    }
    for (const [i, p] of perPass.entries())
      assert.equal(p.checksums, p.expected, `pass ${i}: ${JSON.stringify(p)}`);
    // The cases the count must cover all happened: KSM pages visited, pages skipped, chains, zero pages.
    assert.ok(perPass.some((p) => p.ksm > 0 && p.skipped > 0));
    assert.ok(t.ksm.stableNodeChains > 0 && t.ksm.ksmZeroPages > 0);
  });

  test('a simulation charges only what the engine charges: ksmd CPU is the sum of the events', () => {
    const s = parseScenario(
      `version: 1
name: busy
host: { memory: 96MiB }
ksm: { pages_to_scan: 1000 }
run: { duration: 20s, sample_every: 1s }
groups:
  - name: guest
    count: 4
    memory: 8MiB
    content:
      - { share: 0.5, image: base, writes_per_s: 20 }
      - { share: 0.25, zero: true }
      - { share: 0.25, unique: true, rewrite_every: 5s }
`,
      'busy.yaml',
    );
    const figures = SHIPPED_CALIBRATION.figures;
    const run = runOnEngine(s, { figures, fastForward: false });
    const e = run.stats;
    const expectedNs =
      e.batches * figures.batchNs +
      e.visits * figures.visitPageNs +
      e.checksumsCharged * figures.checksumNs +
      e.compares * figures.compareNs +
      e.stableCompares * figures.stableCompareNs +
      e.merges * figures.mergeNs;
    const last = run.samples.at(-1)!;
    // Merged pages were visited (no checksum) and guests wrote (COW breaks, checksums changing).
    assert.ok(e.merges > 0 && e.visits > e.checksumsCharged && last.cowBreaks > 0, JSON.stringify(e));
    assert.ok(
      Math.abs(last.ksmdCpuMs * 1e6 - expectedNs) < 1e3,
      `ksmd CPU ${last.ksmdCpuMs} ms, events ${expectedNs / 1e6} ms`,
    );
  });
});
