/**
 * KernelBackend against the machine's own ksmd: merging counted pass by pass,
 * sysfs refusals with the kernel's errno, the no-mm decision of `scan`, and
 * settings restored on close. Every test needs root, Linux with KSM and the
 * built agent, and skips with the reason otherwise.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { kernelSkip } from '../../testing/kernel-required.ts';
import { PAGE_SIZE_BYTES, type RegionMapping } from '../backend.ts';
import { KernelBackend, kernelBackendAvailability, withKernelBackend } from './kernel-backend.ts';
import { readKsm, readKsmNumber, writeKsm } from './ksm-sysfs.ts';
import { readSmaps } from './proc-inspect.ts';
import { SysfsGuard } from './sysfs-guard.ts';

const availability = kernelBackendAvailability();
const skip = kernelSkip(availability.ok ? undefined : availability.reason);

const RAM: RegionMapping = {
  name: 'ram',
  address: 0x1000_0000_0000,
  pageCount: 32,
  shared: false,
  thp: false,
};

/** 16 pages filled with bytes 1..16 (the same in every process), then 16 pages unique to `process`. */
function sixteenSameSixteenUnique(process: string): Uint8Array {
  const bytes = new Uint8Array(32 * PAGE_SIZE_BYTES);
  for (let i = 0; i < 16; i++) bytes.fill(i + 1, i * PAGE_SIZE_BYTES, (i + 1) * PAGE_SIZE_BYTES);
  const tag = new TextEncoder().encode(`unique page of ${process} #`);
  for (let i = 16; i < 32; i++) {
    bytes.set(tag, i * PAGE_SIZE_BYTES);
    bytes[i * PAGE_SIZE_BYTES + tag.length] = i;
  }
  return bytes;
}

async function twoMergeableProcesses(k: KernelBackend): Promise<void> {
  for (const p of ['a', 'b']) {
    assert.deepEqual(await k.spawn(p, { memoryMerge: false }), { ok: true });
    assert.deepEqual(await k.mmap(p, RAM), { ok: true });
    assert.deepEqual(await k.write(p, 'ram', 0, sixteenSameSixteenUnique(p)), { ok: true });
    assert.deepEqual(await k.madvise(p, 'ram', 'mergeable'), { ok: true });
  }
}

test('kernel: 2 processes x (16 identical + 16 unique pages): scan(2) merges 16 into 16; scan(1) is pass 3', {
  skip,
}, async () => {
  await withKernelBackend(async (k) => {
    await twoMergeableProcesses(k);
    const idle = await k.counters();
    assert.equal(idle.ksm.full_scans, 0);
    assert.equal(idle.ksm.run, 0);
    assert.equal(idle.ksm.pages_scanned, 0);

    await k.scan(2);
    const c = await k.counters();
    assert.equal(c.ksm.run, 1);
    assert.equal(c.ksm.full_scans, 2);
    assert.equal(c.ksm.pages_shared, 16);
    assert.equal(c.ksm.pages_sharing, 16);
    assert.equal(c.ksm.pages_unshared, 32);
    assert.equal(c.ksm.pages_volatile, 0);
    assert.equal(c.ksm.pages_scanned, 128, 'two passes over 2 x 32 pages');
    assert.equal(
      c.ksm.pages_to_scan,
      100,
      'the workload sees the pacing it set (the default), not the stepper’s',
    );
    assert.equal(c.ksm.sleep_millisecs, 20);
    for (const p of ['a', 'b']) {
      assert.equal(c.processes[p]?.ksm_merging_pages, 16, `${p}: ksm_merging_pages`);
      assert.equal(c.processes[p]?.ksm_rmap_items, 32, `${p}: ksm_rmap_items`);
      assert.equal(c.processes[p]?.ksm_mergeable, true);
      assert.equal(c.processes[p]?.ksm_merge_any, false);
    }
    // Reading merged pages back must not unshare them (smaps' KSM line is not lazy).
    const before = readSmaps(k.pidOf('a')).find((v) => v.start === RAM.address)?.ksmKb;
    assert.equal(before, 64);
    const back = await k.read('a', 'ram', 0, 32);
    assert.ok(Buffer.from(back).equals(Buffer.from(sixteenSameSixteenUnique('a'))));
    assert.equal(readSmaps(k.pidOf('a')).find((v) => v.start === RAM.address)?.ksmKb, 64);

    await k.scan(1);
    const c3 = await k.counters();
    assert.equal(c3.ksm.full_scans, 3);
    assert.equal(c3.ksm.pages_shared, 16);
    assert.equal(c3.ksm.pages_sharing, 16);
  });
});

test('kernel: scan(1) ten times is exactly ten passes, each a single batch', { skip }, async () => {
  await withKernelBackend(async (k) => {
    await twoMergeableProcesses(k);
    for (let pass = 1; pass <= 10; pass++) {
      await k.scan(1);
      assert.equal((await k.counters()).ksm.full_scans, pass);
    }
    // ksmd sleeps between scans: nothing moves while we wait.
    const still = await k.counters();
    await sleep(100);
    assert.deepEqual(await k.counters(), still);
  });
});

