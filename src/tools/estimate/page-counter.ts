/**
 * Page keys and content counting: the hot loop of an estimate.
 *
 * Each page is keyed by its full 64-bit XXH64 (seed 0): the low 32 bits are
 * the kernel's own page checksum (`calc_checksum`, reference §1.9), the high
 * 32 bits make an accidental collision between two different contents
 * negligible (about n²/2⁶⁵: 10⁻⁶ for six million distinct pages). The
 * all-zero page is recognised exactly (hash, then a byte comparison).
 */
import { xxh64 } from '@node-rs/xxhash';
import { CompressionTally } from '../compress/tally.ts';
import { ContentTable } from './content-table.ts';
import { PAGE_BYTES } from './model.ts';
import type { PageAnalysis } from './reader.ts';

export const ZERO_PAGE: Buffer = Buffer.alloc(PAGE_BYTES);

const scratch = new BigUint64Array(1);
const halves = new Uint32Array(scratch.buffer);
scratch[0] = xxh64(ZERO_PAGE);
const ZERO_LO = halves[0]!;
const ZERO_HI = halves[1]!;

/** The kernel's checksum of the zero page on x86_64 (reference §1.9). */
export const ZERO_CHECKSUM = ZERO_LO;

/** What a read produced for one page. */
export const PAGE_DATA = 0;
export const PAGE_ZERO = 1;
export const PAGE_UNREADABLE = 2;

/**
 * Hashes the page at buf[offset, offset + 4096) into keys[2 × index] (low)
 * and keys[2 × index + 1] (high); returns PAGE_ZERO when it is all zeroes,
 * else PAGE_DATA.
 */
export function hashPage(buf: Buffer, offset: number, keys: Uint32Array, index: number): number {
  const page = buf.subarray(offset, offset + PAGE_BYTES);
  scratch[0] = xxh64(page);
  const lo = halves[0]!;
  let hi = halves[1]!;
  if (lo === ZERO_LO && hi === ZERO_HI) {
    if (page.equals(ZERO_PAGE)) {
      keys[2 * index] = lo;
      keys[2 * index + 1] = hi;
      return PAGE_ZERO;
    }
    // A different content with the zero page's hash: keep it apart from the zero page.
    hi = (hi ^ 0x80000000) >>> 0;
  }
  keys[2 * index] = lo;
  keys[2 * index + 1] = hi;
  return PAGE_DATA;
}

/**
 * Where a source's pages go, one call per page read, in no particular order
 * across jobs: the estimate's content table, or a twin's page recorder
 * (src/simulate/twin-capture.ts), which also keeps each page's address.
 */
export interface PageSink {
  /**
   * One page of key keys[2i] (low), keys[2i+1] (high), at page frame `frame`
   * (NO_FRAME when unknown) and at `address` (the virtual address in the
   * process, or the segment's address plus the offset in a dump) whose
   * first two bytes are `prefix` (big-endian), with its compression
   * analysis when the read made one (estimate --compare).
   */
  count(
    keys: Uint32Array,
    i: number,
    isZero: boolean,
    frame: number,
    address: number,
    prefix: number,
    analysis?: PageAnalysis,
  ): void;
  /** estimate --compare: what each content compresses to, and what compressing cost. */
  readonly compression?: CompressionTally | undefined;
}

export class PageCounter implements PageSink {
  readonly table = new ContentTable(16);
  /** The content id of the zero page, once seen. */
  zeroContent = -1;
  /** estimate --compare: what each content compresses to. */
  readonly compression: CompressionTally | undefined;

  constructor(compare = false) {
    this.compression = compare ? new CompressionTally() : undefined;
  }

  beginSource(index: number): void {
    this.table.beginSource(index);
  }

  /** Counts one page in the current source; its address and prefix do not matter to the count. */
  count(
    keys: Uint32Array,
    i: number,
    isZero: boolean,
    frame: number,
    _address: number,
    _prefix: number,
    analysis?: PageAnalysis,
  ): void {
    const id = this.table.add(keys[2 * i]!, keys[2 * i + 1]!, frame);
    if (isZero) this.zeroContent = id;
    if (analysis !== undefined) this.compression?.add(id, analysis.pages, i, frame);
  }
}
