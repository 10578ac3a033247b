/**
 * Physical memory: page frames with their contents and per-frame metadata,
 * grouped in NUMA nodes. Mirrors what `struct page`/`struct folio` carry for
 * KSM's purposes, as struct-of-arrays indexed by frame number (our pfn).
 *
 * Layout, per frame:
 *
 * | field      | type         | bytes | meaning                                                      |
 * |------------|--------------|-------|--------------------------------------------------------------|
 * | contents   | Uint8Array   | 4096  | the page's bytes, in chunks of CHUNK_FRAMES frames            |
 * | flags      | Uint8Array   | 1     | FRAME_* bits below                                            |
 * | mapcount   | Int32Array   | 4     | page table entries mapping this frame (the zero page: unused) |
 * | ksmNode    | Int32Array   | 4     | the KSM tag: stable node index, or -1 (NULL node)             |
 * | folioHead  | Int32Array   | 4     | head frame of the large folio (THP) this frame belongs to, or -1 |
 * | checksum   | Uint32Array  | 4     | cached calc_checksum(); valid while FRAME_CSUM_VALID is set   |
 * | pinCount   | Uint16Array  | 2     | GUP pins (O_DIRECT, vfio): references beyond the mappings     |
 * | prefix     | Uint32Array  | 4     | first 4 bytes, big-endian: decides most compares in the trees |
 * | batchRefs  | Uint8Array   | 1     | references held by ksmd's per-CPU mlock batch until drained   |
 *
 * 24 bytes of metadata per frame beside the 4096 bytes of contents. The
 * prefix is ours: a differing first word has the sign memcmp would give, so a
 * tree walk rarely touches page memory at all (cache misses are most of its cost).
 *
 * Content modes. `bytes` keeps the 4096 bytes of every frame. `fingerprint`
 * keeps one 64-bit value per frame instead (8 bytes, for hosts of tens of GiB
 * on a machine that could not hold their bytes): the frame's contents are
 * *defined* as that value, big-endian, repeated 512 times. memcmp order of
 * such pages is the numeric order of their values, and their checksum is the
 * XXH64 of the expanded page, so a workload whose pages all have this form
 * gives the same counters in both modes (a test holds that). Writes that would
 * leave a page not of this form are refused in fingerprint mode.
 *
 * The checksum cache is ours, not the kernel's: the kernel rehashes every page
 * it visits; we hash a frame again only after it was written, which gives the
 * same checksum values at a fraction of the cost.
 */
import { assert, fail } from './assert.ts';
import { HPAGE_PMD_NR, PAGE_SIZE } from './constants.ts';
import type { PageCompare } from './page-compare.ts';
import type { PageChecksum } from './xxhash64.ts';

export const FRAME_USED = 1 << 0;
/** PageAnon: an anonymous page (KSM scans only these). */
export const FRAME_ANON = 1 << 1;
/** folio_test_ksm: the mapping field carries the KSM tag (the node may still be NULL, ksmNode -1). */
export const FRAME_KSM = 1 << 2;
/** PageAnonExclusive: the only mapper may reuse it on a write fault without copying. */
export const FRAME_ANON_EXCLUSIVE = 1 << 3;
export const FRAME_DIRTY = 1 << 4;
export const FRAME_CSUM_VALID = 1 << 5;
export const FRAME_MLOCKED = 1 << 6;
/** The shared zero page (never freed, never counted). */
export const FRAME_ZERO_PAGE = 1 << 7;

/** The word compares read pages as native 32-bit words: that order is little-endian's. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Frames per contents chunk: 64 MiB per Uint8Array, allocated on first use. */
export const CHUNK_SHIFT = 14;
export const CHUNK_FRAMES = 1 << CHUNK_SHIFT;
const CHUNK_MASK = CHUNK_FRAMES - 1;

/** Never-used frames allocRandom() may pick beyond a node's free ones (16 MiB: bounds the contents it touches). */
const RANDOM_WINDOW_FRAMES = 4096;

/** The zero page is frame 0 of node 0. */
export const ZERO_FRAME = 0;

