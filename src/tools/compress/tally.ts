/**
 * Compression figures per page content, gathered while `estimate` counts
 * contents: a content's flags and compressed lengths (the same for every
 * page of it), and how many physical pages hold it (a page shared after fork
 * is swapped out, and so compressed, once).
 *
 * Layout, per content id of the estimate's ContentTable:
 *   flags      Uint8    SAME_FILLED | ZERO_FILLED (native.ts)
 *   sizes      Uint16 × 3  compressed bytes under lzo, lzo-rle, lz4 (≤ 4096 + overhead < 65536)
 *   physical   Uint32   pages at distinct (or unknown) page frames
 * 7 + 4 = 11 bytes a content; and one Set entry per known frame seen.
 */
import { ALGORITHMS, ANALYSIS_STRIDE, TIMING_ENTRIES } from './native.ts';

const ALGOS = ALGORITHMS.length;

export class CompressionTally {
  private flags = new Uint8Array(1024);
  private sizes = new Uint16Array(1024 * ALGOS);
  private physical = new Uint32Array(1024);
  private contents = 0;
  private readonly frames = new Set<number>();
  /** The analysis's CPU time, summed over every job (analyzePages()'s timing layout). */
  readonly timing = new Float64Array(TIMING_ENTRIES);

  get contentCount(): number {
    return this.contents;
  }

  /**
   * One page of content `id`, analysed at analysis[ANALYSIS_STRIDE × index …],
   * at page frame `frame` (negative when unknown: counted as its own page).
   */
  add(id: number, analysis: Int32Array, index: number, frame: number): void {
    if (id >= this.contents) {
      this.grow(id + 1);
      const base = ANALYSIS_STRIDE * index;
      this.flags[id] = analysis[base]!;
      for (let a = 0; a < ALGOS; a++) this.sizes[id * ALGOS + a] = analysis[base + 1 + a]!;
      this.contents = id + 1;
    }
    if (frame >= 0) {
      if (this.frames.has(frame)) return;
      this.frames.add(frame);
    }
    this.physical[id]!++;
  }

  addTiming(timing: Float64Array): void {
    for (let k = 0; k < TIMING_ENTRIES; k++) this.timing[k]! += timing[k]!;
  }

  /** CPU ns per page to compress and to decompress with algorithm index `a` (NaN when nothing was timed). */
  nsPerPage(a: number): { compressNs: number; decompressNs: number } {
    const n = ALGOS;
    return {
      compressNs: this.timing[a]! / this.timing[2 * n + a]!,
      decompressNs: this.timing[n + a]! / this.timing[3 * n + a]!,
    };
  }

  flagsOf(id: number): number {
    return this.flags[id]!;
  }

  sizeOf(id: number, algorithm: number): number {
    return this.sizes[id * ALGOS + algorithm]!;
  }

  physicalOf(id: number): number {
    return this.physical[id]!;
  }

  private grow(n: number): void {
    if (n <= this.flags.length) return;
    let size = this.flags.length;
    while (size < n) size *= 2;
    const flags = new Uint8Array(size);
    flags.set(this.flags);
    const sizes = new Uint16Array(size * ALGOS);
    sizes.set(this.sizes);
    const physical = new Uint32Array(size);
    physical.set(this.physical);
    this.flags = flags;
    this.sizes = sizes;
    this.physical = physical;
  }
}
