/**
 * A fixed set of generated workloads run on the engine and on the real kernel
 * in every `npm test` where the kernel backend can run: the same seeds every
 * time (regressions first: 36, 42 and 73 found engine bugs), each required to
 * give the same counters after every step on both backends.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KernelBackend, kernelBackendAvailability } from '../backend/kernel/kernel-backend.ts';
import { SimBackend } from '../backend/sim/sim-backend.ts';
import { skipKernelTest } from '../testing/kernel-required.ts';
import { formatDifference } from '../workload/index.ts';
import { fuzz } from './fuzz.ts';

const SEEDS = [36, 42, 73, ...Array.from({ length: 27 }, (_, i) => 101 + i)];

test(`${SEEDS.length} generated workloads give the same counters on the engine and on the kernel`, async (t) => {
  const availability = kernelBackendAvailability();
  if (!availability.ok) {
    skipKernelTest(t, `kernel backend unavailable: ${availability.reason}`);
    return;
  }
  const summary = await fuzz({
    seeds: SEEDS,
    makeBackends: () => ({
      sim: new SimBackend({ memoryBytes: 256 * 2 ** 20 }),
      kernel: new KernelBackend(),
    }),
    shrink: false,
  });
  assert.equal(
    summary.differences.length,
    0,
    `seed ${summary.seed}: ${summary.differences
      .slice(0, 10)
      .map((d) => formatDifference(d, { compared: true }))
      .join('; ')}`,
  );
  assert.equal(
    summary.seed,
    undefined,
    `seed ${summary.seed} differs or failed: ${JSON.stringify(summary.finding?.check)}`.slice(0, 2000),
  );
  assert.equal(summary.ran, SEEDS.length);
});