export type ContentMode = 'bytes' | 'fingerprint';

export interface FramePoolConfig {
  readonly memoryBytes: number;
  readonly numaNodes: number;
  readonly contentMode?: ContentMode;
  /**
   * memcmp of two whole pages for byte mode, when the first words do not
   * decide (equal pages above all); default the word loop of this file. The
   * Node backend passes a native one (src/backend/sim/native-compare.ts),
   * some ten times faster over a whole page.
   */
  readonly pageCompare?: PageCompare;
}

/** Words compared in place before a page compare is handed to `pageCompare`: most differing pages differ early. */
const INLINE_COMPARE_WORDS = 16;

/** A write that fingerprint mode cannot represent (the page would not be one 8-byte value repeated). */
export class FingerprintModeError extends Error {
  override name = 'FingerprintModeError';
}

export class FramePool {
  readonly frameCount: number;
  readonly numaNodes: number;
  readonly framesPerNode: number;
  readonly flags: Uint8Array;
  readonly mapcount: Int32Array;
  readonly ksmNode: Int32Array;
  readonly folioHead: Int32Array;
  readonly checksum: Uint32Array;
  readonly pinCount: Uint16Array;
  readonly batchRefs: Uint8Array;
  readonly contentMode: ContentMode;
  /** Fingerprint mode: the frame's 64-bit value, high and low halves. */
  private readonly fpHi: Uint32Array;
  private readonly fpLo: Uint32Array;
  private readonly scratch = new Uint8Array(PAGE_SIZE);
  private readonly scratch2 = new Uint8Array(PAGE_SIZE);
  readonly prefix: Uint32Array;
  private readonly chunks: (Uint8Array | undefined)[];
  /** The same chunks as native-order 32-bit words, for whole-word compares. */
  private readonly chunkWords: (Uint32Array | undefined)[];
  /** Next never-used frame per node (frames below it were handed out at least once). */
  private readonly bump: Int32Array;
  /** Freed frames per node, reused LIFO. */
  private readonly freeStacks: Int32Array[];
  private readonly freeTops: Int32Array;
  private usedFrameCount = 0;
  private readonly pageCompare: PageCompare | null;

  constructor(config: FramePoolConfig) {
    assert(
      Number.isInteger(config.numaNodes) && config.numaNodes >= 1,
      'numaNodes must be a positive integer',
    );
    const frames = Math.floor(config.memoryBytes / PAGE_SIZE);
    this.framesPerNode = Math.floor(frames / config.numaNodes);
    assert(this.framesPerNode >= 2, 'the host needs at least two frames per NUMA node');
    this.numaNodes = config.numaNodes;
    this.frameCount = this.framesPerNode * config.numaNodes;
    this.flags = new Uint8Array(this.frameCount);
    this.mapcount = new Int32Array(this.frameCount);
    this.ksmNode = new Int32Array(this.frameCount).fill(-1);
    this.folioHead = new Int32Array(this.frameCount).fill(-1);
    this.checksum = new Uint32Array(this.frameCount);
    this.pinCount = new Uint16Array(this.frameCount);
    this.batchRefs = new Uint8Array(this.frameCount);
    this.contentMode = config.contentMode ?? 'bytes';
    this.pageCompare = config.pageCompare ?? null;
    assert(LITTLE_ENDIAN || this.contentMode === 'fingerprint', 'byte mode needs a little-endian platform');
    this.prefix = new Uint32Array(this.contentMode === 'bytes' ? this.frameCount : 0);
    const fpFrames = this.contentMode === 'fingerprint' ? this.frameCount : 0;
    this.fpHi = new Uint32Array(fpFrames);
    this.fpLo = new Uint32Array(fpFrames);
    this.chunkWords = new Array<Uint32Array | undefined>(Math.ceil(this.frameCount / CHUNK_FRAMES)).fill(
      undefined,
    );
    this.chunks = new Array<Uint8Array | undefined>(Math.ceil(this.frameCount / CHUNK_FRAMES)).fill(
      undefined,
    );
    this.bump = new Int32Array(config.numaNodes);
    this.freeStacks = [];
    this.freeTops = new Int32Array(config.numaNodes);
    for (let nid = 0; nid < config.numaNodes; nid++) {
      this.bump[nid] = nid * this.framesPerNode;
      this.freeStacks.push(new Int32Array(1024));
    }
    // The zero page: frame 0, all zeroes, permanently in use.
    this.bump[0] = 1;
    this.flags[ZERO_FRAME] = FRAME_USED | FRAME_ZERO_PAGE;
    this.ensureChunk(ZERO_FRAME);
  }

