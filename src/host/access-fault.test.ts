/** host.lastAccessFault under no policy: what each access cost, the signal a side channel times. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { scenario } from '../testing/scenario.ts';
import { ACCESS_FAULTS, slowerAccessFault } from './access-fault.ts';
import { PAGE_SIZE } from './constants.ts';

const page = (byte: number) => new Uint8Array(PAGE_SIZE).fill(byte);

describe('lastAccessFault (policy none)', () => {
  test('first touch is anon, then none; a read of an untouched page maps the zero page (anon)', () => {
    const t = scenario();
    const r = t.process('A').mmap(2);
    t.host.write(r.owner.pid, r.pageAddress(0), page(1));
    assert.equal(t.host.lastAccessFault, 'anon');
    t.host.write(r.owner.pid, r.pageAddress(0), page(2));
    assert.equal(t.host.lastAccessFault, 'none');
    r.read(1);
    assert.equal(t.host.lastAccessFault, 'anon');
    r.read(1);
    assert.equal(t.host.lastAccessFault, 'none');
    t.host.write(r.owner.pid, r.pageAddress(1), page(3));
    assert.equal(t.host.lastAccessFault, 'cow', 'a write to the shared zero page copies it');
  });

  test('a write to a page shared after fork is cow; the last mapper reuses it (wp-reuse)', () => {
    const t = scenario();
    const a = t.process('A');
    const r = a.mmap(2).fill(7);
    const child = a.fork('B');
    child.region(r).write(0, [1]);
    assert.equal(t.host.lastAccessFault, 'cow');
    child.exit();
    r.write(1, [1]);
    assert.equal(t.host.lastAccessFault, 'wp-reuse');
    r.write(1, [2]);
    assert.equal(t.host.lastAccessFault, 'none');
  });

  test('a write to a KSM page is cow-ksm; a read of it is none', () => {
    const t = scenario();
    const a = t.process('A').mmap(1).fill(9).madvise('mergeable');
    const b = t.process('B').mmap(1).fill(9).madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 1, pages_sharing: 1 });
    a.read(0);
    assert.equal(t.host.lastAccessFault, 'none');
    b.write(0, [1]);
    assert.equal(t.host.lastAccessFault, 'cow-ksm');
    b.write(0, [2]);
    assert.equal(t.host.lastAccessFault, 'none');
  });

  test('a write to a KSM zero page (use_zero_pages) is cow-ksm', () => {
    const t = scenario();
    const a = t.process('A').mmap(1).fill(0).madvise('mergeable');
    t.write('use_zero_pages', '1');
    t.ksmd.start();
    t.expectSysfs({ ksm_zero_pages: 1 });
    a.read(0);
    assert.equal(t.host.lastAccessFault, 'none');
    a.write(0, [5]);
    assert.equal(t.host.lastAccessFault, 'cow-ksm');
  });

  test('a multi-page write reports the slowest kind it met', () => {
    const t = scenario();
    const a = t.process('A').mmap(3).fill(4).madvise('mergeable', 0, 1);
    t.process('B').mmap(1).fill(4).madvise('mergeable');
    t.ksmd.start();
    t.host.write(a.owner.pid, a.pageAddress(0), new Uint8Array(3 * PAGE_SIZE));
    assert.equal(t.host.lastAccessFault, 'cow-ksm');
    t.host.writePageValue(a.owner.pid, a.pageAddress(2), 1, 2);
    assert.equal(t.host.lastAccessFault, 'none');
  });

  test('the rank order: none < wp-reuse < anon < cow < cow-ksm, copy-on-access ties cow-ksm', () => {
    for (let i = 0; i + 1 < 5; i++) {
      assert.equal(slowerAccessFault(ACCESS_FAULTS[i]!, ACCESS_FAULTS[i + 1]!), ACCESS_FAULTS[i + 1]);
      assert.equal(slowerAccessFault(ACCESS_FAULTS[i + 1]!, ACCESS_FAULTS[i]!), ACCESS_FAULTS[i + 1]);
    }
    assert.equal(slowerAccessFault('cow-ksm', 'copy-on-access'), 'cow-ksm');
    assert.equal(slowerAccessFault('copy-on-access', 'cow-ksm'), 'copy-on-access');
  });
});
