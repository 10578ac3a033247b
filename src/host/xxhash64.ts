/**
 * XXH64 (seed 0) in plain TypeScript, for KSM's page checksum.
 *
 * The kernel's `calc_checksum()` is `xxhash(page, PAGE_SIZE, 0)` stored in a
 * u32: on 64-bit kernels `xxhash()` is XXH64, so the checksum is the LOW 32
 * bits of XXH64 (`xxh64Low32`, `pageChecksumJs`).
 *
 * The 64-bit arithmetic runs on 32-bit halves (int32 values, `Math.imul`,
 * shifts); the only non-integer step is the high half of a 32x32-bit product,
 * taken from the double product (`mulHi`, exact; see there). No BigInt and no
 * allocation per call on the hashing path; `xxh64` builds one bigint at the end.
 *
 * Input words are read through a cached `Uint32Array` view of the underlying
 * buffer when the platform is little-endian and the start is 4-byte aligned
 * (always the case for page frames); any other input is copied, 4 KiB at a
 * time, into an aligned scratch array in little-endian word order, so the
 * result never depends on alignment or on the platform's byte order.
 */
import { assert } from './assert.ts';

/** Checksum of the 4096-byte zero page on x86_64: 0x32d8bbdb. */
export const ZERO_PAGE_CHECKSUM = 0x32d8bbdb;

/** Checksum of the 4096 bytes at `offset` (the low 32 bits of their XXH64, seed 0), unsigned. */
export type PageChecksum = (bytes: Uint8Array, offset: number) => number;

const PAGE_BYTES = 4096;

// The five XXH64 primes, split in 32-bit halves (as int32 for Math.imul).
const P1_HI = 0x9e3779b1 | 0;
const P1_LO = 0x85ebca87 | 0;
const P2_HI = 0xc2b2ae3d | 0;
const P2_LO = 0x27d4eb4f | 0;
const P3_HI = 0x165667b1 | 0;
const P3_LO = 0x9e3779f9 | 0;
const P4_HI = 0x85ebca77 | 0;
const P4_LO = 0xc2b2ae63 | 0;
const P5_HI = 0x27d4eb2f | 0;
const P5_LO = 0x165667c5 | 0;
// The low halves of P1 and P2 as unsigned doubles, for mulHi.
const P1_LO_U = 0x85ebca87;
const P2_LO_U = 0x27d4eb4f;

const TWO_POW_M32 = 2 ** -32;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * High 32 bits (as int32) of the 64-bit product of two unsigned 32-bit numbers
 * `a` and `b`, given its exact low 32 bits `lo` (from Math.imul).
 *
 * Exact: the product P < 2^64 rounds to a double within 2^10 of P, and the
 * subtraction of `lo` adds at most 2^10 more, so the scaled difference is the
 * high half give or take 2^-21; adding 0.5 and truncating yields it exactly.
 * This costs two conversions, three floating-point operations and a truncation,
 * which run beside the integer multiplications and measured faster than
 * splitting into 16-bit halves (four Math.imul and several shifts).
 */
function mulHi(a: number, b: number, lo: number): number {
  return ((a * b - (lo >>> 0)) * TWO_POW_M32 + 0.5) | 0;
}

/**
 * Carry out of the 32-bit addition a + b = sum (all as int32): 1 when the
 * unsigned sum wrapped. Branch-free on purpose: a compare-and-branch here
 * mispredicts half the time on random data and made the page hash 1.8 times slower.
 */
function carry(a: number, b: number, sum: number): number {
  return ((a & b) | ((a | b) & ~sum)) >>> 31;
}

// ---------------------------------------------------------------------------
// Word views, one per underlying buffer, made once and cached.

const wordViews = new WeakMap<ArrayBufferLike, Uint32Array>();
let lastBuffer: ArrayBufferLike | undefined;
let lastWords: Uint32Array | undefined;

