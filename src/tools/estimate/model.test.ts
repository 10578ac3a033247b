/** The arithmetic of an estimate against the reference's worked examples and a step-by-step model. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { estimateTime, generalProfit, msecsToJiffies, processProfit, sharingOf } from './model.ts';

test('sharingOf: the reference examples (§2.12)', () => {
  assert.deepEqual(sharingOf(0, 256), { shared: 0, sharing: 0 });
  assert.deepEqual(sharingOf(1, 256), { shared: 0, sharing: 0 });
  assert.deepEqual(sharingOf(2, 256), { shared: 1, sharing: 1 });
  // Example 1: 10 identical pages.
  assert.deepEqual(sharingOf(10, 256), { shared: 1, sharing: 9 });
  // Example 2: 512 pages, max_page_sharing 256: two KSM pages of one chain.
  assert.deepEqual(sharingOf(512, 256), { shared: 2, sharing: 510 });
  // Example 3: 25 600 pages of '*'.
  assert.deepEqual(sharingOf(25_600, 256), { shared: 100, sharing: 25_500 });
  // n mod m = 1: the leftover page finds no partner.
  assert.deepEqual(sharingOf(257, 256), { shared: 1, sharing: 255 });
  assert.deepEqual(sharingOf(258, 256), { shared: 2, sharing: 256 });
  // The kernel-backend test: 16 mappings, max_page_sharing 10 → 2 KSM pages, 14 sharing.
  assert.deepEqual(sharingOf(16, 10), { shared: 2, sharing: 14 });
});

/**
 * ksmd's second pass over n equal pages, one page at a time (§2.3, §2.6, §2.7):
 * a page joins a KSM page that has room (stable tree); else it pairs with the
 * page waiting in the unstable tree (a new KSM page, or a new dup of the chain);
 * else it waits in the unstable tree.
 */
function stepByStep(n: number, m: number): { shared: number; sharing: number } {
  const nodes: number[] = [];
  let waiting = false;
  for (let i = 0; i < n; i++) {
    const room = nodes.findIndex((c) => c < m);
    if (room >= 0) nodes[room]! += 1;
    else if (waiting) {
      nodes.push(2);
      waiting = false;
    } else waiting = true;
  }
  return { shared: nodes.length, sharing: nodes.reduce((a, c) => a + c - 1, 0) };
}

test('sharingOf agrees with a page-by-page model of the merge pass', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 2, max: 300 }), (n, m) => {
      assert.deepEqual(sharingOf(n, m), stepByStep(n, m));
    }),
    { numRuns: 300 },
  );
});

test('profits: general_profit and ksm_process_profit (§4.3)', () => {
  // Example 1: SG 9, R 10.
  assert.equal(generalProfit(9, 0, 10), 36_224);
  assert.equal(processProfit(10, 0, 10), 40_320);
  // Example 4 after pass 3: 10 KSM zero pages, no item left.
  assert.equal(generalProfit(0, 10, 0), 40_960);
  // Example 2.
  assert.equal(generalProfit(510, 0, 512), 2_056_192);
});

test('time: batches of pages_to_scan, a pass ends a batch, sleeps in whole jiffies plus the firing tick', () => {
  assert.equal(msecsToJiffies(20, 250), 5);
  assert.equal(msecsToJiffies(10, 250), 3);
  assert.equal(msecsToJiffies(0, 250), 0);
  const t = estimateTime({
    pagesPerPass: 1000,
    zeroPageMerges: 0,
    anythingMerges: true,
    pagesToScan: 100,
    sleepMillisecs: 10,
    hz: 250,
  });
  // 1000 pages by 100: the 10th batch processes the last pages, the 11th ends the pass.
  assert.equal(t.batchesPerPass, 11);
  // 10 ms is 3 jiffies; the timer fires on the 4th tick: 16 ms.
  assert.equal(t.sleepPerBatchMs, 16);
  assert.ok(Math.abs(t.passSeconds - 0.176) < 1e-9);
  assert.equal(t.passesToConverge, 2);
  assert.ok(Math.abs(t.convergeSeconds - 0.352) < 1e-9);
  assert.equal(t.profitFinalPasses, 2);

  const z = estimateTime({
    pagesPerPass: 1050,
    zeroPageMerges: 500,
    anythingMerges: true,
    pagesToScan: 100,
    sleepMillisecs: 20,
    hz: 250,
  });
  assert.equal(z.batchesPerPass, 11);
  // Pass 3 scans the 550 pages left: 6 batches.
  assert.equal(z.profitFinalPasses, 3);
  assert.ok(Math.abs(z.profitFinalSeconds - (2 * 11 + 6) * 0.024) < 1e-9);

  const none = estimateTime({
    pagesPerPass: 10,
    zeroPageMerges: 0,
    anythingMerges: false,
    pagesToScan: 100,
    sleepMillisecs: 20,
    hz: 250,
  });
  assert.equal(none.passesToConverge, 0);
  assert.equal(none.convergeSeconds, 0);
});