  get usedFrames(): number {
    return this.usedFrameCount;
  }

  get freeFrames(): number {
    return this.frameCount - 1 - this.usedFrameCount;
  }

  nidOf(frame: number): number {
    return Math.floor(frame / this.framesPerNode);
  }

  /** The contents array holding `frame`; pair with `offsetOf`. */
  chunkOf(frame: number): Uint8Array {
    const chunk = this.chunks[frame >>> CHUNK_SHIFT];
    if (!(chunk !== undefined)) fail(`frame ${frame} has no contents (never allocated)`);
    return chunk;
  }

  offsetOf(frame: number): number {
    return (frame & CHUNK_MASK) * PAGE_SIZE;
  }

  /** A zero-filled frame on `nid` (falling back to other nodes, as the page allocator does), or -1 when memory is full. */
  alloc(nid: number): number {
    for (let i = 0; i < this.numaNodes; i++) {
      const node = (nid + i) % this.numaNodes;
      const frame = this.allocOnNode(node);
      if (frame >= 0) {
        this.initFrame(frame, this.allocatedFresh);
        return frame;
      }
    }
    return -1;
  }

  /** HPAGE_PMD_NR naturally aligned contiguous frames for a THP, or -1 (the caller falls back to base pages). */
  allocHuge(nid: number): number {
    for (let i = 0; i < this.numaNodes; i++) {
      const node = (nid + i) % this.numaNodes;
      const start = this.bump[node]!;
      const aligned = Math.ceil(start / HPAGE_PMD_NR) * HPAGE_PMD_NR;
      const end = (node + 1) * this.framesPerNode;
      if (aligned + HPAGE_PMD_NR > end) continue;
      // Frames skipped by the alignment are not lost: they go to the free stack.
      for (let f = start; f < aligned; f++) this.pushFree(node, f);
      this.bump[node] = aligned + HPAGE_PMD_NR;
      for (let f = aligned; f < aligned + HPAGE_PMD_NR; f++) {
        this.initFrame(f, true);
        this.folioHead[f] = aligned;
      }
      return aligned;
    }
    return -1;
  }

  /**
   * alloc() at a random place: one of `nid`'s free frames or of the next
   * RANDOM_WINDOW_FRAMES never-used ones, as VUsion allocates copies so that
   * where a page lands cannot be steered (falls back to alloc() on a full node).
   * `pick(n)` returns a uniform integer in [0, n).
   */
  allocRandom(nid: number, pick: (n: number) => number): number {
    const top = this.freeTops[nid]!;
    const start = this.bump[nid]!;
    const unused = Math.min((nid + 1) * this.framesPerNode - start, RANDOM_WINDOW_FRAMES);
    if (top + unused === 0) return this.alloc(nid);
    const r = pick(top + unused);
    assert(
      Number.isInteger(r) && r >= 0 && r < top + unused,
      `allocRandom: pick gave ${r} of ${top + unused}`,
    );
    let frame: number;
    const fresh = r >= top;
    if (!fresh) {
      const stack = this.freeStacks[nid]!;
      frame = stack[r]!;
      stack[r] = stack[top - 1]!;
      this.freeTops[nid] = top - 1;
    } else {
      frame = start + (r - top);
      // The never-used frames jumped over stay free, on the free stack.
      for (let f = start; f < frame; f++) this.pushFree(nid, f);
      this.bump[nid] = frame + 1;
    }
    this.initFrame(frame, fresh);
    return frame;
  }

