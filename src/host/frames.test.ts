import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { pageCompareNative } from '../backend/sim/native-compare.ts';
import { FramePool } from './frames.ts';

for (const [name, pageCompare] of [
  ['the word loop', undefined],
  ['an injected native compare', pageCompareNative],
] as const) {
  test(`FramePool.compare/equal/isZero agree with Buffer.compare on pages that differ anywhere (${name})`, () => {
    const pool = new FramePool({
      memoryBytes: 64 * 4096,
      numaNodes: 1,
      ...(pageCompare === undefined ? {} : { pageCompare }),
    });
    const a = pool.alloc(0);
    const b = pool.alloc(0);
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 4096, maxLength: 4096 }),
        fc.nat(4095),
        fc.integer({ min: 0, max: 255 }),
        fc.boolean(),
        (page, at, value, sameBase) => {
          const other = sameBase ? Uint8Array.from(page) : new Uint8Array(4096);
          other[at] = value;
          pool.writeBytes(a, 0, page);
          pool.writeBytes(b, 0, other);
          const expected = Math.sign(Buffer.compare(Buffer.from(page), Buffer.from(other)));
          assert.equal(pool.compare(a, b), expected);
          assert.equal(pool.compare(b, a), -expected || 0);
          assert.equal(pool.equal(a, b), expected === 0);
          assert.equal(
            pool.isZero(b),
            other.every((x) => x === 0),
          );
        },
      ),
      { numRuns: 2000 },
    );
  });
}

test('a freed frame comes back zeroed; a never-used one is zero without being filled', () => {
  const pool = new FramePool({ memoryBytes: 64 * 4096, numaNodes: 1 });
  const a = pool.alloc(0);
  pool.writeBytes(a, 0, new Uint8Array(4096).fill(0xa5));
  pool.free(a);
  const again = pool.alloc(0);
  assert.equal(again, a);
  assert.ok(pool.isZero(again));
  const fresh = pool.alloc(0);
  assert.notEqual(fresh, a);
  assert.ok(pool.isZero(fresh));
  assert.equal(pool.compare(again, fresh), 0);
});

test('the prefix follows writes into the first four bytes, and copies', () => {
  const pool = new FramePool({ memoryBytes: 64 * 4096, numaNodes: 1 });
  const a = pool.alloc(0);
  const b = pool.alloc(0);
  pool.writeBytes(a, 2, Uint8Array.of(7));
  assert.equal(pool.compare(a, b), 1);
  pool.copyContents(a, b);
  assert.equal(pool.compare(a, b), 0);
  pool.writeBytes(b, 4000, Uint8Array.of(1));
  assert.equal(pool.compare(a, b), -1);
});
