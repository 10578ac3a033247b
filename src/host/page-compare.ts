/**
 * Comparison of 4096-byte pages in memcmp order, as KSM's `memcmp_pages()`
 * sorts its stable and unstable trees, plus the two equality tests beside it.
 * The two pages may live in different Uint8Arrays (frames of different chunks).
 *
 * Fast path: when the platform is little-endian and both pages start 4-byte
 * aligned in their buffers (always so for frames, which sit at multiples of
 * 4096), the pages are scanned as 32-bit words through a `Uint32Array` view of
 * each underlying ArrayBuffer. Views are made once per buffer and kept in a
 * WeakMap keyed by the ArrayBuffer (a view lives as long as its buffer), fronted
 * by a two-entry cache keyed by the Uint8Array itself for the usual case of the
 * same one or two arrays call after call (the frame pool's chunks). Callers pass
 * plain Uint8Arrays and nothing is allocated per call, except one view the first
 * time a buffer is seen. The cache holds the last two arrays strongly. Only the
 * first differing word is then taken apart to find the first differing byte,
 * which decides the order. Any other input takes a plain byte loop with the
 * same results.
 */
import { assert } from './assert.ts';

/**
 * Sign of memcmp over the 4096-byte pages at a[aOff..] and b[bOff..]: negative,
 * zero or positive (any magnitude). `comparePages` is one; a backend may
 * inject a native one (the frame pool's `pageCompare`).
 */
export type PageCompare = (a: Uint8Array, aOff: number, b: Uint8Array, bOff: number) => number;

const PAGE_BYTES = 4096;
const PAGE_WORDS = PAGE_BYTES / 4;
const MAX_WORD_START = 0x7fffffff - PAGE_BYTES;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

const wordViews = new WeakMap<ArrayBufferLike, Uint32Array>();
const NO_WORDS: Uint32Array = new Uint32Array(0);

// The two most recently used Uint8Arrays with their buffer's word view and their
// byteOffset: reading `.buffer` and `.byteOffset` costs some 20 ns a call in V8, a
// third of a whole compare that stops at the first word.
let array0: Uint8Array | undefined;
let words0 = NO_WORDS;
let base0 = 0;
let array1: Uint8Array | undefined;
let words1 = NO_WORDS;
let base1 = 0;

// Results of `lookUp`.
let foundWords = NO_WORDS;
let foundBase = 0;

/**
 * Sets (foundWords, foundBase) for `bytes`: a native-order Uint32Array over its
 * whole buffer, and its byteOffset in that buffer. The caller checks that the
 * view covers the bytes it reads (a resizable buffer may have grown since).
 */
function lookUp(bytes: Uint8Array): void {
  if (bytes === array0) {
    foundWords = words0;
    foundBase = base0;
    return;
  }
  if (bytes === array1) {
    foundWords = words1;
    foundBase = base1;
    return;
  }
  const buffer = bytes.buffer;
  const base = bytes.byteOffset;
  let words = wordViews.get(buffer);
  if (words === undefined || words.length * 4 < base + bytes.length) {
    // A new buffer, or one that grew since its view was made.
    words = new Uint32Array(buffer, 0, Math.floor(buffer.byteLength / 4));
    wordViews.set(buffer, words);
  }
  // Most recently looked up in slot 0.
  array1 = array0;
  words1 = words0;
  base1 = base0;
  array0 = bytes;
  words0 = words;
  base0 = base;
  foundWords = words;
  foundBase = base;
}

function checkPage(bytes: Uint8Array, offset: number): void {
  // Tested before calling assert, which would build its message on every call.
  if (!(offset >= 0 && offset + PAGE_BYTES <= bytes.length && Number.isInteger(offset))) {
    assert(false, `page at ${offset} lies outside ${bytes.length} bytes`);
  }
}

/**
 * True when the page starting at byte `start` of the buffer behind `words` can be
 * read as words in place: 4-byte aligned, inside the view, and low enough (below
 * 2 GiB) that word indices stay int32, which keeps the optimizing compiler on
 * integer index arithmetic.
 */
function wordReadable(start: number, words: Uint32Array): boolean {
  return (start & 3) === 0 && start <= MAX_WORD_START && start + PAGE_BYTES <= words.length * 4;
}

/**
 * Order of two little-endian words that differ, by their first differing byte in
 * memory: the lowest-order differing byte.
 */
function wordOrder(x: number, y: number): -1 | 1 {
  const d = x ^ y;
  const shift = (31 - Math.clz32(d & -d)) & 24;
  return ((x >>> shift) & 0xff) < ((y >>> shift) & 0xff) ? -1 : 1;
}