  free(frame: number): void {
    const flags = this.flags[frame]!;
    if (!(flags & FRAME_USED)) fail(`double free of frame ${frame}`);
    assert(!(flags & FRAME_ZERO_PAGE), 'the zero page is never freed');
    if (!(this.mapcount[frame] === 0))
      fail(`frame ${frame} freed while mapped ${this.mapcount[frame]} times`);
    // Clearing the flags drops the KSM tag too: a stable node still pointing here is now stale.
    this.flags[frame] = 0;
    this.ksmNode[frame] = -1;
    this.folioHead[frame] = -1;
    this.pinCount[frame] = 0;
    this.batchRefs[frame] = 0;
    this.usedFrameCount--;
    this.pushFree(this.nidOf(frame), frame);
  }

  isLarge(frame: number): boolean {
    return this.folioHead[frame]! >= 0;
  }

  /** Turns the large folio containing `frame` into HPAGE_PMD_NR base pages (split_huge_page). */
  splitFolio(frame: number): void {
    const head = this.folioHead[frame]!;
    if (head < 0) return;
    for (let f = head; f < head + HPAGE_PMD_NR; f++) {
      if (this.folioHead[f] === head) this.folioHead[f] = -1;
    }
  }

  // ---------------------------------------------------------------- contents

  /** Copies `src` into the frame at `inPage` (src.length ≤ PAGE_SIZE − inPage). */
  writeBytes(frame: number, inPage: number, src: Uint8Array): void {
    if (this.contentMode === 'bytes') {
      this.chunkOf(frame).set(src, this.offsetOf(frame) + inPage);
      if (inPage < 4) this.refreshPrefix(frame);
    } else {
      const page = this.scratch;
      this.expand(frame, page);
      page.set(src, inPage);
      this.setValueFromPage(frame, page);
    }
    this.contentsChanged(frame);
  }

  /** Sets the whole page to its 64-bit value repeated (both modes). */
  writeValue(frame: number, hi: number, lo: number): void {
    if (this.contentMode === 'fingerprint') {
      this.fpHi[frame] = hi >>> 0;
      this.fpLo[frame] = lo >>> 0;
    } else {
      const chunk = this.chunkOf(frame);
      const off = this.offsetOf(frame);
      for (let k = 0; k < PAGE_SIZE; k += 8) writeValueAt(chunk, off + k, hi, lo);
      this.prefix[frame] = hi >>> 0;
    }
    this.contentsChanged(frame);
  }

  /**
   * The frame's first 8 bytes as two big-endian words into out[0] (hi) and
   * out[1] (lo): the whole page's value in fingerprint mode, without
   * expanding it (simulate's compression figures walk every frame).
   */
  firstValue(frame: number, out: Uint32Array): void {
    if (this.contentMode === 'fingerprint') {
      out[0] = this.fpHi[frame]!;
      out[1] = this.fpLo[frame]!;
      return;
    }
    const chunk = this.chunkOf(frame);
    const off = this.offsetOf(frame);
    out[0] = ((chunk[off]! << 24) | (chunk[off + 1]! << 16) | (chunk[off + 2]! << 8) | chunk[off + 3]!) >>> 0;
    out[1] =
      ((chunk[off + 4]! << 24) | (chunk[off + 5]! << 16) | (chunk[off + 6]! << 8) | chunk[off + 7]!) >>> 0;
  }

  /** Copies `n` bytes of the frame from `inPage` into dst at dstOff. */
  readBytes(frame: number, inPage: number, dst: Uint8Array, dstOff: number, n: number): void {
    if (this.contentMode === 'bytes') {
      const off = this.offsetOf(frame) + inPage;
      dst.set(this.chunkOf(frame).subarray(off, off + n), dstOff);
    } else {
      this.expand(frame, this.scratch);
      dst.set(this.scratch.subarray(inPage, inPage + n), dstOff);
    }
  }