/** A Uint32Array over the whole of `buffer`, in native byte order (use only when little-endian). */
function wordsOf(buffer: ArrayBufferLike, endByte: number): Uint32Array {
  if (buffer === lastBuffer && lastWords !== undefined && lastWords.length * 4 >= endByte) return lastWords;
  let words = wordViews.get(buffer);
  if (words === undefined || words.length * 4 < endByte) {
    // A new buffer, or one that grew since its view was made.
    words = new Uint32Array(buffer, 0, Math.floor(buffer.byteLength / 4));
    wordViews.set(buffer, words);
  }
  lastBuffer = buffer;
  lastWords = words;
  return words;
}

// ---------------------------------------------------------------------------
// The stripe loop: the four accumulators over 32-byte stripes.

/** The four accumulators v1..v4 as (hi, lo) int32 pairs, between calls of `stripes`. */
const acc = new Int32Array(8);

function resetAccumulators(): void {
  // v1 = P1 + P2, v2 = P2, v3 = 0, v4 = -P1 (seed 0), mod 2^64.
  acc[0] = 0x60ea27ee;
  acc[1] = 0xadc0b5d6 | 0;
  acc[2] = P2_HI;
  acc[3] = P2_LO;
  acc[4] = 0;
  acc[5] = 0;
  acc[6] = 0x61c8864e;
  acc[7] = 0x7a143579;
}

/**
 * Runs XXH64's round over the stripes in `words[w .. wEnd)` (8 words, little-endian
 * lanes, per stripe). Each round is acc = rotl64(acc + lane * P2, 31) * P1, written
 * out for the four lanes so the accumulators stay in registers.
 */
function stripes(words: Uint32Array, w: number, wEnd: number): void {
  let h1 = acc[0]!;
  let l1 = acc[1]!;
  let h2 = acc[2]!;
  let l2 = acc[3]!;
  let h3 = acc[4]!;
  let l3 = acc[5]!;
  let h4 = acc[6]!;
  let l4 = acc[7]!;
  let il = 0;
  let ih = 0;
  let tl = 0;
  let sh = 0;
  let sl = 0;
  let rh = 0;
  let rl = 0;
  for (; w < wEnd; w += 8) {
    // Lane 1.
    il = words[w + 0]!;
    ih = words[w + 1]!;
    tl = Math.imul(il, P2_LO);
    sl = (l1 + tl) | 0;
    sh = (h1 + Math.imul(ih, P2_LO) + Math.imul(il, P2_HI) + mulHi(il, P2_LO_U, tl) + carry(l1, tl, sl)) | 0;
    rh = (sh << 31) | (sl >>> 1);
    rl = (sl << 31) | (sh >>> 1);
    l1 = Math.imul(rl, P1_LO);
    h1 = (Math.imul(rh, P1_LO) + Math.imul(rl, P1_HI) + mulHi(rl >>> 0, P1_LO_U, l1)) | 0;
    // Lane 2.
    il = words[w + 2]!;
    ih = words[w + 3]!;
    tl = Math.imul(il, P2_LO);
    sl = (l2 + tl) | 0;
    sh = (h2 + Math.imul(ih, P2_LO) + Math.imul(il, P2_HI) + mulHi(il, P2_LO_U, tl) + carry(l2, tl, sl)) | 0;
    rh = (sh << 31) | (sl >>> 1);
    rl = (sl << 31) | (sh >>> 1);
    l2 = Math.imul(rl, P1_LO);
    h2 = (Math.imul(rh, P1_LO) + Math.imul(rl, P1_HI) + mulHi(rl >>> 0, P1_LO_U, l2)) | 0;
    // Lane 3.
    il = words[w + 4]!;
    ih = words[w + 5]!;
    tl = Math.imul(il, P2_LO);
    sl = (l3 + tl) | 0;
    sh = (h3 + Math.imul(ih, P2_LO) + Math.imul(il, P2_HI) + mulHi(il, P2_LO_U, tl) + carry(l3, tl, sl)) | 0;
    rh = (sh << 31) | (sl >>> 1);
    rl = (sl << 31) | (sh >>> 1);
    l3 = Math.imul(rl, P1_LO);
    h3 = (Math.imul(rh, P1_LO) + Math.imul(rl, P1_HI) + mulHi(rl >>> 0, P1_LO_U, l3)) | 0;
    // Lane 4.
    il = words[w + 6]!;
    ih = words[w + 7]!;
    tl = Math.imul(il, P2_LO);
    sl = (l4 + tl) | 0;
    sh = (h4 + Math.imul(ih, P2_LO) + Math.imul(il, P2_HI) + mulHi(il, P2_LO_U, tl) + carry(l4, tl, sl)) | 0;
    rh = (sh << 31) | (sl >>> 1);
    rl = (sl << 31) | (sh >>> 1);
    l4 = Math.imul(rl, P1_LO);
    h4 = (Math.imul(rh, P1_LO) + Math.imul(rl, P1_HI) + mulHi(rl >>> 0, P1_LO_U, l4)) | 0;
  }
  acc[0] = h1;
  acc[1] = l1;
  acc[2] = h2;
  acc[3] = l2;
  acc[4] = h3;
  acc[5] = l3;
  acc[6] = h4;
  acc[7] = l4;
}

