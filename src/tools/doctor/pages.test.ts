/**
 * The page classifier on synthetic reads: the way cmp_and_merge_page() goes
 * for each content (merged, volatile, unique, twins, chains at
 * max_page_sharing, zero pages), without a kernel.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Vma } from '../estimate/proc-source.ts';
import { classifyPages, countVerdicts, type FrameSources, type PageVerdict, type VmaPages } from './pages.ts';

const KPF_KSM = 1 << 21;

interface PageSpec {
  readonly key: number;
  readonly frame: number;
  readonly ksm?: boolean;
  readonly changed?: boolean;
  readonly zero?: boolean;
}

function vma(start: number, pages: number): Vma {
  return {
    start,
    end: start + pages * 4096,
    perms: 'rw-p',
    name: '',
    vmFlags: ['rd', 'wr', 'mg'],
    rssKb: pages * 4,
    anonymousKb: pages * 4,
    swapKb: 0,
    anonHugeKb: 0,
    ksmKb: 0,
    sizeKb: pages * 4,
  };
}

function record(pid: number, pages: readonly PageSpec[]): VmaPages {
  const n = pages.length;
  const r: VmaPages = {
    pid,
    vma: vma(0x10000000, n),
    count: n,
    addresses: Float64Array.from(pages, (_, i) => 0x10000000 + i * 4096),
    frames: Float64Array.from(pages, (p) => p.frame),
    kflags: Uint32Array.from(pages, (p) => (p.ksm === true ? KPF_KSM : 0)),
    keys: Float64Array.from(pages, (p) => p.key),
    zero: Uint8Array.from(pages, (p) => (p.zero === true ? 1 : 0)),
    changed: Uint8Array.from(pages, (p) => (p.changed === true ? 1 : 0)),
    verdicts: new Uint8Array(n),
    notPresent: 0,
    swapped: 0,
    file: 0,
    zeroMapped: 0,
    thpPages: 0,
  };
  return r;
}

/** Map counts per frame (kpagecount); 1 for the rest. */
function frames(mapcounts: Record<number, number> = {}): FrameSources {
  const words = (get: (frame: number) => number) => ({ lowWord: get, close: () => {} });
  return { kpageflags: words(() => 0), kpagecount: words((f) => mapcounts[f] ?? 1) };
}

function verdictsOf(r: VmaPages): Partial<Record<PageVerdict, number>> {
  return Object.fromEntries(countVerdicts(r));
}

test('twins across processes merge; a content alone is unique; a changed page is volatile', () => {
  const a = record(1, [
    { key: 1, frame: 10 },
    { key: 2, frame: 11 },
    { key: 3, frame: 12, changed: true },
  ]);
  const b = record(2, [
    { key: 1, frame: 20 },
    { key: 4, frame: 21 },
  ]);
  classifyPages([a, b], frames(), { maxPageSharing: 256, useZeroPages: false });
  assert.deepEqual(verdictsOf(a), { 'twin-waiting': 1, unique: 1, volatile: 1 });
  assert.deepEqual(verdictsOf(b), { 'twin-waiting': 1, unique: 1 });
});

test('two mappings of one frame (shared after fork) are one page to ksmd: unique', () => {
  const a = record(1, [{ key: 5, frame: 30 }]);
  const b = record(2, [{ key: 5, frame: 30 }]);
  classifyPages([a, b], frames(), { maxPageSharing: 256, useZeroPages: false });
  assert.deepEqual([verdictsOf(a), verdictsOf(b)], [{ unique: 1 }, { unique: 1 }]);
});

test('a KSM page is merged; a lone page with its content merges into it while it has room', () => {
  const a = record(1, [
    { key: 6, frame: 40, ksm: true },
    { key: 6, frame: 41 },
  ]);
  classifyPages([a], frames({ 40: 2 }), { maxPageSharing: 256, useZeroPages: false });
  assert.deepEqual(verdictsOf(a), { merged: 1, 'twin-waiting': 1 });
});

test('max_page_sharing: a lone page beside a full KSM page is chain-full', () => {
  const a = record(1, [
    { key: 6, frame: 40, ksm: true },
    { key: 6, frame: 41 },
  ]);
  classifyPages([a], frames({ 40: 4 }), { maxPageSharing: 4, useZeroPages: false });
  assert.deepEqual(verdictsOf(a), { merged: 1, 'chain-full': 1 });
});

test('max_page_sharing 4: 9 equal pages make two full copies and leave the last alone; 10 make three', () => {
  const nine = record(
    1,
    Array.from({ length: 9 }, (_, i) => ({ key: 7, frame: 100 + i })),
  );
  classifyPages([nine], frames(), { maxPageSharing: 4, useZeroPages: false });
  assert.deepEqual(verdictsOf(nine), { 'twin-waiting': 8, 'chain-full': 1 });
  assert.equal(nine.verdicts[8], 5, 'the last page in (pid, address) order is the one left');
  const ten = record(
    1,
    Array.from({ length: 10 }, (_, i) => ({ key: 7, frame: 100 + i })),
  );
  classifyPages([ten], frames(), { maxPageSharing: 4, useZeroPages: false });
  assert.deepEqual(verdictsOf(ten), { 'twin-waiting': 10 });
});

test('zero pages: candidates when two or more, or one with use_zero_pages', () => {
  const two = record(1, [
    { key: 0, frame: 1, zero: true },
    { key: 0, frame: 2, zero: true },
  ]);
  classifyPages([two], frames(), { maxPageSharing: 256, useZeroPages: false });
  assert.deepEqual(verdictsOf(two), { 'zero-candidate': 2 });
  const one = record(1, [{ key: 0, frame: 1, zero: true }]);
  classifyPages([one], frames(), { maxPageSharing: 256, useZeroPages: false });
  assert.deepEqual(verdictsOf(one), { unique: 1 });
  classifyPages([one], frames(), { maxPageSharing: 256, useZeroPages: true });
  assert.deepEqual(verdictsOf(one), { 'zero-candidate': 1 });
});