  /** Same contents in `to` as in `from`, with the checksum cache carried over. */
  copyContents(from: number, to: number): void {
    if (this.contentMode === 'bytes') {
      const off = this.offsetOf(from);
      this.chunkOf(to).set(this.chunkOf(from).subarray(off, off + PAGE_SIZE), this.offsetOf(to));
      this.prefix[to] = this.prefix[from]!;
    } else {
      this.fpHi[to] = this.fpHi[from]!;
      this.fpLo[to] = this.fpLo[from]!;
    }
    this.flags[to]! &= ~FRAME_CSUM_VALID;
    if (this.flags[from]! & FRAME_CSUM_VALID) {
      this.checksum[to] = this.checksum[from]!;
      this.flags[to]! |= FRAME_CSUM_VALID;
    }
  }

  /** memcmp order of two frames' contents. */
  compare(a: number, b: number): -1 | 0 | 1 {
    if (this.contentMode === 'bytes') {
      const pa = this.prefix[a]!;
      const pb = this.prefix[b]!;
      if (pa !== pb) return pa < pb ? -1 : 1;
      return this.compareWordsFrom(a, b);
    }
    const ha = this.fpHi[a]!;
    const hb = this.fpHi[b]!;
    if (ha !== hb) return ha < hb ? -1 : 1;
    const la = this.fpLo[a]!;
    const lb = this.fpLo[b]!;
    return la === lb ? 0 : la < lb ? -1 : 1;
  }

  /** The first 4 bytes of the frame, big-endian (in both modes): memcmp order, when two differ. */
  prefixOf(frame: number): number {
    return this.contentMode === 'bytes' ? this.prefix[frame]! : this.fpHi[frame]!;
  }

  equal(a: number, b: number): boolean {
    if (this.contentMode === 'bytes')
      return this.prefix[a] === this.prefix[b] && this.compareWordsFrom(a, b) === 0;
    return this.fpHi[a] === this.fpHi[b] && this.fpLo[a] === this.fpLo[b];
  }

  isZero(frame: number): boolean {
    if (this.contentMode === 'bytes')
      return this.prefix[frame] === 0 && this.compareWordsFrom(frame, ZERO_FRAME) === 0;
    return this.fpHi[frame] === 0 && this.fpLo[frame] === 0;
  }

  /** calc_checksum() of the frame's contents (uncached). */
  checksumOf(frame: number, hasher: PageChecksum): number {
    if (this.contentMode === 'bytes') return hasher(this.chunkOf(frame), this.offsetOf(frame));
    this.expand(frame, this.scratch2);
    return hasher(this.scratch2, 0);
  }

  /**
   * memcmp order of two byte-mode pages whose first words are equal: the first
   * differing 32-bit word, then its first differing byte in memory order (the
   * lowest one of the little-endian word).
   */
  private compareWordsFrom(a: number, b: number): -1 | 0 | 1 {
    const wa = this.chunkWords[a >>> CHUNK_SHIFT]!;
    const wb = this.chunkWords[b >>> CHUNK_SHIFT]!;
    let ia = (a & CHUNK_MASK) << 10;
    let ib = (b & CHUNK_MASK) << 10;
    const pageCompare = this.pageCompare;
    const end = ia + (pageCompare === null ? 1024 : INLINE_COMPARE_WORDS);
    for (ia++, ib++; ia < end; ia++, ib++) {
      const x = wa[ia]!;
      const y = wb[ib]!;
      if (x !== y) {
        const diff = x ^ y;
        const shift = (31 - Math.clz32(diff & -diff)) & ~7;
        return ((x >>> shift) & 0xff) < ((y >>> shift) & 0xff) ? -1 : 1;
      }
    }
    if (pageCompare === null) return 0;
    const r = pageCompare(this.chunkOf(a), this.offsetOf(a), this.chunkOf(b), this.offsetOf(b));
    return r < 0 ? -1 : r > 0 ? 1 : 0;
  }

  private refreshPrefix(frame: number): void {
    const chunk = this.chunkOf(frame);
    const off = this.offsetOf(frame);
    this.prefix[frame] =
      ((chunk[off]! << 24) | (chunk[off + 1]! << 16) | (chunk[off + 2]! << 8) | chunk[off + 3]!) >>> 0;
  }

