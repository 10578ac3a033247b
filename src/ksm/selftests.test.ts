/**
 * The kernel's own KSM selftests, ported with the same setup and the same
 * expected counters (tools/testing/selftests/mm/ksm_tests.c and
 * ksm_functional_tests.c, 6.18.y).
 *
 * | kernel test                                   | here                                              |
 * |-----------------------------------------------|---------------------------------------------------|
 * | ksm_tests -M -p 10 (CHECK_KSM_MERGE, madvise) | 'ksm_tests -M: 10 pages of * merge into 1 + 9'     |
 * | ksm_tests -M -p 10 -t 1 (prctl)               | 'ksm_tests -M -t 1: prctl merge, then prctl 0'    |
 * | ksm_tests -M with max_page_sharing formula    | 'ksm_tests -M: count check formula, n mod m cases'|
 * | ksm_tests -U (CHECK_KSM_UNMERGE)              | 'ksm_tests -U: writes break both, stale node'     |
 * | ksm_tests -Z -p 10 -z 0                       | 'ksm_tests -Z -z 0: zero pages merge as KSM page'  |
 * | ksm_tests -Z -p 10 -z 1                       | 'ksm_tests -Z -z 1: zero pages go to the zero page'|
 * | ksm_tests -N -m 1 / -N -m 0                   | 'ksm_tests -N -m 1/0: two NUMA nodes'             |
 * | ksm_tests -P -s 100 (KSM_MERGE_TIME)          | 'ksm_tests -P -s 100: 25600 pages, chains'        |
 * | ksm_tests -H -s 100 (THP)                     | 'ksm_tests -H: THPs are split to merge'           |
 * | ksm_tests -D (KSM_UNMERGE_TIME)               | 'ksm_tests -D: MADV_UNMERGEABLE of a merged area' |
 * | ksm_tests -C (KSM_COW_TIME)                   | 'ksm_tests -C: 2000 distinct pairs'               |
 * | ksm_functional_tests test_unmerge             | 'functional: test_unmerge'                        |
 * | test_unmerge_zero_pages                       | 'functional: test_unmerge_zero_pages'             |
 * | test_unmerge_discarded                        | 'functional: test_unmerge_discarded'              |
 * | test_unmerge_uffd_wp                          | not ported: the host models no userfaultfd        |
 * | test_prot_none                                | 'functional: test_prot_none'                      |
 * | test_prctl                                    | 'functional: test_prctl'                          |
 * | test_prctl_fork                               | 'functional: test_prctl_fork'                     |
 * | test_prctl_fork_exec                          | 'functional: test_prctl_fork_exec'                |
 * | test_prctl_unmerge                            | 'functional: test_prctl_unmerge'                  |
 * | test_fork_ksm_merging_page_count              | 'functional: test_fork_ksm_merging_page_count'    |
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Scenario, scenario } from '../testing/scenario.ts';

/** assert_ksm_pages_count(n) of ksm_tests.c. */
function expectPagesCount(t: Scenario, n: number): void {
  const m = t.read('max_page_sharing');
  let shared: number;
  let sharing: number;
  if (n % m === 0 || n % m === 1) {
    shared = Math.floor(n / m);
    sharing = shared * (m - 1);
  } else {
    shared = Math.floor(n / m) + 1;
    sharing = n - shared;
  }
  t.expectSysfs({ pages_shared: shared, pages_sharing: sharing });
}

/** The ksm_tests harness setup: run 2, sleep 0, merge_across_nodes 1, pages_to_scan page_count. */
function ksmTests(options: Parameters<typeof scenario>[0] = {}): Scenario {
  const t = scenario(options);
  t.write('run', '2')
    .write('sleep_millisecs', '0')
    .write('merge_across_nodes', '1')
    .write('pages_to_scan', '10');
  return t;
}

