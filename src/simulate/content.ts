/**
 * Page contents of a simulation as 64-bit values (the engine's fingerprint
 * mode, host/frames.ts: a page is its value, big-endian, repeated 512 times).
 *
 * Value space (hi, lo), chosen so that hi < 2^21 and hi·2^32 + lo is an exact
 * JavaScript number for everything but `byte:` pages:
 *
 * | content            | hi                          | lo                   |
 * |--------------------|-----------------------------|----------------------|
 * | zero               | 0                           | 0                    |
 * | byte B             | B·0x01010101                | B·0x01010101         |
 * | image (id i)       | 0x1000 + i                  | page index in image  |
 * | tag (id t)         | 0x8000 + t                  | 0                    |
 * | unique (counter n) | 0x100000 + ⌊n / 2^32⌋       | n mod 2^32           |
 *
 * `byte: B` is then exactly the workload format's page of 4096 bytes equal
 * to B; the other kinds have the same equality structure as the workload
 * format's (two pages are equal exactly when their specs say so), with other
 * bytes. memcmp order is the numeric order of the values.
 *
 * The checksum: the engine hashes a fingerprint page by expanding it to 4 KiB
 * first; here each value is hashed once (memoized for shared contents) and the
 * frame's checksum cache is filled right after the write, so the engine never
 * has to (frames.ts keeps the cache valid until the next write).
 */
import { xxh64 } from '@node-rs/xxhash';
import { FRAME_CSUM_VALID, type FramePool } from '../host/frames.ts';
import type { ContentSource } from './scenario.ts';

const PAGE_BYTES = 4096;
const LOW_32 = 0xffffffffn;
const IMAGE_BASE = 0x1000;
const TAG_BASE = 0x8000;
const UNIQUE_BASE = 0x100000;
const MAX_IMAGES = TAG_BASE - IMAGE_BASE;
const MAX_TAGS = UNIQUE_BASE - TAG_BASE;

const page = new Uint8Array(PAGE_BYTES);
const pageView = new DataView(page.buffer);
const pageBuffer = Buffer.from(page.buffer, page.byteOffset, page.byteLength);

/** calc_checksum() of the page made of (hi, lo) repeated: low 32 bits of XXH64, seed 0. */
export function valueChecksum(hi: number, lo: number): number {
  fillPage(hi, lo);
  return Number(xxh64(pageBuffer) & LOW_32);
}

/** The 4096 bytes of the page (hi, lo) repeated (for the kernel backend). */
export function valuePage(
  hi: number,
  lo: number,
  into: Uint8Array = new Uint8Array(PAGE_BYTES),
  at = 0,
): Uint8Array {
  fillPage(hi, lo);
  into.set(page, at);
  return into;
}

function fillPage(hi: number, lo: number): void {
  pageView.setUint32(0, hi >>> 0);
  pageView.setUint32(4, lo >>> 0);
  for (let n = 8; n < PAGE_BYTES; n *= 2) page.copyWithin(n, 0, n);
}

/** Which kind of content source made the page of value (hi, lo) (the table above). */
/** A twin's fingerprint values are arbitrary 64-bit keys: they land in whichever kind's range they fall in (compression figures for a twin are modelled, not measured). */
export function kindOfValue(hi: number, lo: number): Exclude<ContentSource['kind'], 'fingerprints'> {
  if (hi === 0 && lo === 0) return 'zero';
  if (hi >= UNIQUE_BASE && hi < 2 * UNIQUE_BASE) return 'unique';
  if (hi >= TAG_BASE && hi < UNIQUE_BASE && lo === 0) return 'tag';
  if (hi >= IMAGE_BASE && hi < TAG_BASE) return 'image';
  return 'byte';
}

/**
 * Allocates values for content sources and keeps their checksums. One per
 * simulated host: image and tag ids, and the unique counter, are its own.
 */
export class ContentSpace {
  /** The last value produced by `value()`/`unique()`: read right after the call (no allocation per page). */
  hi = 0;
  lo = 0;
  private readonly imageIds = new Map<string, number>();
  private readonly tagIds = new Map<string, number>();
  private uniqueNext = 0;
  private readonly memo = new Map<number, number>();
  private readonly byteMemo = new Map<number, number>();
  /** Checksums computed (memo misses), for the statistics. */
  hashes = 0;

  /** Sets hi/lo to page `index` (0-based) of a run of `source`; returns whether the value may recur (memoize its checksum). */
  value(source: ContentSource, index: number): boolean {
    switch (source.kind) {
      case 'zero':
        this.hi = 0;
        this.lo = 0;
        return true;
      case 'byte': {
        const v = Math.imul(source.value, 0x01010101) >>> 0;
        this.hi = v;
        this.lo = v;
        return true;
      }
      case 'image':
        this.hi = IMAGE_BASE + this.idOf(this.imageIds, source.image, MAX_IMAGES, 'images');
        this.lo = (source.offsetPages + index) >>> 0;
        return true;
      case 'tag':
        this.hi = TAG_BASE + this.idOf(this.tagIds, source.tag, MAX_TAGS, 'tags');
        this.lo = 0;
        return true;
      case 'unique':
        this.unique();
        return false;
      case 'fingerprints': {
        const k = 2 * (source.offsetPages + index);
        this.lo = source.keys[k]!;
        this.hi = source.keys[k + 1]!;
        return true;
      }
    }
  }

  /** Sets hi/lo to contents no page has had before. */
  unique(): void {
    const n = this.uniqueNext++;
    this.hi = UNIQUE_BASE + Math.floor(n / 2 ** 32);
    this.lo = n >>> 0;
  }

  /** The checksum of the current hi/lo. */
  checksum(recurring: boolean): number {
    const hi = this.hi;
    const lo = this.lo;
    if (!recurring) {
      this.hashes++;
      return valueChecksum(hi, lo);
    }
    if (hi < UNIQUE_BASE * 2 && lo !== hi) {
      const key = hi * 2 ** 32 + lo;
      let sum = this.memo.get(key);
      if (sum === undefined) {
        this.hashes++;
        sum = valueChecksum(hi, lo);
        this.memo.set(key, sum);
      }
      return sum;
    }
    // A fingerprint (twin.ts) is not memoized: most occur once, and one of
    // hi === lo is still a byte page's value, which its hi alone decides.
    if (hi !== lo) {
      this.hashes++;
      return valueChecksum(hi, lo);
    }
    let sum = this.byteMemo.get(hi);
    if (sum === undefined) {
      this.hashes++;
      sum = valueChecksum(hi, lo);
      this.byteMemo.set(hi, sum);
    }
    return sum;
  }

  private idOf(ids: Map<string, number>, name: string, max: number, what: string): number {
    let id = ids.get(name);
    if (id === undefined) {
      id = ids.size;
      if (id >= max) throw new RangeError(`a scenario may use at most ${max} distinct ${what}`);
      ids.set(name, id);
    }
    return id;
  }
}

/** Fills the frame's checksum cache as calc_checksum() would, right after the frame was written. */
export function primeChecksum(frames: FramePool, frame: number, checksum: number): void {
  frames.checksum[frame] = checksum;
  frames.flags[frame]! |= FRAME_CSUM_VALID;
}