/** Sign of memcmp(a[aOff..aOff+4096), b[bOff..bOff+4096)): -1, 0 or 1 (unsigned bytes, first difference decides). */
export function comparePages(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): -1 | 0 | 1 {
  checkPage(a, aOff);
  checkPage(b, bOff);
  if (LITTLE_ENDIAN) {
    lookUp(a);
    const wa = foundWords;
    const aStart = foundBase + aOff;
    lookUp(b);
    const wb = foundWords;
    const bStart = foundBase + bOff;
    if (wordReadable(aStart, wa) && wordReadable(bStart, wb))
      return compareWords(wa, aStart >> 2, wb, bStart >> 2);
  }
  for (let k = 0; k < PAGE_BYTES; k++) {
    const x = a[aOff + k]!;
    const y = b[bOff + k]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/**
 * memcmp order of the 1024 little-endian words at wa[i..] and wb[j..]: eight words
 * at a time until a block differs, then word by word within it.
 */
function compareWords(wa: Uint32Array, i: number, wb: Uint32Array, j: number): -1 | 0 | 1 {
  // Short-circuit tests of eight words a round measured fastest in V8 (Node 20), ahead of
  // XOR-OR blocks (more registers live) and of single words (more loop overhead).
  for (let k = 0; k < PAGE_WORDS; k += 8) {
    const p = i + k;
    const q = j + k;
    if (
      wa[p]! !== wb[q]! ||
      wa[p + 1]! !== wb[q + 1]! ||
      wa[p + 2]! !== wb[q + 2]! ||
      wa[p + 3]! !== wb[q + 3]! ||
      wa[p + 4]! !== wb[q + 4]! ||
      wa[p + 5]! !== wb[q + 5]! ||
      wa[p + 6]! !== wb[q + 6]! ||
      wa[p + 7]! !== wb[q + 7]!
    ) {
      return blockOrder(wa, p, wb, q);
    }
  }
  return 0;
}

/** memcmp order of the eight-word blocks at wa[i..] and wb[j..], which differ. */
function blockOrder(wa: Uint32Array, i: number, wb: Uint32Array, j: number): -1 | 1 {
  for (let k = 0; k < 7; k++) {
    const x = wa[i + k]!;
    const y = wb[j + k]!;
    if (x !== y) return wordOrder(x, y);
  }
  return wordOrder(wa[i + 7]!, wb[j + 7]!);
}

/** True when all 4096 bytes at `aOff` are zero. */
export function pageIsZero(a: Uint8Array, aOff: number): boolean {
  checkPage(a, aOff);
  // Byte order does not matter for a test against zero.
  lookUp(a);
  const start = foundBase + aOff;
  if (wordReadable(start, foundWords)) return wordsZero(foundWords, start >> 2);
  for (let k = 0; k < PAGE_BYTES; k++) if (a[aOff + k] !== 0) return false;
  return true;
}

function wordsZero(w: Uint32Array, i: number): boolean {
  for (let k = 0; k < PAGE_WORDS; k += 8) {
    const p = i + k;
    if (
      w[p]! !== 0 ||
      w[p + 1]! !== 0 ||
      w[p + 2]! !== 0 ||
      w[p + 3]! !== 0 ||
      w[p + 4]! !== 0 ||
      w[p + 5]! !== 0 ||
      w[p + 6]! !== 0 ||
      w[p + 7]! !== 0
    ) {
      return false;
    }
  }
  return true;
}

/** True when the two pages hold the same 4096 bytes. */
export function pagesEqual(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  checkPage(a, aOff);
  checkPage(b, bOff);
  // Byte order does not matter for equality.
  lookUp(a);
  const wa = foundWords;
  const aStart = foundBase + aOff;
  lookUp(b);
  const wb = foundWords;
  const bStart = foundBase + bOff;
  if (wordReadable(aStart, wa) && wordReadable(bStart, wb))
    return wordsEqual(wa, aStart >> 2, wb, bStart >> 2);
  for (let k = 0; k < PAGE_BYTES; k++) if (a[aOff + k] !== b[bOff + k]) return false;
  return true;
}

function wordsEqual(wa: Uint32Array, i: number, wb: Uint32Array, j: number): boolean {
  for (let k = 0; k < PAGE_WORDS; k += 8) {
    const p = i + k;
    const q = j + k;
    if (
      wa[p]! !== wb[q]! ||
      wa[p + 1]! !== wb[q + 1]! ||
      wa[p + 2]! !== wb[q + 2]! ||
      wa[p + 3]! !== wb[q + 3]! ||
      wa[p + 4]! !== wb[q + 4]! ||
      wa[p + 5]! !== wb[q + 5]! ||
      wa[p + 6]! !== wb[q + 6]! ||
      wa[p + 7]! !== wb[q + 7]!
    ) {
      return false;
    }
  }
  return true;
}