/** The ksm_tests merge building block: madvise (or prctl), run = 1, wait for 2 full scans. */
describe('ksm_tests.c', () => {
  test('ksm_tests -M: 10 pages of * merge into 1 + 9', () => {
    const t = ksmTests();
    const r = t.process('test').mmap(10).fill(0x2a).madvise('mergeable');
    t.ksmd.start();
    expectPagesCount(t, 10);
    t.expectSysfs({ pages_shared: 1, pages_sharing: 9, pages_unshared: 0, pages_volatile: 0, full_scans: 2 });
    r.owner.expectStat({
      ksm_rmap_items: 10,
      ksm_merging_pages: 10,
      ksm_process_profit: 10 * 4096 - 10 * 64,
    });
    assert.equal(t.read('general_profit'), 9 * 4096 - 10 * 64);
  });

  test('ksm_tests -M -t 1: prctl merge, then prctl 0', () => {
    const t = ksmTests();
    const p = t.process('test');
    p.mmap(10).fill(0x2a);
    p.prctl(true);
    t.ksmd.start();
    expectPagesCount(t, 10);
    p.prctl(false);
    assert.equal(p.prctlGet(), 0);
  });

  for (const [n, m] of [
    [10, 2],
    [10, 3],
    [9, 4],
    [600, 256],
    [513, 256],
  ] as const) {
    test(`ksm_tests -M: count check formula, n=${n} max_page_sharing=${m}`, () => {
      const t = ksmTests();
      t.write('max_page_sharing', String(m));
      t.process('test').mmap(n).fill(0x2a).madvise('mergeable');
      t.ksmd.start();
      expectPagesCount(t, n);
    });
  }

  test('ksm_tests -U: writes break both, stale node', () => {
    const t = ksmTests();
    const r = t.process('test').mmap(2).fill(0x2a).madvise('mergeable');
    t.ksmd.start();
    expectPagesCount(t, 2);
    r.write(0, [0x2d]).write(1, [0x2b]);
    // No counter moves at COW time: only ksmd's next visit drops the stale node.
    t.expectSysfs({ pages_shared: 1, pages_sharing: 1 });
    t.ksmd.fullScans(1);
    expectPagesCount(t, 0);
    t.expectSysfs({ pages_volatile: 2 });
  });

  test('ksm_tests -Z -z 0: zero pages merge as a KSM page', () => {
    const t = ksmTests();
    t.write('use_zero_pages', '0');
    t.process('test').mmap(10).fill(0).madvise('mergeable');
    t.ksmd.start();
    expectPagesCount(t, 10);
    t.expectSysfs({ ksm_zero_pages: 0 });
  });

  test('ksm_tests -Z -z 1: zero pages go to the zero page', () => {
    const t = ksmTests();
    t.write('use_zero_pages', '1');
    const p = t.process('test');
    p.mmap(10).fill(0).madvise('mergeable');
    t.ksmd.start();
    expectPagesCount(t, 0);
    t.expectSysfs({ ksm_zero_pages: 10, pages_volatile: 10, general_profit: 10 * 4096 - 10 * 64 });
    // The pass after, the items of the zero-mapped addresses are freed.
    t.ksmd.fullScans(1);
    t.expectSysfs({ ksm_zero_pages: 10, pages_volatile: 0, general_profit: 10 * 4096 });
    p.expectStat({ ksm_rmap_items: 0, ksm_zero_pages: 10, ksm_merging_pages: 0, ksm_process_profit: 40960 });
  });

  for (const [mergeAcross, shared, sharing] of [
    [1, 1, 1],
    [0, 0, 0],
  ] as const) {
    test(`ksm_tests -N -m ${mergeAcross}: one page on each of two NUMA nodes`, () => {
      const t = ksmTests({ numaNodes: 2 });
      t.write('merge_across_nodes', String(mergeAcross));
      const a = t.process('node0', { nid: 0 }).mmap(1).fill(0x2a);
      const b = t.process('node1', { nid: 1 }).mmap(1).fill(0x2a);
      // The merge procedure once per page, as the test does.
      a.madvise('mergeable');
      t.ksmd.start();
      b.madvise('mergeable');
      t.ksmd.start();
      t.expectSysfs({ pages_shared: shared, pages_sharing: sharing });
    });
  }

  test('ksm_tests -P -s 100: 25600 pages of *, chains of 256', () => {
    const t = ksmTests({ invariants: false });
    t.process('test').mmap(25600).fill(0x2a).madvise('mergeable');
    t.ksmd.start();
    expectPagesCount(t, 25600);
    t.expectSysfs({ pages_shared: 100, pages_sharing: 25500, stable_node_chains: 1, stable_node_dups: 100 });
    t.verify();
  });

  test('ksm_tests -H: THPs are split to merge', () => {
    const t = ksmTests({ invariants: false });
    const r = t.process('test').mmap(2048, { thp: true }).fill(0x2a).madvise('mergeable');
    assert.ok(t.host.frames.isLarge(r.frames()[0]!), 'the area is backed by THPs before merging');
    t.ksmd.start();
    // Subpage 1 met subpage 0 of the same THP in the merging pass: that THP is
    // split then and subpage 1 merges one pass later.
    t.ksmd.fullScans(1);
    expectPagesCount(t, 2048);
    assert.ok(t.host.vmstat.thp_split_page >= 4, 'every THP was split');
    t.verify();
  });

  test('ksm_tests -D: MADV_UNMERGEABLE of a merged area', () => {
    const t = ksmTests();
    const r = t.process('test').mmap(512).fill(0x2a).madvise('mergeable');
    t.ksmd.start();
    expectPagesCount(t, 512);
    r.madvise('unmergeable');
    assert.equal(r.mapsDuplicates(), false);
    t.ksmd.fullScans(1);
    t.expectSysfs({ pages_shared: 0, pages_sharing: 0, pages_volatile: 0, pages_unshared: 0 });
  });

  test('ksm_tests -C: 2000 distinct duplicate pairs', () => {
    const t = ksmTests({ invariants: false });
    const r = t.process('test').mmap(4000).fill(0x2a);
    for (let i = 0; i < 2000; i++) {
      const plus = new Array<number>(i + 1).fill(0x2b);
      r.write(2 * i, plus);
      r.write(2 * i + 1, plus);
    }
    r.madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 2000, pages_sharing: 2000 });
    t.verify();
  });
});

