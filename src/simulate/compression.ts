/**
 * Compression figures for the engine's scenarios, whose pages are values
 * (content.ts), not bytes: each content kind is given a compressibility, and
 * pages of that kind are stood for by synthesised pages that the real
 * compressors (tools/compress) compress to about that fraction: a seeded
 * random prefix of `fraction × 4096` bytes, then zeroes. Zero pages and
 * `byte:` pages are what they are: same-filled pages, which zram keeps as one
 * word and zswap never sees (zero) or compresses to a few bytes.
 *
 * The fractions are the scenario's assumptions (its `compression:` block);
 * `ksmkit estimate --compare` on live processes measures real ones.
 */

import { FRAME_ANON, FRAME_USED, FRAME_ZERO_PAGE, type FramePool } from '../host/frames.ts';
import { ALGORITHMS, ANALYSIS_STRIDE, analyzePages, TIMING_ENTRIES } from '../tools/compress/native.ts';
import { ZramModel } from '../tools/compress/zram.ts';
import { PAGE_BYTES } from '../tools/estimate/model.ts';
import { kindOfValue } from './content.ts';
import type { RunResult } from './sweep.ts';
import { formatBytes } from './units.ts';

/** Compressed size over 4096 for pages of each kind with contents of their own (0.05..1). */
export interface Compressibility {
  readonly image: number;
  readonly tag: number;
  readonly unique: number;
}

/**
 * Defaults in the range `estimate --compare` measures on real memory with
 * lzo-rle: program and library pages about half, a language runtime's heap
 * about a third to a half.
 */
export const DEFAULT_COMPRESSIBILITY: Compressibility = { image: 0.5, tag: 0.5, unique: 0.4 };

/** Synthesised pages per kind: their lengths spread as real pages of one kind do not, so zsmalloc's classes see a spread. */
const SAMPLES = 32;

type Kind = ReturnType<typeof kindOfValue>;
const KINDS: readonly Kind[] = ['zero', 'byte', 'image', 'tag', 'unique'];

/** The analysis (native.ts layout) of SAMPLES pages for each kind, and which sample a value stands for. */
export class ContentCompression {
  private readonly analysis = new Map<Kind, Int32Array>();
  private readonly views = new Map<Kind, Int32Array[]>();
  readonly timing = new Float64Array(TIMING_ENTRIES);

