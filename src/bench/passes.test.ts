import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PASS_COUNTERS, type PassCounters, runPasses } from './passes.ts';

function counters(sharing: number): PassCounters {
  const c = Object.fromEntries(PASS_COUNTERS.map((n) => [n, 0])) as Record<
    (typeof PASS_COUNTERS)[number],
    number
  >;
  c.pages_sharing = sharing;
  return c;
}

test('the steady pass is the second quiet one in a row: the first quiet pass only settles', async () => {
  // pages_sharing after each pass: nothing, merged, quiet, quiet, ...
  const after = [0, 10, 10, 10, 10];
  let n = 0;
  const passes = await runPasses(() => ({ pagesScanned: 100, cpuNs: 1e6, counters: counters(after[n++]!) }));
  assert.deepEqual(
    passes.map((p) => p.role),
    ['first', 'merge', 'settle', 'steady'],
  );
  // A change in pass 3 (rmap items freed, zero pages mapped) pushes the steady pass to 5.
  const later = [0, 10, 12, 12, 12, 12];
  n = 0;
  const again = await runPasses(() => ({ pagesScanned: 100, cpuNs: 1e6, counters: counters(later[n++]!) }));
  assert.deepEqual(
    again.map((p) => p.role),
    ['first', 'merge', 'settle', 'settle', 'steady'],
  );
});

test('a workload that never settles stops at MAX_PASSES with no steady pass', async () => {
  let n = 0;
  const passes = await runPasses(() => ({ pagesScanned: 1, cpuNs: 1, counters: counters(n++) }));
  assert.equal(passes.length, 8);
  assert.ok(passes.every((p) => p.role !== 'steady'));
});
