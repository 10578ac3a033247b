import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { test } from 'node:test';
import { xxh64 as nativeXxh64 } from '@node-rs/xxhash';
import fc from 'fast-check';
import { pageChecksumNative } from '../backend/sim/native-checksum.ts';
import { AssertionFailure } from './assert.ts';
import { pageChecksumJs, xxh64, xxh64Low32, ZERO_PAGE_CHECKSUM } from './xxhash64.ts';

const PAGE = 4096;

function filled(length: number, value: number): Uint8Array {
  return new Uint8Array(length).fill(value);
}

/** Deterministic pseudo-random bytes (xorshift32), so failures replay from the seed fast-check prints. */
function randomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 0 || 0x9e3779b9;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

test('XXH64 reference vectors', () => {
  assert.equal(xxh64(new Uint8Array(0), 0, 0), 0xef46db3751d8e999n);
  assert.equal(xxh64(new Uint8Array([0x61]), 0, 1), 0xd24ec4f1a98c6e5bn);
  assert.equal(xxh64(filled(PAGE, 0), 0, PAGE), 0xac869b6f32d8bbdbn);
  assert.equal(xxh64Low32(filled(PAGE, 0), 0, PAGE), 0x32d8bbdb);
  assert.equal(xxh64Low32(filled(PAGE, 0x2a), 0, PAGE), 0x9005251d);
  assert.equal(xxh64Low32(filled(PAGE, 0xcf), 0, PAGE), 0xced8678f);
});

test('the zero page checksum is ZERO_PAGE_CHECKSUM, from both implementations', () => {
  const zero = filled(3 * PAGE, 0);
  for (const offset of [0, PAGE, 2 * PAGE, 5]) {
    assert.equal(pageChecksumJs(zero, offset), ZERO_PAGE_CHECKSUM);
    assert.equal(pageChecksumNative(zero, offset), ZERO_PAGE_CHECKSUM);
  }
});

test('checksums are unsigned 32-bit numbers', () => {
  for (let seed = 1; seed <= 64; seed++) {
    const c = pageChecksumJs(randomBytes(PAGE, seed), 0);
    assert.ok(Number.isInteger(c) && c >= 0 && c <= 0xffffffff, `checksum ${c}`);
  }
});

test('every length 0..300 at every alignment agrees with @node-rs/xxhash', () => {
  const bytes = randomBytes(300 + 8, 12345);
  for (let offset = 0; offset < 8; offset++) {
    for (let length = 0; length <= 300; length++) {
      const want = nativeXxh64(bytes.subarray(offset, offset + length));
      assert.equal(xxh64(bytes, offset, length), want, `length ${length} at offset ${offset}`);
      assert.equal(xxh64Low32(bytes, offset, length), Number(want & 0xffffffffn));
    }
  }
});

test('random inputs of random lengths (0..10000) and offsets agree with @node-rs/xxhash', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 10000 }),
      fc.integer({ min: 0, max: 64 }),
      fc.integer({ min: 0, max: 64 }),
      fc.integer(),
      (length, offset, slack, seed) => {
        const bytes = randomBytes(offset + length + slack, seed);
        const want = nativeXxh64(bytes.subarray(offset, offset + length));
        assert.equal(xxh64(bytes, offset, length), want);
        assert.equal(xxh64Low32(bytes, offset, length), Number(want & 0xffffffffn));
      },
    ),
    { numRuns: 400 },
  );
});

test('random byte arrays from fast-check agree with @node-rs/xxhash', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), fc.nat(40), (data, cut) => {
      const offset = Math.min(cut, data.length);
      const want = nativeXxh64(data.subarray(offset));
      assert.equal(xxh64(data, offset, data.length - offset), want);
    }),
    { numRuns: 300 },
  );
});

test('views with a byteOffset, and Node Buffers from the shared pool, hash as their own bytes', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 64 }),
      fc.integer({ min: 0, max: 3 * PAGE }),
      fc.integer(),
      (viewStart, length, seed) => {
        const backing = randomBytes(viewStart + length + 16, seed);
        const view = backing.subarray(viewStart);
        const want = nativeXxh64(backing.subarray(viewStart, viewStart + length));
        assert.equal(xxh64(view, 0, length), want);
        const pooled = Buffer.from(backing.subarray(viewStart, viewStart + length));
        assert.equal(xxh64(pooled, 0, length), want);
      },
    ),
    { numRuns: 200 },
  );
});

test('pageChecksumJs and pageChecksumNative agree on random pages, aligned or not', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 7 }),
      fc.integer({ min: 0, max: 4 * PAGE }),
      fc.integer(),
      (page, shift, seed) => {
        const bytes = randomBytes(9 * PAGE, seed);
        for (const offset of [page * PAGE, shift]) {
          const want = Number(nativeXxh64(bytes.subarray(offset, offset + PAGE)) & 0xffffffffn);
          assert.equal(pageChecksumJs(bytes, offset), want);
          assert.equal(pageChecksumNative(bytes, offset), want);
        }
      },
    ),
    { numRuns: 200 },
  );
});

test('pages of one repeated byte agree with @node-rs/xxhash for every byte value', () => {
  for (let value = 0; value < 256; value++) {
    const page = filled(PAGE, value);
    assert.equal(pageChecksumJs(page, 0), Number(nativeXxh64(page) & 0xffffffffn), `byte ${value}`);
  }
});

test('hashing the same bytes from two buffers in turn uses the right buffer each time', () => {
  const a = randomBytes(2 * PAGE, 1);
  const b = randomBytes(2 * PAGE, 2);
  const ca = pageChecksumJs(a, PAGE);
  const cb = pageChecksumJs(b, PAGE);
  assert.notEqual(ca, cb);
  for (let i = 0; i < 5; i++) {
    assert.equal(pageChecksumJs(a, PAGE), ca);
    assert.equal(pageChecksumJs(b, PAGE), cb);
  }
});

test('ranges outside the array are refused', () => {
  const bytes = new Uint8Array(PAGE);
  assert.throws(() => pageChecksumJs(bytes, 1), AssertionFailure);
  assert.throws(() => pageChecksumJs(bytes, -4096), AssertionFailure);
  assert.throws(() => pageChecksumNative(bytes, 1), AssertionFailure);
  assert.throws(() => xxh64Low32(bytes, 0, PAGE + 1), AssertionFailure);
  assert.throws(() => xxh64Low32(bytes, 0.5, 8), AssertionFailure);
  assert.throws(() => xxh64(bytes, 0, -1), AssertionFailure);
  assert.throws(() => xxh64(bytes, Number.NaN, 1), AssertionFailure);
  assert.equal(xxh64(bytes, PAGE, 0), 0xef46db3751d8e999n);
});