/** Aligned scratch for input that cannot be read in place: 128 stripes, little-endian words. */
const scratch = new Uint32Array(PAGE_BYTES / 4);

function readLe32(bytes: Uint8Array, p: number): number {
  return bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24);
}

/** The stripes of `bytes[p .. p + n * 32)`, through the scratch array. */
function stripesCopied(bytes: Uint8Array, p: number, n: number): void {
  while (n > 0) {
    const k = Math.min(n, PAGE_BYTES / 32);
    const words = k * 8;
    for (let i = 0; i < words; i++, p += 4) scratch[i] = readLe32(bytes, p);
    stripes(scratch, 0, words);
    n -= k;
  }
}

// ---------------------------------------------------------------------------
// The cold steps: 64-bit helpers returning through (rHi, rLo).

let rHi = 0;
let rLo = 0;

/** (rHi, rLo) = (ah, al) * (bh, bl) mod 2^64. */
function mul64(ah: number, al: number, bh: number, bl: number): void {
  const lo = Math.imul(al, bl);
  rHi = (Math.imul(ah, bl) + Math.imul(al, bh) + mulHi(al >>> 0, bl >>> 0, lo)) | 0;
  rLo = lo;
}

/** (rHi, rLo) = (ah, al) + (bh, bl) mod 2^64. */
function add64(ah: number, al: number, bh: number, bl: number): void {
  const lo = (al + bl) | 0;
  rHi = (ah + bh + carry(al, bl, lo)) | 0;
  rLo = lo;
}

/** (rHi, rLo) = rotl64((h, l), r) for 0 < r < 32. */
function rotl64(h: number, l: number, r: number): void {
  rHi = (h << r) | (l >>> (32 - r));
  rLo = (l << r) | (h >>> (32 - r));
}

/** (rHi, rLo) = round(0, (h, l)) = rotl64((h, l) * P2, 31) * P1. */
function round0(h: number, l: number): void {
  mul64(h, l, P2_HI, P2_LO);
  rotl64(rHi, rLo, 31);
  mul64(rHi, rLo, P1_HI, P1_LO);
}

/** (rHi, rLo) = mergeRound((h, l), v) = (acc ^ round(0, v)) * P1 + P4. */
function mergeRound(h: number, l: number, vh: number, vl: number): void {
  round0(vh, vl);
  mul64(h ^ rHi, l ^ rLo, P1_HI, P1_LO);
  add64(rHi, rLo, P4_HI, P4_LO);
}

