import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { test } from 'node:test';
import fc from 'fast-check';
import { AssertionFailure } from '../../host/assert.ts';
import { comparePages } from '../../host/page-compare.ts';
import { pageCompareNative } from './native-compare.ts';

const PAGE = 4096;

test('pageCompareNative agrees with comparePages and Buffer.compare, across arrays and offsets', () => {
  // Three arrays, so that the two-entry cache of Buffer views is missed as well as hit.
  const arrays = [new Uint8Array(4 * PAGE), new Uint8Array(4 * PAGE), new Uint8Array(4 * PAGE)];
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: PAGE, maxLength: PAGE }),
      fc.nat(2),
      fc.nat(3),
      fc.nat(2),
      fc.nat(3),
      fc.option(fc.tuple(fc.nat(PAGE - 1), fc.integer({ min: 0, max: 255 }))),
      (page, ai, ap, bi, bp, change) => {
        const a = arrays[ai]!;
        const b = arrays[bi]!;
        const aOff = ap * PAGE;
        const bOff = bp * PAGE;
        a.set(page, aOff);
        if (a !== b || aOff !== bOff) {
          b.set(page, bOff);
          if (change !== null) b[bOff + change[0]] = change[1];
        }
        const want = Math.sign(Buffer.compare(a.subarray(aOff, aOff + PAGE), b.subarray(bOff, bOff + PAGE)));
        assert.equal(Math.sign(pageCompareNative(a, aOff, b, bOff)), want);
        assert.equal(comparePages(a, aOff, b, bOff), want);
      },
    ),
    { numRuns: 1000 },
  );
});

test('pageCompareNative refuses a page outside its array', () => {
  const bytes = new Uint8Array(2 * PAGE);
  assert.throws(() => pageCompareNative(bytes, PAGE + 1, bytes, 0), AssertionFailure);
  assert.throws(() => pageCompareNative(bytes, 0, bytes, -PAGE), AssertionFailure);
});
