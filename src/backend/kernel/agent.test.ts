/**
 * The agent (native/agent.c) through the kernel backend: memory round trips, a
 * real fork, and the prctl path that must keep the agent's own memory out of
 * KSM's view. Every test needs root, Linux with KSM and the built agent.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { valuePage } from '../../simulate/content.ts';
import { kernelSkip } from '../../testing/kernel-required.ts';
import { PAGE_SIZE_BYTES } from '../backend.ts';
import { fixtureRegion as region } from './fixture-region.ts';
import { KernelBackend, kernelBackendAvailability, withKernelBackend } from './kernel-backend.ts';
import { readPfns, readSmaps } from './proc-inspect.ts';

const availability = kernelBackendAvailability();
const skip = kernelSkip(availability.ok ? undefined : availability.reason);

const TWO_MIB = 2 * 1024 * 1024;

/** Pages whose every byte differs from its neighbours' (page i, byte j: (seed + i * 7 + j) mod 256). */
function patterned(pageCount: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(pageCount * PAGE_SIZE_BYTES);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (seed + Math.floor(i / PAGE_SIZE_BYTES) * 7 + i) & 0xff;
  return bytes;
}

test('agent: mmap, write and read back 300 pages (more than one 1 MiB message), private, shared and THP', {
  skip,
}, async () => {
  await withKernelBackend(async (k) => {
    assert.deepEqual(await k.spawn('p', { memoryMerge: false }), { ok: true });
    const regions = [
      region('private', 0, 300),
      region('shared', 1, 300, { shared: true }),
      region('thp', 2, 1024, { thp: true }),
    ];
    for (const r of regions) {
      assert.deepEqual(await k.mmap('p', r), { ok: true });
      const bytes = patterned(r.pageCount, r.address / TWO_MIB);
      assert.deepEqual(await k.write('p', r.name, 0, bytes), { ok: true });
      const back = await k.read('p', r.name, 0, r.pageCount);
      assert.ok(Buffer.from(back).equals(Buffer.from(bytes)), `${r.name}: read back differs`);
      const middle = await k.read('p', r.name, 17, 3);
      assert.ok(
        Buffer.from(middle).equals(Buffer.from(bytes.subarray(17 * PAGE_SIZE_BYTES, 20 * PAGE_SIZE_BYTES))),
      );
    }
    const vmas = readSmaps(k.pidOf('p'));
    const thp = vmas.find((v) => v.start === regions[2]!.address);
    assert.ok(thp?.vmFlags.includes('hg'), 'MADV_HUGEPAGE region carries hg');
    const nohuge = vmas.find((v) => v.start === regions[0]!.address);
    assert.ok(nohuge?.vmFlags.includes('nh'), 'MADV_NOHUGEPAGE region carries nh');
    const shared = vmas.find((v) => v.start === regions[1]!.address);
    assert.ok(shared?.vmFlags.includes('sh'), 'MAP_SHARED region carries sh');
    // MAP_FIXED_NOREPLACE: a second mapping on top of the first is refused (EEXIST is outside the
    // interface's errno set, so the backend throws).
    await assert.rejects(k.mmap('p', { ...regions[0]!, name: 'again' }), /EEXIST/);
    assert.deepEqual(await k.munmap('p', 'private'), { ok: true });
    assert.equal(
      readSmaps(k.pidOf('p')).some((v) => v.start === regions[0]!.address),
      false,
    );
  });
});