/** XXH64(bytes[offset .. offset + length), seed 0) into (rHi, rLo). */
function xxh64Into(bytes: Uint8Array, offset: number, length: number): void {
  // Tested before calling assert, which would build its message on every call.
  if (
    !(
      offset >= 0 &&
      length >= 0 &&
      offset + length <= bytes.length &&
      Number.isInteger(offset) &&
      Number.isInteger(length)
    )
  ) {
    assert(
      false,
      `xxh64: range of ${length} bytes at ${offset} outside ${bytes.length} bytes (or not whole numbers)`,
    );
  }
  let h: number;
  let l: number;
  let p = offset;
  const end = offset + length;
  if (length >= 32) {
    const n = Math.floor(length / 32);
    resetAccumulators();
    const start = bytes.byteOffset + offset;
    if (LITTLE_ENDIAN && (start & 3) === 0) {
      const w = start >>> 2;
      stripes(wordsOf(bytes.buffer, start + n * 32), w, w + n * 8);
    } else {
      stripesCopied(bytes, offset, n);
    }
    p += n * 32;
    const h1 = acc[0]!;
    const l1 = acc[1]!;
    const h2 = acc[2]!;
    const l2 = acc[3]!;
    const h3 = acc[4]!;
    const l3 = acc[5]!;
    const h4 = acc[6]!;
    const l4 = acc[7]!;
    // h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)
    rotl64(h1, l1, 1);
    h = rHi;
    l = rLo;
    rotl64(h2, l2, 7);
    add64(h, l, rHi, rLo);
    h = rHi;
    l = rLo;
    rotl64(h3, l3, 12);
    add64(h, l, rHi, rLo);
    h = rHi;
    l = rLo;
    rotl64(h4, l4, 18);
    add64(h, l, rHi, rLo);
    mergeRound(rHi, rLo, h1, l1);
    mergeRound(rHi, rLo, h2, l2);
    mergeRound(rHi, rLo, h3, l3);
    mergeRound(rHi, rLo, h4, l4);
    h = rHi;
    l = rLo;
  } else {
    h = P5_HI;
    l = P5_LO;
  }
  // h += length
  add64(h, l, Math.floor(length * TWO_POW_M32) | 0, length | 0);
  h = rHi;
  l = rLo;
  // Whole 8-byte lanes: h = rotl(h ^ round(0, lane), 27) * P1 + P4.
  for (; p + 8 <= end; p += 8) {
    round0(readLe32(bytes, p + 4), readLe32(bytes, p));
    rotl64(h ^ rHi, l ^ rLo, 27);
    mul64(rHi, rLo, P1_HI, P1_LO);
    add64(rHi, rLo, P4_HI, P4_LO);
    h = rHi;
    l = rLo;
  }
  // A 4-byte word: h = rotl(h ^ (word * P1), 23) * P2 + P3.
  if (p + 4 <= end) {
    mul64(0, readLe32(bytes, p), P1_HI, P1_LO);
    rotl64(h ^ rHi, l ^ rLo, 23);
    mul64(rHi, rLo, P2_HI, P2_LO);
    add64(rHi, rLo, P3_HI, P3_LO);
    h = rHi;
    l = rLo;
    p += 4;
  }
  // Single bytes: h = rotl(h ^ (byte * P5), 11) * P1.
  for (; p < end; p++) {
    mul64(0, bytes[p]!, P5_HI, P5_LO);
    rotl64(h ^ rHi, l ^ rLo, 11);
    mul64(rHi, rLo, P1_HI, P1_LO);
    h = rHi;
    l = rLo;
  }
  // Avalanche: h ^= h >> 33; h *= P2; h ^= h >> 29; h *= P3; h ^= h >> 32.
  mul64(h, l ^ (h >>> 1), P2_HI, P2_LO);
  h = rHi;
  l = rLo;
  mul64(h ^ (h >>> 29), l ^ ((h << 3) | (l >>> 29)), P3_HI, P3_LO);
  rLo ^= rHi;
}

/** Low 32 bits of XXH64(bytes[offset .. offset+length), seed 0), as an unsigned number. */
export function xxh64Low32(bytes: Uint8Array, offset: number, length: number): number {
  xxh64Into(bytes, offset, length);
  return rLo >>> 0;
}

/** Full XXH64 as a bigint (for tests and tools; not for hot paths). */
export function xxh64(bytes: Uint8Array, offset: number, length: number): bigint {
  xxh64Into(bytes, offset, length);
  return (BigInt(rHi >>> 0) << 32n) | BigInt(rLo >>> 0);
}

/** The page checksum in plain TypeScript: `xxh64Low32(bytes, offset, 4096)`. */
export const pageChecksumJs: PageChecksum = (bytes, offset) => xxh64Low32(bytes, offset, PAGE_BYTES);