  private expand(frame: number, page: Uint8Array): void {
    writeValueAt(page, 0, this.fpHi[frame]!, this.fpLo[frame]!);
    for (let n = 8; n < PAGE_SIZE; n *= 2) page.copyWithin(n, 0, n);
  }

  private setValueFromPage(frame: number, page: Uint8Array): void {
    for (let k = 8; k < PAGE_SIZE; k++) {
      if (page[k] !== page[k & 7]) {
        throw new FingerprintModeError(
          'a host in fingerprint mode holds pages made of one 8-byte value repeated; this write would break that',
        );
      }
    }
    this.fpHi[frame] = ((page[0]! << 24) | (page[1]! << 16) | (page[2]! << 8) | page[3]!) >>> 0;
    this.fpLo[frame] = ((page[4]! << 24) | (page[5]! << 16) | (page[6]! << 8) | page[7]!) >>> 0;
  }

  /** Marks the frame's contents changed: its cached checksum is no longer valid. */
  contentsChanged(frame: number): void {
    this.flags[frame]! &= ~FRAME_CSUM_VALID;
  }

  /**
   * A frame handed out: zeroed, unless `fresh` (never handed out before, so
   * still as its chunk was created, all zeroes): filling it would only touch
   * memory the kernel has not even backed yet.
   */
  private initFrame(frame: number, fresh: boolean): void {
    this.ensureChunk(frame);
    if (fresh) {
      // Contents, prefix and value were never written: zero already.
    } else if (this.contentMode === 'bytes') {
      this.chunkOf(frame).fill(0, this.offsetOf(frame), this.offsetOf(frame) + PAGE_SIZE);
      this.prefix[frame] = 0;
    } else {
      this.fpHi[frame] = 0;
      this.fpLo[frame] = 0;
    }
    this.flags[frame] = FRAME_USED;
    this.mapcount[frame] = 0;
    this.ksmNode[frame] = -1;
    this.folioHead[frame] = -1;
    this.usedFrameCount++;
  }

  /** Output of allocOnNode: whether the frame came from above the bump pointer (never used). */
  private allocatedFresh = false;

  private allocOnNode(nid: number): number {
    const top = this.freeTops[nid]!;
    if (top > 0) {
      this.freeTops[nid] = top - 1;
      this.allocatedFresh = false;
      return this.freeStacks[nid]![top - 1]!;
    }
    const next = this.bump[nid]!;
    if (next >= (nid + 1) * this.framesPerNode) return -1;
    this.bump[nid] = next + 1;
    this.allocatedFresh = true;
    return next;
  }

  private pushFree(nid: number, frame: number): void {
    let stack = this.freeStacks[nid]!;
    const top = this.freeTops[nid]!;
    if (top === stack.length) {
      const bigger = new Int32Array(stack.length * 2);
      bigger.set(stack);
      this.freeStacks[nid] = bigger;
      stack = bigger;
    }
    stack[top] = frame;
    this.freeTops[nid] = top + 1;
  }

  private ensureChunk(frame: number): void {
    if (this.contentMode === 'fingerprint') return;
    const index = frame >>> CHUNK_SHIFT;
    if (this.chunks[index] !== undefined) return;
    const framesInChunk = Math.min(CHUNK_FRAMES, this.frameCount - index * CHUNK_FRAMES);
    const chunk = new Uint8Array(framesInChunk * PAGE_SIZE);
    this.chunks[index] = chunk;
    this.chunkWords[index] = new Uint32Array(chunk.buffer);
  }
}

function writeValueAt(page: Uint8Array, at: number, hi: number, lo: number): void {
  page[at] = hi >>> 24;
  page[at + 1] = (hi >>> 16) & 0xff;
  page[at + 2] = (hi >>> 8) & 0xff;
  page[at + 3] = hi & 0xff;
  page[at + 4] = lo >>> 24;
  page[at + 5] = (lo >>> 16) & 0xff;
  page[at + 6] = (lo >>> 8) & 0xff;
  page[at + 7] = lo & 0xff;
}