  constructor(readonly compressibility: Compressibility = DEFAULT_COMPRESSIBILITY) {
    let seed = 0x9e3779b9;
    const next = (): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return seed >>> 0;
    };
    for (const kind of KINDS) {
      const pages = new Uint8Array(SAMPLES * PAGE_BYTES);
      for (let s = 0; s < SAMPLES; s++) {
        const page = pages.subarray(s * PAGE_BYTES, (s + 1) * PAGE_BYTES);
        if (kind === 'zero') continue;
        if (kind === 'byte') {
          page.fill(1 + (s % 255));
          continue;
        }
        // ±10% around the fraction, so that the pages spread over neighbouring size classes.
        const fraction = compressibility[kind] * (0.9 + (0.2 * s) / (SAMPLES - 1));
        const n = Math.min(PAGE_BYTES, Math.round(fraction * PAGE_BYTES));
        for (let i = 0; i < n; i++) page[i] = next() & 0xff;
      }
      const out = new Int32Array(SAMPLES * ANALYSIS_STRIDE);
      analyzePages(pages, out, this.timing);
      this.analysis.set(kind, out);
      this.views.set(
        kind,
        Array.from({ length: SAMPLES }, (_, i) =>
          out.subarray(i * ANALYSIS_STRIDE, (i + 1) * ANALYSIS_STRIDE),
        ),
      );
    }
  }

  /** The analysis (ANALYSIS_STRIDE entries) of the sample standing for the page of value (hi, lo). */
  analysisFor(hi: number, lo: number): Int32Array {
    return this.views.get(kindOfValue(hi, lo))![sampleIndex(hi, lo)]!;
  }

  /** The analysis array of a kind and the index of the sample standing for the page of value (hi, lo). */
  sampleOf(hi: number, lo: number): { readonly analysis: Int32Array; readonly index: number } {
    return { analysis: this.analysis.get(kindOfValue(hi, lo))!, index: sampleIndex(hi, lo) };
  }

  /**
   * zram's figures for the host's anonymous pages now, per algorithm: without
   * KSM (every mapping a page of its own; KSM zero pages as zero pages) and
   * with it (every frame once: what swapping the merged host out would write).
   */
  measureHost(frames: FramePool, ksmZeroPages: number, ksmProfitBytes: number): CompressionSample {
    // Per kind (KINDS order) and sample: mappings, and frames.
    const mapped = new Float64Array(KINDS.length * SAMPLES);
    const physical = new Float64Array(KINDS.length * SAMPLES);
    const value = new Uint32Array(2);
    const { flags, mapcount } = frames;
    let pages = 0;
    for (let f = 0; f < frames.frameCount; f++) {
      const fl = flags[f]!;
      if ((fl & (FRAME_USED | FRAME_ANON | FRAME_ZERO_PAGE)) !== (FRAME_USED | FRAME_ANON)) continue;
      const maps = mapcount[f]!;
      if (maps <= 0) continue;
      frames.firstValue(f, value);
      const hi = value[0]!;
      const lo = value[1]!;
      const slot = KINDS.indexOf(kindOfValue(hi, lo)) * SAMPLES + sampleIndex(hi, lo);
      mapped[slot]! += maps;
      physical[slot]! += 1;
      pages += maps;
    }
    mapped[KINDS.indexOf('zero') * SAMPLES]! += ksmZeroPages;
    pages += ksmZeroPages;
    const algorithms = ALGORITHMS.map((algorithm, a) => {
      const alone = new ZramModel();
      const after = new ZramModel();
      KINDS.forEach((kind, k) => {
        const analysis = this.analysis.get(kind)!;
        for (let s = 0; s < SAMPLES; s++) {
          const fl = analysis[s * ANALYSIS_STRIDE]!;
          const size = analysis[s * ANALYSIS_STRIDE + 1 + a]!;
          alone.write(fl, size, mapped[k * SAMPLES + s]!);
          after.write(fl, size, physical[k * SAMPLES + s]!);
        }
      });
      const z = alone.mmStat();
      const k = after.mmStat();
      return {
        algorithm,
        zramSavedBytes: z.orig_data_size - z.mem_used_total,
        ksmThenZramSavedBytes: ksmProfitBytes + k.orig_data_size - k.mem_used_total,
      };
    });
    return { pages, algorithms };
  }
}

function sampleIndex(hi: number, lo: number): number {
  return ((lo ^ hi) >>> 0) % SAMPLES;
}

/** One sample's compression figures. */
export interface CompressionSample {
  /** The guests' pages without KSM. */
  readonly pages: number;
  readonly algorithms: ReadonlyArray<{
    readonly algorithm: (typeof ALGORITHMS)[number];
    /** zram alone: what swapping every page out to it would free. */
    readonly zramSavedBytes: number;
    /** KSM's general_profit, plus zram on what KSM leaves. */
    readonly ksmThenZramSavedBytes: number;
  }>;
}

/** The summary's lines: at the end of each run, KSM, zram alone and KSM then zram per algorithm. */
export function compressionLines(results: readonly RunResult[]): string[] {
  const out: string[] = [];
  for (const r of results) {
    const last = r.run.samples.at(-1);
    if (last?.compression === undefined) continue;
    out.push('');
    out.push(
      `KSM beside compression at the end${results.length > 1 ? ` (${r.spec.label})` : ''}: ` +
        `KSM saves ${formatBytes(last.general_profit)}`,
    );
    for (const a of last.compression.algorithms)
      out.push(
        `  ${a.algorithm.padEnd(8)} zram alone ${formatBytes(a.zramSavedBytes).padStart(10)}, ` +
          `KSM then zram ${formatBytes(a.ksmThenZramSavedBytes).padStart(10)}`,
      );
  }
  return out;
}
