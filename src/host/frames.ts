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
 *
 * 19 bytes of metadata per frame beside the 4096 bytes of contents.
 *
 * The checksum cache is ours, not the kernel's: the kernel rehashes every page
 * it visits; we hash a frame again only after it was written, which gives the
 * same checksum values at a fraction of the cost.
 */
import { assert, fail } from './assert.ts';
import { HPAGE_PMD_NR, PAGE_SIZE } from './constants.ts';

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

/** Frames per contents chunk: 64 MiB per Uint8Array, allocated on first use. */
export const CHUNK_SHIFT = 14;
export const CHUNK_FRAMES = 1 << CHUNK_SHIFT;
const CHUNK_MASK = CHUNK_FRAMES - 1;

/** The zero page is frame 0 of node 0. */
export const ZERO_FRAME = 0;

export interface FramePoolConfig {
  readonly memoryBytes: number;
  readonly numaNodes: number;
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
  private readonly chunks: (Uint8Array | undefined)[];
  /** Next never-used frame per node (frames below it were handed out at least once). */
  private readonly bump: Int32Array;
  /** Freed frames per node, reused LIFO. */
  private readonly freeStacks: Int32Array[];
  private readonly freeTops: Int32Array;
  private usedFrameCount = 0;

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
        this.initFrame(frame);
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
        this.initFrame(f);
        this.folioHead[f] = aligned;
      }
      return aligned;
    }
    return -1;
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

  /** Marks the frame's contents changed: its cached checksum is no longer valid. */
  contentsChanged(frame: number): void {
    this.flags[frame]! &= ~FRAME_CSUM_VALID;
  }

  private initFrame(frame: number): void {
    this.ensureChunk(frame);
    this.chunkOf(frame).fill(0, this.offsetOf(frame), this.offsetOf(frame) + PAGE_SIZE);
    this.flags[frame] = FRAME_USED;
    this.mapcount[frame] = 0;
    this.ksmNode[frame] = -1;
    this.folioHead[frame] = -1;
    this.usedFrameCount++;
  }

  private allocOnNode(nid: number): number {
    const top = this.freeTops[nid]!;
    if (top > 0) {
      this.freeTops[nid] = top - 1;
      return this.freeStacks[nid]![top - 1]!;
    }
    const next = this.bump[nid]!;
    if (next >= (nid + 1) * this.framesPerNode) return -1;
    this.bump[nid] = next + 1;
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
    const index = frame >>> CHUNK_SHIFT;
    if (this.chunks[index] !== undefined) return;
    const framesInChunk = Math.min(CHUNK_FRAMES, this.frameCount - index * CHUNK_FRAMES);
    this.chunks[index] = new Uint8Array(framesInChunk * PAGE_SIZE);
  }
}
