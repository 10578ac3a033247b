/** trust-domains: KSM merges a page only with pages of its own domain (trees keyed by node and domain). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { scenario } from '../testing/scenario.ts';
import type { PolicyConfig } from './policy.ts';

const byLabel: PolicyConfig = { name: 'trust-domains' };

describe('trust-domains', () => {
  test('two domains with identical pages never share; each domain shares within itself', () => {
    const t = scenario({ policy: byLabel });
    const a1 = t.process('a1', { label: 'tenant-a' }).mmap(4).fill(0x2a).madvise('mergeable');
    const b1 = t.process('b1', { label: 'tenant-b' }).mmap(4).fill(0x2a).madvise('mergeable');
    t.ksmd.start();
    // Within each process the 4 equal pages merge (one domain each): 2 KSM pages, 3 sharing each.
    t.expectSysfs({ pages_shared: 2, pages_sharing: 6 });
    const [fa] = a1.frames();
    const [fb] = b1.frames();
    assert.notEqual(fa, fb, 'no frame crosses domains');
    const a2 = t.process('a2', { label: 'tenant-a' }).mmap(4).fill(0x2a).madvise('mergeable');
    t.ksmd.fullScans(2);
    t.expectSysfs({ pages_shared: 2, pages_sharing: 10 });
    assert.deepEqual(a2.frames(), a1.frames(), 'same domain shares');
    assert.ok(!b1.frames().includes(fa!));
  });

  test('without the policy the same pages all merge into one', () => {
    const t = scenario();
    t.process('a1', { label: 'tenant-a' }).mmap(4).fill(0x2a).madvise('mergeable');
    t.process('b1', { label: 'tenant-b' }).mmap(4).fill(0x2a).madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 1, pages_sharing: 7 });
  });

  test('by user: uid decides, labels do not', () => {
    const t = scenario({ policy: { name: 'trust-domains', trustDomainBy: 'user' } });
    t.process('a', { uid: 1000, label: 'x' }).mmap(1).fill(5).madvise('mergeable');
    t.process('b', { uid: 1000, label: 'y' }).mmap(1).fill(5).madvise('mergeable');
    t.process('c', { uid: 1001, label: 'x' }).mmap(1).fill(5).madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 1, pages_sharing: 1, pages_unshared: 1 });
  });

  test('by cgroup', () => {
    const t = scenario({ policy: { name: 'trust-domains', trustDomainBy: 'cgroup' } });
    const a = t.process('a', { cgroup: '/tenants/a' }).mmap(1).fill(5).madvise('mergeable');
    const b = t.process('b', { cgroup: '/tenants/b' }).mmap(1).fill(5).madvise('mergeable');
    const a2 = t.process('a2', { cgroup: '/tenants/a' }).mmap(1).fill(5).madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 1, pages_sharing: 1, pages_unshared: 1 });
    assert.deepEqual(a.frames(), a2.frames());
    assert.notDeepEqual(a.frames(), b.frames());
  });

  test('a fork child inherits the domain: it shares within the parent domain only', () => {
    const t = scenario({ policy: byLabel });
    const parent = t.process('p', { label: 'tenant-a' });
    const other = t.process('o', { label: 'tenant-b' });
    const theirs = other
      .mmap(2)
      .fill((p) => p + 1)
      .madvise('mergeable');
    const child = parent.fork('c');
    assert.equal(child.proc.label, 'tenant-a');
    assert.equal(child.proc.mm.owner.label, 'tenant-a');
    const mine = parent
      .mmap(2)
      .fill((p) => p + 1)
      .madvise('mergeable');
    const childs = child
      .mmap(2)
      .fill((p) => p + 1)
      .madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 2, pages_sharing: 2, pages_unshared: 2 });
    assert.deepEqual(childs.frames(), mine.frames());
    assert.ok(theirs.frames().every((f) => !mine.frames().includes(f)));
  });

  test('exec keeps the identity', () => {
    const t = scenario({ policy: byLabel });
    const p = t.process('p', { uid: 1000, cgroup: '/t/a', label: 'tenant-a' });
    p.exec();
    assert.deepEqual(p.proc.identity, { uid: 1000, cgroup: '/t/a', label: 'tenant-a', capSysAdmin: false });
    assert.equal(p.proc.mm.owner, p.proc.identity);
  });

  test('merge_across_nodes=0 with domains: trees per (node, domain), counters and invariants hold', () => {
    const t = scenario({ policy: byLabel, numaNodes: 2 });
    t.write('merge_across_nodes', '0');
    for (const [name, label, nid] of [
      ['a0', 'a', 0],
      ['a1', 'a', 1],
      ['b0', 'b', 0],
      ['b0bis', 'b', 0],
    ] as const) {
      t.process(name, { label, nid }).mmap(2).fill(3).madvise('mergeable');
    }
    t.ksmd.start();
    // a0 (node 0), a1 (node 1), b0+b0bis (node 0, one domain): 3 KSM pages.
    t.expectSysfs({ pages_shared: 3, pages_sharing: 5 });
    assert.equal(t.ksm.stableTreeRoots().length, 4);
  });

  test('use_zero_pages stays allowed across domains (no other page is compared)', () => {
    const t = scenario({ policy: byLabel });
    t.write('use_zero_pages', '1');
    t.process('a', { label: 'a' }).mmap(2).fill(0).madvise('mergeable');
    t.process('b', { label: 'b' }).mmap(2).fill(0).madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ ksm_zero_pages: 4, pages_shared: 0 });
  });

  test('run=2 unmerges every domain', () => {
    const t = scenario({ policy: byLabel });
    for (const label of ['a', 'b', 'c']) t.process(label, { label }).mmap(3).fill(8).madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 3, pages_sharing: 6 });
    t.ksmd.stop();
    t.expectSysfs({ pages_shared: 0, pages_sharing: 0, pages_unshared: 0 });
  });
});