test('kernel: setSysfs reports the kernel’s errno (EINVAL, EBUSY, EACCES) and accepts what it accepts', {
  skip,
}, async () => {
  await withKernelBackend(async (k) => {
    assert.deepEqual(await k.setSysfs('max_page_sharing', '1'), { ok: false, errno: 'EINVAL' });
    assert.deepEqual(await k.setSysfs('run', '3'), { ok: false, errno: 'EINVAL' });
    assert.deepEqual(await k.setSysfs('run', 'x'), { ok: false, errno: 'EINVAL' });
    assert.deepEqual(await k.setSysfs('pages_to_scan', '-1'), { ok: false, errno: 'EINVAL' });
    assert.deepEqual(await k.setSysfs('pages_shared', '0'), { ok: false, errno: 'EACCES' }, 'read-only file');
    assert.deepEqual(await k.setSysfs('max_page_sharing', '99999999999'), { ok: false, errno: 'ERANGE' });
    assert.deepEqual(await k.setSysfs('pages_to_scan', '+250\n'), { ok: true });
    assert.deepEqual(await k.setSysfs('sleep_millisecs', '7'), { ok: true });
    const c = await k.counters();
    assert.equal(c.ksm.pages_to_scan, 250);
    assert.equal(c.ksm.sleep_millisecs, 7);
    assert.equal(readKsmNumber('pages_to_scan'), 0, 'physically the brake stays on');

    await twoMergeableProcesses(k);
    await k.scan(2);
    assert.equal((await k.counters()).ksm.pages_shared, 16);
    assert.deepEqual(await k.setSysfs('merge_across_nodes', '0'), { ok: false, errno: 'EBUSY' });
    assert.deepEqual(await k.setSysfs('max_page_sharing', '10'), { ok: false, errno: 'EBUSY' });
    assert.deepEqual(await k.setSysfs('merge_across_nodes', '1'), { ok: true }, 'the same value is fine');
    assert.deepEqual(await k.setSysfs('run', '2'), { ok: true });
    const unmerged = await k.counters();
    assert.equal(unmerged.ksm.pages_shared, 0);
    assert.equal(unmerged.ksm.full_scans, 0, 'run=2 restarts full_scans');
    assert.deepEqual(await k.setSysfs('merge_across_nodes', '0'), { ok: true });
    // run=2 left both mms registered: the next scan starts over from pass 1.
    await k.scan(1);
    assert.equal((await k.counters()).ksm.full_scans, 1);
  });
});

test('kernel: with no mm registered scan(N) completes no pass (ksmd does not run) but sets run=1', {
  skip,
}, async () => {
  await withKernelBackend(async (k) => {
    await k.spawn('idle', { memoryMerge: false });
    await k.mmap('idle', RAM);
    await k.write('idle', 'ram', 0, sixteenSameSixteenUnique('idle'));
    await k.scan(3);
    const c = await k.counters();
    assert.equal(c.ksm.full_scans, 0);
    assert.equal(c.ksm.run, 1);

    // Registration into the empty list wakes ksmd (run is 1): the brake keeps it from scanning.
    await k.madvise('idle', 'ram', 'mergeable');
    await sleep(50);
    const woken = await k.counters();
    assert.equal(woken.ksm.full_scans, 0);
    assert.equal(woken.ksm.pages_scanned, 0);
    await k.scan(2);
    assert.equal((await k.counters()).ksm.full_scans, 2);

    // No VM_MERGEABLE VMA left: the next pass drops the mm's slot, then the list is empty.
    await k.madvise('idle', 'ram', 'unmergeable');
    await k.scan(3);
    const after = await k.counters();
    assert.equal(after.ksm.full_scans, 3, 'one pass (it unregisters the mm), then none');
    assert.equal(after.processes.idle?.ksm_rmap_items, 0);
  });
});

test('kernel: close() puts every setting back as it was, run 0; start() begins from Linux defaults', {
  skip,
}, async () => {
  // The outer guard holds the machine's lock and the real defaults; the backend under test uses a
  // private lock and finds the host with odd settings, which it must restore.
  const outer = await SysfsGuard.acquire();
  try {
    const odd: Record<string, string> = {
      pages_to_scan: '123',
      sleep_millisecs: '45',
      smart_scan: '0',
      use_zero_pages: '1',
      max_page_sharing: '300',
      stable_node_chains_prune_millisecs: '1500',
      advisor_max_cpu: '50',
    };
    for (const [name, value] of Object.entries(odd))
      assert.deepEqual(writeKsm(name, value), { ok: true }, name);
    const k = new KernelBackend({ lockPath: '/tmp/ksmkit-kernel-test-inner.lock' });
    try {
      await k.start([['max_page_sharing', '2']]);
      const c = await k.counters();
      assert.equal(c.ksm.smart_scan, 1);
      assert.equal(c.ksm.use_zero_pages, 0);
      assert.equal(c.ksm.max_page_sharing, 2);
      assert.equal(c.ksm.pages_to_scan, 100);
      assert.equal(c.ksm.stable_node_chains_prune_millisecs, 2000);
      await twoMergeableProcesses(k);
      await k.scan(2);
      assert.equal((await k.counters()).ksm.pages_shared, 16);
    } finally {
      await k.close();
      await k.close(); // twice is fine
    }
    for (const [name, value] of Object.entries(odd)) assert.equal(readKsm(name), value, name);
    assert.equal(readKsm('run'), '0');
    assert.equal(readKsm('pages_shared'), '0');
    assert.equal(readKsm('pages_sharing'), '0');
    assert.equal(readKsm('advisor_mode'), '[none] scan-time');
  } finally {
    outer.release();
  }
  assert.equal(readKsm('pages_to_scan'), '100');
  assert.equal(readKsm('smart_scan'), '1');
});