test('agent: fork is a real fork; the child shares pages copy-on-write and answers on its own connection', {
  skip,
}, async () => {
  await withKernelBackend(async (k) => {
    await k.spawn('parent', { memoryMerge: false });
    const r = region('ram', 0, 8);
    await k.mmap('parent', r);
    const bytes = patterned(8, 3);
    await k.write('parent', 'ram', 0, bytes);
    assert.deepEqual(await k.fork('parent', 'child'), { ok: true });
    const parentPid = k.pidOf('parent');
    const childPid = k.pidOf('child');
    assert.notEqual(childPid, parentPid);
    const ppid = Number(
      (await import('node:fs'))
        .readFileSync(`/proc/${childPid}/stat`, 'latin1')
        .split(') ')[1]!
        .split(' ')[1],
    );
    assert.equal(ppid, parentPid, 'the child is the parent agent’s child');
    const before = readPfns(childPid, r.address, 8);
    assert.ok(
      before.every((pfn) => pfn !== undefined && pfn !== 0),
      'pages present, PFNs visible to root',
    );
    assert.deepEqual(before, readPfns(parentPid, r.address, 8), 'same frames after fork');
    assert.ok(Buffer.from(await k.read('child', 'ram', 0, 8)).equals(Buffer.from(bytes)));
    // A write in the child breaks COW for that page only; the parent keeps its bytes.
    await k.write('child', 'ram', 2, new Uint8Array(PAGE_SIZE_BYTES).fill(0xee));
    const after = readPfns(childPid, r.address, 8);
    assert.notEqual(after[2], before[2]);
    assert.deepEqual(
      after.filter((_, i) => i !== 2),
      before.filter((_, i) => i !== 2),
    );
    assert.ok(Buffer.from(await k.read('parent', 'ram', 0, 8)).equals(Buffer.from(bytes)));
    // The child outlives its parent.
    assert.deepEqual(await k.exit('parent'), { ok: true });
    assert.equal((await k.read('child', 'ram', 2, 1))[0], 0xee);
    const counters = await k.counters();
    assert.deepEqual(Object.keys(counters.processes), ['child']);
  });
});

test('agent: with PR_SET_MEMORY_MERGE only workload regions are mergeable (smaps mg), also in a fork child', {
  skip,
}, async () => {
  const k = new KernelBackend();
  try {
    await k.start([]);
    await k.spawn('before', { memoryMerge: false });
    await k.mmap('before', region('early', 0, 16));
    await k.write('before', 'early', 0, patterned(16, 1));
    assert.deepEqual(await k.prctl('before', true), { ok: true });
    await k.mmap('before', region('late', 1, 16)); // created after the prctl: mergeable at creation
    await k.spawn('at-start', { memoryMerge: true });
    await k.mmap('at-start', region('ram', 0, 16));
    await k.fork('at-start', 'child');
    for (const [name, workload] of [
      ['before', [region('early', 0, 16).address, region('late', 1, 16).address]],
      ['at-start', [region('ram', 0, 16).address]],
      ['child', [region('ram', 0, 16).address]],
    ] as const) {
      const pid = k.pidOf(name);
      const mergeable = readSmaps(pid)
        .filter((v) => v.vmFlags.includes('mg'))
        .map((v) => v.start);
      assert.deepEqual(mergeable.sort(), [...workload].sort(), `${name}: only workload regions carry mg`);
      const c = (await k.counters()).processes[name]!;
      assert.equal(c.ksm_merge_any, true, `${name}: ksm_merge_any`);
      assert.equal(c.ksm_mergeable, true, `${name}: ksm_mergeable`);
    }
    // Memory merge off: the kernel clears every mg flag, workload regions included.
    assert.deepEqual(await k.prctl('before', false), { ok: true });
    assert.equal(readSmaps(k.pidOf('before')).filter((v) => v.vmFlags.includes('mg')).length, 0);
  } finally {
    await k.close();
  }
});

test('agent: fill makes each page its value repeated, as valuePage does, and refuses ranges outside a region', {
  skip,
}, async () => {
  await withKernelBackend(async (k) => {
    await k.spawn('p', { memoryMerge: false });
    await k.mmap('p', region('ram', 0, 8));
    const fill = { hi: 0x80123456, lo: 0xfffffffe, loStep: 1 };
    assert.deepEqual(await k.fillValues('p', 'ram', { pageIndex: 2, pageCount: 5 }, fill), { ok: true });
    const back = await k.read('p', 'ram', 0, 8);
    for (let page = 0; page < 8; page++) {
      const want =
        page >= 2 && page < 7
          ? valuePage(fill.hi, (fill.lo + page - 2) >>> 0)
          : new Uint8Array(PAGE_SIZE_BYTES);
      const got = back.subarray(page * PAGE_SIZE_BYTES, (page + 1) * PAGE_SIZE_BYTES);
      assert.ok(Buffer.from(got).equals(Buffer.from(want)), `page ${page}`);
    }
    await assert.rejects(k.fillValues('p', 'ram', { pageIndex: 6, pageCount: 3 }, fill), /outside region/);
  });
});