/** __mmap_and_merge_range() of ksm_functional_tests.c: 2 MiB of `value`, merged. */
function mmapAndMerge(t: Scenario, value: number, mode: 'madvise' | 'prctl' | 'none', name = 'test') {
  t.ksmd.stop();
  const p = t.process(name);
  assert.equal(p.stat().ksm_merging_pages, 0, 'still pages merged');
  const r = p.mmap(512, { thp: false }).fill(value);
  if (mode === 'madvise') r.madvise('mergeable');
  if (mode === 'prctl') p.prctl(true);
  t.ksmd.start();
  if (value !== 0) assert.ok(p.stat().ksm_merging_pages > 0, 'No pages got merged');
  return r;
}

describe('ksm_functional_tests.c', () => {
  test('functional: test_unmerge', () => {
    const t = scenario();
    const r = mmapAndMerge(t, 0xcf, 'madvise');
    assert.equal(r.mapsDuplicates(), true);
    r.madvise('unmergeable');
    assert.equal(r.mapsDuplicates(), false);
  });

  test('functional: test_unmerge_zero_pages', () => {
    const t = scenario();
    t.write('use_zero_pages', '1');
    const r = mmapAndMerge(t, 0, 'madvise');
    r.owner.expectStat({ ksm_zero_pages: 512 });
    r.madvise('unmergeable', 0, 256);
    r.owner.expectStat({ ksm_zero_pages: 256 });
    for (let p = 256; p < 512; p++) {
      const off = p * 4096;
      r.write(p, [off & 0xff, (off >>> 8) & 0xff, (off >>> 16) & 0xff, off >>> 24]);
    }
    r.owner.expectStat({ ksm_zero_pages: 0 });
    t.expectSysfs({ ksm_zero_pages: 0 });
    assert.equal(r.mapsDuplicates(), false);
  });

  test('functional: test_unmerge_discarded', () => {
    const t = scenario();
    const r = mmapAndMerge(t, 0xcf, 'madvise');
    r.madvise('dontneed', 0, 256);
    r.madvise('unmergeable');
    assert.equal(r.mapsDuplicates(), false);
  });

  test('functional: test_prot_none', () => {
    const t = scenario();
    t.ksmd.stop();
    const p = t.process('test');
    const r = p
      .mmap(512, { thp: false })
      .fill(0x11)
      .mprotect({ read: false, write: false })
      .madvise('mergeable');
    t.ksmd.start();
    assert.ok(p.stat().ksm_merging_pages > 0, 'pages merge although inaccessible');
    for (let i = 0; i < 256; i++) t.host.pokeForce(p.pid, r.pageAddress(i), Uint8Array.of(i, i >> 8, 0, 0));
    r.madvise('unmergeable', 256, 256);
    assert.equal(r.mapsDuplicates(), false);
  });

  test('functional: test_prctl', () => {
    const t = scenario();
    const p = t.process('test');
    p.prctl(true);
    assert.equal(p.prctlGet(), 1);
    p.prctl(false);
    assert.equal(p.prctlGet(), 0);
  });

  test('functional: test_prctl_fork', () => {
    const t = scenario();
    const parent = t.process('parent');
    parent.prctl(true);
    const child = parent.fork('child');
    assert.equal(child.prctlGet(), 1);
    t.ksmd.stop();
    // The child maps and merges with prctl already in effect (mode NONE).
    const r = child.mmap(512, { thp: false }).fill(0xcf);
    t.ksmd.start();
    assert.ok(child.stat().ksm_merging_pages > 0, 'No pages got merged');
    assert.equal(r.mapsDuplicates(), true);
    parent.prctl(false);
  });

  test('functional: test_prctl_fork_exec', () => {
    const t = scenario();
    const parent = t.process('parent');
    parent.prctl(true);
    const child = parent.fork('child');
    child.exec();
    assert.equal(child.prctlGet(), 1, 'MMF_VM_MERGE_ANY survives exec');
    assert.ok(t.ksm.isRegistered(child.proc.mm), 'ksm_execve registered the new mm');
    t.ksmd.stop();
    child.mmap(512, { thp: false }).fill(0xcf);
    t.ksmd.start();
    assert.ok(child.stat().ksm_merging_pages > 0, 'No pages got merged');
    parent.prctl(false);
  });

  test('functional: test_prctl_unmerge', () => {
    const t = scenario();
    const r = mmapAndMerge(t, 0xcf, 'prctl');
    r.owner.prctl(false);
    assert.equal(r.mapsDuplicates(), false);
  });

  test('functional: test_fork_ksm_merging_page_count', () => {
    const t = scenario();
    const r = mmapAndMerge(t, 0xcf, 'madvise');
    const child = r.owner.fork('child');
    t.ksmd.stop();
    child.expectStat({ ksm_merging_pages: 0 });
  });
});
