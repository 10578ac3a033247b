import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { test } from 'node:test';
import fc from 'fast-check';
import { AssertionFailure } from './assert.ts';
import { comparePages, pageIsZero, pagesEqual } from './page-compare.ts';

const PAGE = 4096;

/** Deterministic pseudo-random bytes (xorshift32), so failures replay from the seed fast-check prints. */
function fillRandom(out: Uint8Array, seed: number): Uint8Array {
  let x = seed | 0 || 0x9e3779b9;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function memcmpSign(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): number {
  return Math.sign(Buffer.compare(a.subarray(aOff, aOff + PAGE), b.subarray(bOff, bOff + PAGE)));
}

/** Checks comparePages, pagesEqual and the antisymmetry against Buffer.compare. */
function checkPair(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): void {
  const want = memcmpSign(a, aOff, b, bOff);
  assert.equal(comparePages(a, aOff, b, bOff), want);
  assert.equal(comparePages(b, bOff, a, aOff), -want || 0);
  assert.equal(pagesEqual(a, aOff, b, bOff), want === 0);
  assert.equal(pagesEqual(b, bOff, a, aOff), want === 0);
}

/** Offsets: page-aligned ones (the fast path) and arbitrary ones (the byte loop). */
const pageOffset = fc.oneof(
  fc.integer({ min: 0, max: 7 }).map((n) => n * PAGE),
  fc.integer({ min: 0, max: 7 * PAGE }),
);

test('random pages: comparePages agrees in sign with Buffer.compare', () => {
  fc.assert(
    fc.property(pageOffset, pageOffset, fc.integer(), fc.integer(), (aOff, bOff, seedA, seedB) => {
      const a = fillRandom(new Uint8Array(8 * PAGE), seedA);
      const b = fillRandom(new Uint8Array(8 * PAGE), seedB);
      checkPair(a, aOff, b, bOff);
      assert.equal(comparePages(a, aOff, a, aOff), 0);
    }),
    { numRuns: 300 },
  );
});

test('pages equal but for one random byte at a random position', () => {
  fc.assert(
    fc.property(
      pageOffset,
      pageOffset,
      fc.integer({ min: 0, max: PAGE - 1 }),
      fc.integer({ min: 1, max: 255 }),
      fc.integer(),
      fc.boolean(),
      (aOff, bOff, at, delta, seed, zeroBase) => {
        const a = new Uint8Array(8 * PAGE);
        if (!zeroBase) fillRandom(a, seed);
        const b = new Uint8Array(8 * PAGE);
        b.set(a.subarray(aOff, aOff + PAGE), bOff);
        checkPair(a, aOff, b, bOff);
        assert.equal(comparePages(a, aOff, b, bOff), 0);
        b[bOff + at] = (b[bOff + at]! + delta) & 0xff;
        checkPair(a, aOff, b, bOff);
        assert.notEqual(comparePages(a, aOff, b, bOff), 0);
      },
    ),
    { numRuns: 500 },
  );
});

test('every byte position of a page decides the order, in both directions and across the sign bit', () => {
  const a = fillRandom(new Uint8Array(2 * PAGE), 7);
  const b = new Uint8Array(3 * PAGE);
  for (let at = 0; at < PAGE; at++) {
    b.set(a.subarray(PAGE, 2 * PAGE), PAGE);
    for (const [x, y] of [
      [0x7f, 0x80],
      [0x00, 0xff],
      [0x01, 0x00],
      [0xfe, 0xff],
    ] as const) {
      a[PAGE + at] = x;
      b[PAGE + at] = y;
      const want = x < y ? -1 : 1;
      assert.equal(comparePages(a, PAGE, b, PAGE), want, `byte ${at}: ${x} vs ${y}`);
      assert.equal(comparePages(b, PAGE, a, PAGE), -want);
      assert.equal(pagesEqual(a, PAGE, b, PAGE), false);
    }
    b[PAGE + at] = a[PAGE + at]!;
    assert.equal(comparePages(a, PAGE, b, PAGE), 0);
  }
});

test('the first difference decides, not a larger later one', () => {
  const a = new Uint8Array(PAGE);
  const b = new Uint8Array(PAGE);
  for (const [first, later] of [
    [5, 6],
    [5, 4095],
    [0, 1],
    [3, 4],
    [31, 32],
  ] as const) {
    a.fill(0x10);
    b.fill(0x10);
    a[first] = 0x11; // a > b at the first difference
    b[later] = 0xff; // b far larger later
    assert.equal(comparePages(a, 0, b, 0), 1, `first ${first}, later ${later}`);
    assert.equal(comparePages(b, 0, a, 0), -1);
  }
});

test('pages in one buffer, in views with a byteOffset, and in Node Buffers', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 64 }),
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: 0, max: PAGE - 1 }),
      fc.integer(),
      (viewStart, pa, pb, at, seed) => {
        const backing = new Uint8Array(viewStart + 4 * PAGE);
        const view = backing.subarray(viewStart);
        fillRandom(view.subarray(pa * PAGE, (pa + 1) * PAGE), seed);
        if (pa !== pb) view.copyWithin(pb * PAGE, pa * PAGE, (pa + 1) * PAGE);
        checkPair(view, pa * PAGE, view, pb * PAGE);
        if (pa !== pb) view[pb * PAGE + at] = view[pb * PAGE + at]! ^ 0x80;
        checkPair(view, pa * PAGE, view, pb * PAGE);
        const pooled = Buffer.from(view.subarray(pa * PAGE, (pa + 1) * PAGE));
        checkPair(pooled, 0, view, pb * PAGE);
      },
    ),
    { numRuns: 200 },
  );
});

test('pageIsZero: zero pages, and zero pages but for one byte', () => {
  fc.assert(
    fc.property(
      pageOffset,
      fc.integer({ min: 0, max: PAGE - 1 }),
      fc.integer({ min: 1, max: 255 }),
      (off, at, v) => {
        const a = new Uint8Array(8 * PAGE);
        assert.equal(pageIsZero(a, off), true);
        a[off + at] = v;
        assert.equal(pageIsZero(a, off), false);
        // Bytes outside the page do not count.
        if (off > 0) assert.equal(pageIsZero(a, off - 1), at === PAGE - 1);
        a[off + at] = 0;
        if (off > 0) a[off - 1] = 1;
        if (off + PAGE < a.length) a[off + PAGE] = 1;
        assert.equal(pageIsZero(a, off), true);
      },
    ),
    { numRuns: 300 },
  );
  for (let seed = 1; seed < 20; seed++)
    assert.equal(pageIsZero(fillRandom(new Uint8Array(PAGE), seed), 0), false);
});

test('pages outside their arrays are refused', () => {
  const a = new Uint8Array(2 * PAGE);
  assert.throws(() => comparePages(a, PAGE + 1, a, 0), AssertionFailure);
  assert.throws(() => comparePages(a, 0, a, -PAGE), AssertionFailure);
  assert.throws(() => pagesEqual(a, 0, a, 2 * PAGE), AssertionFailure);
  assert.throws(() => pageIsZero(a, 0.5), AssertionFailure);
  assert.throws(() => pageIsZero(new Uint8Array(PAGE - 1), 0), AssertionFailure);
});
