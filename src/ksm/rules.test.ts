/** One rule of mm/ksm.c per test: the smallest setup that shows it, with the counters the kernel gives. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SimulatedHost } from '../surface/simulated-host.ts';
import { checkInvariants } from '../testing/invariants.ts';
import { scenario } from '../testing/scenario.ts';
import { RMAP_ITEM_BYTES } from './rmap-item.ts';
import { STABLE_NODE_BYTES } from './stable-node.ts';

describe('metadata budget', () => {
  test('an rmap item is declared within the kernel 64 bytes, a stable node too', () => {
    assert.ok(RMAP_ITEM_BYTES <= 64, `rmap item is ${RMAP_ITEM_BYTES} bytes`);
    assert.ok(STABLE_NODE_BYTES <= 64, `stable node is ${STABLE_NODE_BYTES} bytes`);
  });

  test('the pools allocate at most 64 bytes per rmap item and per stable node in use', () => {
    // 3 processes: one large VMA each, plus many small VMAs (growth step by step, not reserved at once).
    const sim = new SimulatedHost({ memoryBytes: 64 * 2 ** 20 });
    const { host, ksm } = sim;
    const page = new Uint8Array(4096);
    const view = new DataView(page.buffer);
    for (let k = 0; k < 3; k++) {
      const p = host.spawn();
      const big = host.mmap(p.pid, { lengthBytes: 3000 * 4096 });
      for (let i = 0; i < 3000; i++) {
        view.setUint32(0, i % 2 === 0 ? i : (k + 1) * 1e6 + i);
        host.write(p.pid, big + i * 4096, page);
      }
      host.madvise(p.pid, big, 3000 * 4096, 'mergeable');
      for (let v = 0; v < 300; v++) {
        const small = host.mmap(p.pid, { lengthBytes: 4 * 4096 });
        for (let i = 0; i < 4; i++) {
          view.setUint32(0, 5e6 + v * 4 + i);
          host.write(p.pid, small + i * 4096, page);
        }
        host.madvise(p.pid, small, 4 * 4096, 'mergeable');
      }
    }
    sim.sysfs.write('run', '1');
    ksm.fullScans(2);
    const meta = ksm.metadataBytes();
    const items = ksm.counters().rmap_items;
    assert.equal(items, 3 * (3000 + 1200));
    assert.ok(ksm.nodes.live > 1000);
    assert.ok(meta.rmapItems / items <= 64, `${meta.rmapItems / items} bytes per rmap item`);
    assert.ok(meta.stableNodes / ksm.nodes.live <= 64, `${meta.stableNodes / ksm.nodes.live} bytes per node`);
    assert.equal(meta.total, meta.rmapItems + meta.stableNodes + meta.treeRoots + meta.mmSlots);
  });

  test('after many rmap items are freed the pool shrinks, and merging goes on as before', () => {
    const sim = new SimulatedHost({ memoryBytes: 64 * 2 ** 20 });
    const { host, ksm } = sim;
    const page = new Uint8Array(4096);
    const view = new DataView(page.buffer);
    const pages = 2000;
    const map = (pid: number, unique: number): number => {
      const addr = host.mmap(pid, { lengthBytes: pages * 4096 });
      for (let i = 0; i < pages; i++) {
        view.setUint32(0, unique * 1e6 + i);
        host.write(pid, addr + i * 4096, page);
      }
      host.madvise(pid, addr, pages * 4096, 'mergeable');
      return addr;
    };
    const a = host.spawn();
    const b = host.spawn();
    const c = host.spawn();
    const aAddr = map(a.pid, 0);
    map(b.pid, 0);
    const cAddr = map(c.pid, 7);
    sim.sysfs.write('run', '1');
    ksm.fullScans(2);
    checkInvariants(sim);
    host.munmap(c.pid, cAddr, pages * 4096);
    ksm.fullScans(1);
    const before = ksm.items.capacity;
    ksm.fullScans(1);
    assert.ok(ksm.items.capacity < before, `capacity ${before} → ${ksm.items.capacity}`);
    assert.equal(ksm.counters().rmap_items, 2 * pages);
    checkInvariants(sim);
    // Half of A's pages change: their KSM pages keep B alone; the new contents wait unshared
    // after two passes (checksum, then the unstable tree).
    for (let i = 0; i < pages / 2; i++) {
      view.setUint32(0, 9e6 + i);
      host.write(a.pid, aAddr + i * 4096, page);
    }
    ksm.fullScans(2);
    checkInvariants(sim);
    const counters = ksm.counters();
    assert.equal(counters.pages_shared, pages);
    assert.equal(counters.pages_sharing, pages / 2);
    assert.equal(counters.pages_unshared, pages / 2);
  });
});

describe('checksum gate', () => {
  test('a page is volatile on its first visit and waits in the unstable tree on its second', () => {
    const t = scenario().trace();
    t.process('A').mmap(1).fill(7).madvise('mergeable');
    t.write('run', '1');
    t.ksmd.fullScans(1);
    t.expectSysfs({ pages_volatile: 1, pages_unshared: 0, pages_scanned: 1 });
    assert.ok(t.events.some((e) => e.type === 'ksm_decline' && e.reason === 'checksum_changed'));
    t.ksmd.fullScans(1);
    t.expectSysfs({ pages_volatile: 0, pages_unshared: 1 });
    assert.ok(t.events.some((e) => e.type === 'ksm_decline' && e.reason === 'no_twin_yet'));
  });

  test('a page rewritten between passes never merges', () => {
    const t = scenario();
    const a = t.process('A').mmap(1).fill(1).madvise('mergeable');
    t.process('B').mmap(1).fill(9).madvise('mergeable');
    t.write('run', '1');
    for (let pass = 0; pass < 5; pass++) {
      a.fill(pass + 10);
      t.ksmd.fullScans(1);
    }
    t.expectSysfs({ pages_shared: 0, pages_sharing: 0 });
  });

  test('identical pages in two processes converge on the second pass', () => {
    const t = scenario().trace();
    const a = t.process('A');
    const b = t.process('B');
    a.mmap(4).fill(0x2a).madvise('mergeable');
    b.mmap(4).fill(0x2a).madvise('mergeable');
    t.write('run', '1');
    t.ksmd.fullScans(1);
    t.expectSysfs({ pages_shared: 0, pages_sharing: 0, pages_volatile: 8 });
    t.ksmd.fullScans(1);
    t.expectSysfs({ pages_shared: 1, pages_sharing: 7, pages_volatile: 0, pages_unshared: 0 });
    a.expectStat({ ksm_merging_pages: 4, ksm_rmap_items: 4 });
    b.expectStat({ ksm_merging_pages: 4, ksm_rmap_items: 4 });
    assert.equal(t.events.filter((e) => e.type === 'ksm_merge_one_page' && e.ok).length, 1);
    assert.equal(t.events.filter((e) => e.type === 'ksm_merge_with_ksm_page' && e.ok).length, 7);
  });
});

describe('scan order', () => {
  test('the scanned page becomes the KSM page, the tree page is freed', () => {
    const t = scenario();
    const a = t.process('A').mmap(1).fill(3).madvise('mergeable');
    const b = t.process('B').mmap(1).fill(3).madvise('mergeable');
    const [fa] = a.frames();
    const [fb] = b.frames();
    t.ksmd.start();
    assert.deepEqual(a.frames(), [fb]);
    assert.deepEqual(b.frames(), [fb]);
    assert.equal(t.host.frames.flags[fa!], 0, 'the tree page was freed');
  });

  test('an mm registered mid-pass is first scanned in the next pass', () => {
    const t = scenario();
    t.process('A')
      .mmap(100)
      .fill((p) => p)
      .madvise('mergeable');
    t.write('run', '1');
    t.ksmd.scanPages(50);
    const b = t.process('B');
    b.mmap(10).fill(1).madvise('mergeable');
    t.ksmd.scanPages(1000); // ends the pass
    b.expectStat({ ksm_rmap_items: 0 });
    t.ksmd.fullScans(1);
    b.expectStat({ ksm_rmap_items: 10 });
  });

  test('a pass ends a batch', () => {
    const t = scenario();
    t.process('A')
      .mmap(10)
      .fill((p) => p)
      .madvise('mergeable');
    t.write('run', '1');
    assert.equal(t.ksmd.scanPages(100), 10);
    t.expectSysfs({ full_scans: 1 });
    assert.equal(t.ksmd.scanPages(10), 10);
    t.expectSysfs({ full_scans: 1 });
    assert.equal(t.ksmd.scanPages(10), 0, 'the end-of-pass step is a batch of its own');
    t.expectSysfs({ full_scans: 2 });
  });
});

describe('stable node chains', () => {
  test('512 identical pages with max_page_sharing 256: one chain of two dups', () => {
    const t = scenario();
    t.process('A').mmap(512).fill(0x2a).madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({
      pages_shared: 2,
      pages_sharing: 510,
      pages_unshared: 0,
      stable_node_chains: 1,
      stable_node_dups: 2,
    });
    assert.equal(t.read('general_profit'), 510 * 4096 - 512 * 64);
  });

  test('a chain left with one dup collapses when a search walks through it (observed on 6.18.44)', () => {
    const t = scenario();
    t.write('max_page_sharing', '2');
    const r = t.process('A').mmap(4).fill(0x2a).madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ stable_node_chains: 1, stable_node_dups: 2, pages_shared: 2, pages_sharing: 2 });
    // Pages 2 and 3 form the second dup: rewrite both.
    r.write(2, [1]).write(3, [2]);
    t.ksmd.fullScans(1);
    t.expectSysfs({ stable_node_chains: 1, stable_node_dups: 1 });
    t.ksmd.fullScans(1);
    t.expectSysfs({ stable_node_chains: 0, stable_node_dups: 0, pages_shared: 1, pages_sharing: 1 });
  });

  test('a full KSM page sends a new twin to the unstable tree (chain_full)', () => {
    const t = scenario().trace();
    t.write('max_page_sharing', '2');
    t.process('A').mmap(3).fill(5).madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 1, pages_sharing: 1, pages_unshared: 1 });
    assert.ok(t.events.some((e) => e.type === 'ksm_decline' && e.reason === 'chain_full'));
  });
});

describe('zero pages', () => {
  test('use_zero_pages maps empty pages to the zero page; a write gives them back', () => {
    const t = scenario();
    t.write('use_zero_pages', '1');
    const r = t.process('A').mmap(8).fill(0).madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ ksm_zero_pages: 8, pages_shared: 0, pages_sharing: 0 });
    r.write(0, [1]);
    t.expectSysfs({ ksm_zero_pages: 7 });
    r.owner.expectStat({ ksm_zero_pages: 7 });
  });

  test('toggling use_zero_pages leaves existing merges alone', () => {
    const t = scenario();
    t.process('A').mmap(4).fill(0).madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 1, pages_sharing: 3 });
    t.write('use_zero_pages', '1');
    t.ksmd.fullScans(2);
    t.expectSysfs({ pages_shared: 1, pages_sharing: 3, ksm_zero_pages: 0 });
  });

  test('untouched pages (read faults map the shared zero page) are never scanned', () => {
    const t = scenario();
    const r = t.process('A').mmap(8).madvise('mergeable');
    r.read(0, 8);
    t.ksmd.start();
    t.expectSysfs({ pages_scanned: 0 });
    r.owner.expectStat({ ksm_rmap_items: 0 });
  });

  test('exit zaps KSM zero pages at once', () => {
    const t = scenario();
    t.write('use_zero_pages', '1');
    const p = t.process('A');
    p.mmap(4).fill(0).madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ ksm_zero_pages: 4 });
    p.exit();
    t.expectSysfs({ ksm_zero_pages: 0 });
  });
});

describe('copy-on-write and unmerging', () => {
  test('a write to a merged page copies it and moves no counter until ksmd comes back', () => {
    const t = scenario();
    const r = t.process('A').mmap(3).fill(4).madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 1, pages_sharing: 2 });
    const cow = t.host.vmstat.cow_ksm;
    r.write(0, [9]);
    assert.equal(t.host.vmstat.cow_ksm, cow + 1);
    t.expectSysfs({ pages_shared: 1, pages_sharing: 2 });
    t.ksmd.fullScans(1);
    t.expectSysfs({ pages_shared: 1, pages_sharing: 1, pages_volatile: 1 });
    assert.equal(r.read(0)[0], 9);
    assert.equal(r.read(1)[0], 4);
  });

  test('the last mapper of a KSM page still copies on write (KSM folios are never reused)', () => {
    const t = scenario();
    const r = t.process('A').mmap(2).fill(4).madvise('mergeable');
    t.ksmd.start();
    r.write(0, [1]);
    const [before] = r.frames().slice(1);
    r.write(1, [1]);
    assert.notEqual(r.frames()[1], before);
  });

  test('run = 2 unmerges everything at once and resets full_scans', () => {
    const t = scenario();
    const a = t.process('A').mmap(16).fill(1).madvise('mergeable');
    t.ksmd.start();
    assert.equal(a.mapsDuplicates(), true);
    t.write('run', '2');
    t.expectSysfs({
      pages_shared: 0,
      pages_sharing: 0,
      pages_unshared: 0,
      pages_volatile: 0,
      full_scans: 0,
      run: 2,
    });
    assert.equal(a.mapsDuplicates(), false);
    a.owner.expectStat({ ksm_rmap_items: 0, ksm_merging_pages: 0, ksm_mergeable: true });
    // Writing 2 again is a no-op; run = 1 rescans from scratch.
    t.write('run', '2');
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 1, pages_sharing: 15 });
  });

  test('MADV_UNMERGEABLE counters drop at ksmd next visit; the mm leaves the list', () => {
    const t = scenario();
    const r = t.process('A').mmap(4).fill(1).madvise('mergeable');
    t.ksmd.start();
    r.madvise('unmergeable');
    t.expectSysfs({ pages_shared: 1, pages_sharing: 3 });
    t.ksmd.fullScans(1);
    t.expectSysfs({ pages_shared: 0, pages_sharing: 0 });
    assert.equal(t.ksm.isRegistered(r.owner.proc.mm), false);
    r.owner.expectStat({ ksm_mergeable: false });
  });
});

describe('fork, exec, exit', () => {
  test('fork after merging: the child joins the KSM pages on its first visit', () => {
    const t = scenario();
    const r = t.process('P').mmap(4).fill(6).madvise('mergeable');
    t.ksmd.start();
    const child = r.owner.fork('C');
    child.expectStat({ ksm_merging_pages: 0, ksm_rmap_items: 0 });
    t.ksmd.fullScans(1);
    child.expectStat({ ksm_merging_pages: 4, ksm_rmap_items: 4 });
    t.expectSysfs({ pages_shared: 1, pages_sharing: 7 });
  });

  test('fork before merging: pages shared copy-on-write are one page, not a merge', () => {
    const t = scenario().trace();
    const r = t.process('P').mmap(1).fill(6).madvise('mergeable');
    r.owner.fork('C');
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 0, pages_sharing: 0, pages_unshared: 1, pages_volatile: 1 });
    assert.ok(t.events.some((e) => e.type === 'ksm_decline' && e.reason === 'same_page_after_fork'));
  });

  test('exit while ksmd is stopped leaves the counters until ksmd runs', () => {
    const t = scenario();
    const a = t.process('A');
    a.mmap(4).fill(2).madvise('mergeable');
    t.process('B').mmap(4).fill(2).madvise('mergeable');
    t.ksmd.start();
    t.write('run', '0');
    a.exit();
    t.expectSysfs({ pages_shared: 1, pages_sharing: 7 });
    t.write('run', '1');
    t.ksmd.fullScans(1);
    t.expectSysfs({ pages_shared: 1, pages_sharing: 3 });
  });

  test('prctl is inherited across fork and exec; new mappings are mergeable at creation', () => {
    const t = scenario();
    const p = t.process('P').prctl(true);
    const c = p.fork('C');
    c.exec();
    c.expectStat({ ksm_merge_any: true });
    c.mmap(4).fill(1);
    c.expectStat({ ksm_mergeable: true });
  });
});

describe('eligibility', () => {
  test('shared anonymous memory is never merged (madvise is silently ignored)', () => {
    const t = scenario();
    const r = t.process('A').mmap(4, { shared: true }).fill(1).madvise('mergeable');
    // The advice is ignored before registration: ksmd has no mm to scan and does not run.
    assert.equal(t.ksm.isRegistered(r.owner.proc.mm), false);
    t.write('run', '1');
    assert.equal(t.ksm.fullScans(2), 0);
    t.expectSysfs({ pages_shared: 0, pages_sharing: 0, pages_scanned: 0, full_scans: 0 });
    r.owner.expectStat({ ksm_mergeable: false });
  });

  test('mlocked pages merge', () => {
    const t = scenario();
    t.process('A').mmap(4).fill(1).mlock().madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 1, pages_sharing: 3 });
  });
});

describe('smart_scan', () => {
  test('a page that never merges is skipped with growing intervals', () => {
    const t = scenario();
    t.process('A').mmap(1).fill(1).madvise('mergeable');
    t.write('run', '1');
    // Processed at ages 0,1,2,3,5,8,13; skipped at 4,6,7,9,10,11,12.
    t.ksmd.fullScans(14);
    t.expectSysfs({ pages_skipped: 7, pages_scanned: 7 });
  });

  test('smart_scan off processes every page every pass', () => {
    const t = scenario();
    t.write('smart_scan', '0');
    t.process('A').mmap(1).fill(1).madvise('mergeable');
    t.write('run', '1');
    t.ksmd.fullScans(14);
    t.expectSysfs({ pages_skipped: 0, pages_scanned: 14 });
  });
});

describe('ksmd on the virtual clock', () => {
  test('pages_to_scan per batch, sleep_millisecs between batches', () => {
    const t = scenario();
    t.process('A')
      .mmap(1000)
      .fill((p) => p % 251)
      .madvise('mergeable');
    t.write('pages_to_scan', '100').write('sleep_millisecs', '20').write('run', '1');
    t.ksmd.advance(1000);
    // A 20 ms sleep wakes on the tick after it expires (24 ms at HZ 250), plus the batch's own
    // CPU time: 1000 ms ≈ 40 batches ≈ 3.6 passes of 11 batches.
    const scanned = t.read('pages_scanned');
    assert.ok(scanned >= 3600 && scanned <= 4200, `scanned ${scanned}`);
    assert.ok(t.read('full_scans') >= 3);
  });

  test('the scan-time advisor owns pages_to_scan', () => {
    const t = scenario();
    t.write('advisor_mode', 'scan-time');
    t.expectSysfs({ pages_to_scan: 500 });
    assert.equal(t.writeError('pages_to_scan', '100'), 'EINVAL');
    t.process('A').mmap(64).fill(1).madvise('mergeable');
    t.write('run', '1');
    t.ksmd.advance(5000);
    const pages = t.read('pages_to_scan');
    assert.ok(pages >= 1 && pages <= 30000);
    t.write('advisor_mode', 'none');
    t.expectSysfs({ pages_to_scan: 100 });
  });
});

describe('extra references and memory pressure', () => {
  test('a pinned page cannot be write-protected, so it never merges; unpinned, it does', () => {
    const t = scenario().trace();
    const r = t.process('A').mmap(2).fill(8).madvise('mergeable');
    t.host.pin(r.owner.pid, r.pageAddress(0), 4096);
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 0, pages_sharing: 0 });
    assert.ok(t.events.some((e) => e.type === 'ksm_merge_with_ksm_page' && !e.ok));
    t.host.unpin(r.owner.pid, r.pageAddress(0), 4096);
    t.ksmd.fullScans(1);
    t.expectSysfs({ pages_shared: 1, pages_sharing: 1 });
  });

  test('fork copies a pinned page for the child at once (page_needs_cow_for_dma)', () => {
    const t = scenario();
    const r = t.process('A').mmap(1).fill(8);
    t.host.pin(r.owner.pid, r.address, 4096);
    const child = r.owner.fork('B');
    assert.notEqual(child.region(r).frames()[0], r.frames()[0]);
  });

  test('a full host fails the fault with ENOMEM and keeps every page it had', () => {
    const t = scenario({ memoryBytes: 64 * 4096 });
    const p = t.process('A');
    const r = p.mmap(100);
    let written = 0;
    assert.throws(
      () => {
        for (; written < 100; written++) r.fill(written + 1, written, 1);
      },
      (e: unknown) => (e as { code: string }).code === 'ENOMEM',
    );
    assert.ok(written > 50 && written < 64, `filled ${written} pages`);
    for (let i = 0; i < written; i++) assert.equal(r.read(i)[0], i + 1);
    t.verify();
  });
});

describe('why is this page not merged?', () => {
  test('explainPage follows a page through its states', () => {
    const t = scenario();
    const a = t.process('A');
    const r = a.mmap(3).fill((p) => (p === 2 ? 9 : 4));
    const explain = (page: number) => t.ksm.explainPage(a.proc.mm, r.pageAddress(page) / 4096);
    assert.deepEqual(explain(0), { state: 'not_mergeable', why: 'vma_not_mergeable' });
    r.madvise('mergeable');
    assert.deepEqual(explain(0), { state: 'not_yet_scanned' });
    t.write('run', '1');
    t.ksmd.fullScans(1);
    assert.deepEqual(explain(0), { state: 'volatile', reason: 'checksum_changed' });
    t.ksmd.fullScans(1);
    assert.equal(explain(0).state, 'merged');
    assert.deepEqual(explain(2), { state: 'unshared', reason: 'no_twin_yet' });
    assert.deepEqual(t.ksm.explainPage(a.proc.mm, 1), { state: 'not_mapped' });
  });
});

describe('the unstable tree compares live contents', () => {
  test('a page changed after its insertion can hide an equal page from a search in that pass', () => {
    // Three processes, one page each, scanned in this order: A, B, C.
    // Pass 2: A (0x50) goes in, B (0x60) goes right of it. Then A is rewritten
    // to 0x70 before C (0x60) is scanned: C compares with A first (now 0x70),
    // goes left, finds nothing and is inserted: B and C do not merge this pass.
    const t = scenario({ invariants: true });
    const a = t.process('A').mmap(1).fill(0x50).madvise('mergeable');
    t.process('B').mmap(1).fill(0x60).madvise('mergeable');
    t.process('C').mmap(1).fill(0x60).madvise('mergeable');
    t.write('run', '1').write('smart_scan', '0');
    t.ksmd.fullScans(1);
    assert.equal(t.ksmd.scanPages(2), 2); // A and B of pass 2
    a.fill(0x70);
    t.ksmd.scanPages(10);
    t.expectSysfs({ pages_shared: 0, pages_sharing: 0, pages_unshared: 3, full_scans: 2 });
    // The next pass rebuilds the tree from current contents: B and C merge.
    t.ksmd.fullScans(1);
    t.expectSysfs({ pages_shared: 1, pages_sharing: 1 });
  });
});
