/** zero-pages-only: only all-zero pages merge, as Windows and several hypervisors do. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { scenario } from '../testing/scenario.ts';

describe('zero-pages-only', () => {
  test('identical non-zero pages are declined with reason policy; zero pages merge into a KSM page', () => {
    const t = scenario({ policy: { name: 'zero-pages-only' } }).trace();
    const a = t
      .process('A')
      .mmap(3)
      .fill((p) => (p === 0 ? 0 : 7))
      .madvise('mergeable');
    const b = t
      .process('B')
      .mmap(3)
      .fill((p) => (p === 0 ? 0 : 7))
      .madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 1, pages_sharing: 1, pages_unshared: 0, pages_volatile: 4 });
    assert.equal(a.frames()[0], b.frames()[0]);
    assert.notEqual(a.frames()[1], b.frames()[1]);
    const declined = t.events.filter((e) => e.type === 'ksm_decline' && e.reason === 'policy');
    assert.equal(declined.length, 4, 'each non-zero page once, in the pass after its checksum settled');
    assert.deepEqual(t.ksm.explainPage(a.owner.proc.mm, a.pageAddress(1) / 4096), {
      state: 'volatile',
      reason: 'policy',
    });
  });

  test('with use_zero_pages the zero pages go to the shared zero page', () => {
    const t = scenario({ policy: { name: 'zero-pages-only' } });
    t.write('use_zero_pages', '1');
    t.process('A')
      .mmap(4)
      .fill((p) => (p < 2 ? 0 : 9))
      .madvise('mergeable');
    t.process('B')
      .mmap(4)
      .fill((p) => (p < 2 ? 0 : 9))
      .madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ ksm_zero_pages: 4, pages_shared: 0, pages_sharing: 0 });
  });

  test('a page that differs from zero in its last byte only is declined', () => {
    const t = scenario({ policy: { name: 'zero-pages-only' } });
    const a = t.process('A').mmap(1).madvise('mergeable');
    const b = t.process('B').mmap(1).madvise('mergeable');
    a.write(0, [1], 4095);
    b.write(0, [1], 4095);
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 0, pages_sharing: 0 });
  });

  test('without the policy the same pages merge', () => {
    const t = scenario();
    t.process('A')
      .mmap(3)
      .fill((p) => (p === 0 ? 0 : 7))
      .madvise('mergeable');
    t.process('B')
      .mmap(3)
      .fill((p) => (p === 0 ? 0 : 7))
      .madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 2, pages_sharing: 4 });
  });
});
