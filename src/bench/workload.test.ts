import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { valuePage } from '../simulate/content.ts';
import { buildEngineHost } from './engine-side.ts';
import {
  CLONES_MIX,
  expectedMerge,
  formatSize,
  MIXES,
  makeWorkload,
  PAGE_BYTES,
  pageFills,
  parseMixes,
  parseSizes,
  REGION_ADDRESS,
} from './workload.ts';

const MiB = 2 ** 20;

describe('bench workloads', () => {
  test('split the size evenly over the processes, runs in address order covering every page', () => {
    for (const mix of [...MIXES, CLONES_MIX]) {
      const w = makeWorkload(mix, 16 * MiB, 4);
      assert.equal(w.pagesPerProcess, 1024, mix.name);
      assert.equal(w.sizeBytes, 16 * MiB);
      assert.equal(w.name, `${mix.name} 16MiB`);
      let next = 0;
      for (const run of w.runs) {
        assert.equal(run.pageIndex, next, `${mix.name}: runs are contiguous`);
        assert.ok(run.pageCount >= 1);
        next += run.pageCount;
      }
      assert.equal(next, w.pagesPerProcess, `${mix.name}: runs cover the process`);
      assert.deepEqual(w.settings[0], ['smart_scan', '0'], 'smart_scan off comes first');
    }
  });

  test('image pages are the same in every process, unique pages in none, zero pages are zero', () => {
    const w = makeWorkload(MIXES.find((m) => m.name === 'zero')!, MiB, 4);
    const a = pageFills(w, 0);
    const b = pageFills(w, 3);
    for (const [i, run] of w.runs.entries()) {
      if (run.kind === 'image') assert.deepEqual(a[i], b[i]);
      if (run.kind === 'unique') assert.notEqual(a[i]!.hi, b[i]!.hi);
      if (run.kind === 'zero') {
        assert.equal(a[i]!.loStep, 0);
        assert.deepEqual(valuePage(a[i]!.hi, a[i]!.lo), new Uint8Array(PAGE_BYTES));
      }
    }
    assert.throws(() => pageFills(w, 4), /process index 4 is outside 0\.\.3/);
  });

  test('refuse sizes too small for the mix and fewer than two processes', () => {
    assert.throws(() => makeWorkload(MIXES[0]!, 4 * PAGE_BYTES, 4), /too small for the dup50 mix/);
    assert.throws(() => makeWorkload(MIXES[0]!, MiB, 1), /at least 2 processes, got 1/);
  });

  test('a full merge on the engine reaches what expectedMerge says, for every mix', () => {
    for (const mix of [...MIXES, CLONES_MIX]) {
      const w = makeWorkload(mix, 2 * MiB, 4);
      const { sim } = buildEngineHost(w);
      sim.ksm.fullScans(4);
      const want = expectedMerge(w);
      const c = sim.ksm.counters();
      assert.deepEqual(
        { pagesShared: c.pages_shared, pagesSharing: c.pages_sharing, ksmZeroPages: c.ksm_zero_pages },
        want,
        mix.name,
      );
    }
  });

  test('the engine host maps every process at the same address with the settings written', () => {
    const w = makeWorkload(MIXES.find((m) => m.name === 'zero-zp')!, MiB, 2);
    const { sim, pids } = buildEngineHost(w);
    assert.equal(sim.sysfs.read('use_zero_pages'), '1\n');
    assert.equal(sim.sysfs.read('smart_scan'), '0\n');
    for (const pid of pids) {
      const first = sim.host.read(pid, REGION_ADDRESS + w.runs[1]!.pageIndex * PAGE_BYTES, PAGE_BYTES);
      assert.deepEqual(first, valuePage(0x1000, 0), 'the first image page');
    }
  });

  test('parse --sizes and --mixes, with errors that say what is allowed', () => {
    assert.deepEqual(parseSizes('256M,1G, 4GiB'), [256 * MiB, 2 ** 30, 4 * 2 ** 30]);
    assert.throws(() => parseSizes('256M,lots'), /"lots" is not a size/);
    assert.throws(() => parseSizes('4K'), /at least 256KiB/);
    assert.deepEqual(
      parseMixes('dup50,zero-zp').map((m) => m.name),
      ['dup50', 'zero-zp'],
    );
    assert.throws(
      () => parseMixes('dup50,dupes'),
      /no mix named "dupes"; the mixes are dup50, unique, zero, zero-zp/,
    );
    assert.equal(formatSize(256 * MiB), '256MiB');
    assert.equal(formatSize(4 * 2 ** 30), '4GiB');
  });
});
