/**
 * The page compare through Node's `Buffer#compare` (a native memcmp): the same
 * contract as the engine's `comparePages`, for the Node-side simulator. Over
 * two equal pages it takes about a tenth of the time of the word loop, and
 * equal pages are what every merge compares (a tree hit, then the check
 * before replace_page()).
 *
 * `Buffer#compare` takes offsets, so nothing is allocated per call: a Buffer
 * over each Uint8Array's memory is made once and kept, behind a two-entry
 * cache for the usual case of the same one or two arrays call after call (the
 * frame pool's 64 MiB chunks).
 */
import { Buffer } from 'node:buffer';
import { AssertionFailure } from '../../host/assert.ts';
import type { PageCompare } from '../../host/page-compare.ts';

const PAGE_BYTES = 4096;

const views = new WeakMap<Uint8Array, Buffer>();
let array0: Uint8Array | undefined;
let view0: Buffer | undefined;
let array1: Uint8Array | undefined;
let view1: Buffer | undefined;

function bufferOf(bytes: Uint8Array): Buffer {
  if (bytes === array0) return view0!;
  if (bytes === array1) return view1!;
  let view = views.get(bytes);
  if (view === undefined) {
    view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    views.set(bytes, view);
  }
  array1 = array0;
  view1 = view0;
  array0 = bytes;
  view0 = view;
  return view;
}

function checkPage(bytes: Uint8Array, offset: number): void {
  if (!(Number.isInteger(offset) && offset >= 0 && offset + PAGE_BYTES <= bytes.length)) {
    throw new AssertionFailure(`pageCompareNative: page at ${offset} outside ${bytes.length} bytes`);
  }
}

/** Sign of memcmp(a[aOff .. aOff + 4096), b[bOff .. bOff + 4096)): -1, 0 or 1. */
export const pageCompareNative: PageCompare = (a, aOff, b, bOff) => {
  checkPage(a, aOff);
  checkPage(b, bOff);
  const va = bufferOf(a);
  const vb = bufferOf(b);
  return va.compare(vb, bOff, bOff + PAGE_BYTES, aOff, aOff + PAGE_BYTES);
};

/** Drops the views of the last two arrays compared (a benchmark's dropped host would stay alive through them). */
export function forgetCachedViews(): void {
  array0 = undefined;
  view0 = undefined;
  array1 = undefined;
  view1 = undefined;
}
