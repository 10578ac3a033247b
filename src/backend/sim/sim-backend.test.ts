/**
 * The simulator backend's batch and wait, as the kernel backend does them
 * (ksmd-stepper.ts): one ksm_do_scan(N) per batch, ksmd asleep through a wait.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PAGE_SIZE_BYTES } from '../backend.ts';
import { SimBackend } from './sim-backend.ts';

async function started(): Promise<SimBackend> {
  const backend = new SimBackend({ memoryBytes: 32 * 2 ** 20 });
  await backend.start([]);
  await backend.spawn('p', { memoryMerge: false });
  await backend.mmap('p', { name: 'r', address: 2 ** 44, pageCount: 64, shared: false, thp: false });
  await backend.write('p', 'r', 0, new Uint8Array(64 * PAGE_SIZE_BYTES).fill(7));
  await backend.madvise('p', 'r', 'mergeable');
  return backend;
}

describe('SimBackend.batch', () => {
  test('pages_to_scan N, then one batch of N pages: counters mid-pass; a batch stops at the end of its pass', async () => {
    const backend = await started();
    assert.deepEqual(await backend.batch(10), { ok: true });
    let ksm = (await backend.counters()).ksm;
    assert.equal(ksm.run, 1);
    assert.equal(ksm.pages_to_scan, 10);
    assert.equal(ksm.pages_scanned, 10);
    assert.equal(ksm.full_scans, 0);
    assert.equal(ksm.pages_volatile, 10);
    await backend.batch(1000);
    ksm = (await backend.counters()).ksm;
    assert.equal(ksm.pages_scanned, 64, 'the batch ends with the pass');
    assert.equal(ksm.full_scans, 1);
    await backend.scan(1);
    assert.equal((await backend.counters()).ksm.pages_sharing, 63);
  });

  test('refused like the pages_to_scan write while the scan-time advisor owns it; nothing scanned', async () => {
    const backend = await started();
    await backend.setSysfs('advisor_mode', 'scan-time');
    assert.deepEqual(await backend.batch(10), { ok: false, errno: 'EINVAL' });
    assert.equal((await backend.counters()).ksm.pages_scanned, 0);
  });

  test('no mm registered: ksmd wakes and does nothing', async () => {
    const backend = new SimBackend({ memoryBytes: 32 * 2 ** 20 });
    await backend.start([]);
    assert.deepEqual(await backend.batch(10), { ok: true });
    const ksm = (await backend.counters()).ksm;
    assert.equal(ksm.pages_scanned, 0);
    assert.equal(ksm.run, 1);
  });
});

describe('SimBackend.wait', () => {
  test('moves the virtual clock (jiffies) and leaves ksmd asleep', async () => {
    const backend = await started();
    await backend.scan(1);
    const before = backend.simulated.host.clock.nowNs;
    const scanned = (await backend.counters()).ksm.pages_scanned;
    await backend.wait(3000);
    assert.equal(backend.simulated.host.clock.nowNs - before, 3e9);
    assert.equal((await backend.counters()).ksm.pages_scanned, scanned);
  });
});
