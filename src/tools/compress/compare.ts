/**
 * KSM against compression on the same pages: KSM alone, zram alone and zswap
 * alone per algorithm, zswap with the proposed deduplication, and KSM first
 * with zram holding what KSM leaves; with the CPU each one costs.
 *
 * Savings are bytes of RAM freed, each on its own terms:
 * - KSM: general_profit (pages_sharing and KSM zero pages, less 64 bytes of
 *   rmap item per scanned page), as `estimate` reports it;
 * - zram: orig_data_size − mem_used_total, as if every physical page were
 *   swapped out to it (zram's own table, 16 bytes per slot of disksize, is
 *   not counted);
 * - zswap: pages × 4096 − the pool's pages (zswap_entry structs, about 56
 *   bytes each, are not counted);
 * - KSM then zram: KSM's profit plus zram's saving on what KSM leaves: each
 *   unmerged page and one copy of each merged page (KSM pages are swappable);
 *   KSM zero pages (use_zero_pages) are the shared zero page, never swapped.
 */

import { PAGE_BYTES } from '../estimate/model.ts';
import type { KsmOutcome } from '../estimate/summary.ts';
import { ALGORITHMS, type Algorithm, FIDELITY } from './native.ts';
import type { CompressionTally } from './tally.ts';
import { type MmStat, ZramModel, ZswapModel, type ZswapStat } from './zram.ts';

export interface ContentCounts {
  /** Mappings of content `id` that were counted. */
  countOf(id: number): number;
}

/** What ksmd and a COW break cost (CostFigures of a calibration) and where the figures come from. */
export interface KsmdCost {
  readonly visitPageNs: number;
  readonly checksumNs: number;
  readonly compareNs: number;
  readonly mergeNs: number;
  readonly cowBreakNs: number;
  readonly source: string;
}

export interface CompareInput {
  readonly tally: CompressionTally;
  readonly table: ContentCounts;
  /** Per content id, the mappings KSM frees (summarize()'s onContent). */
  readonly freedMappings: Float64Array;
  readonly ksm: KsmOutcome;
  readonly ksmd: KsmdCost;
  /** What this kernel's zram offers (/sys/block/zram0/comp_algorithm); undefined: no zram here, show all three. */
  readonly offered?: readonly string[];
}

export interface AlgorithmFigures {
  readonly algorithm: Algorithm;
  readonly zram: MmStat & { readonly savedBytes: number };
  readonly zswap: ZswapStat & { readonly savedBytes: number };
  /** zswap keeping one entry per distinct content (the proposed zswap deduplication). */
  readonly zswapDedup: ZswapStat & { readonly savedBytes: number };
  /** zram holding what KSM leaves; savedBytes is the two together. */
  readonly ksmThenZram: MmStat & { readonly savedBytes: number };
  /** CPU ns per page on this machine (this run's pages): compress, and decompress (the fault on access). */
  readonly compressNs: number;
  readonly decompressNs: number;
}

export interface CompareReport {
  /** Mappings examined (what KSM scans) and the physical pages holding them (what swap would write). */
  readonly pages: number;
  readonly physicalPages: number;
  readonly distinctContents: number;
  /** Physical pages KSM leaves to compress. */
  readonly pagesAfterKsm: number;
  readonly ksm: { readonly savedBytes: number; readonly pagesFreed: number };
  readonly algorithms: readonly AlgorithmFigures[];
  readonly cpu: {
    /** ksmd per page and full scan: visit, checksum, and an unstable-tree search of ⌈log2 distinct⌉ memcmps. */
    readonly ksmdScanNsPerPage: number;
    /** Once per merged page. */
    readonly ksmdMergeNs: number;
    /** A write to a merged page. */
    readonly cowBreakNs: number;
    readonly source: string;
  };
  readonly fidelity: Readonly<Record<Algorithm, string>>;
  /** Algorithms this kernel's zram offers that ksmkit does not model (zstd, deflate, 842, lz4hc). */
  readonly notModelled: readonly string[];
}

export function compareCompression(input: CompareInput): CompareReport {
  const { tally, table, freedMappings } = input;
  const zram = ALGORITHMS.map(() => new ZramModel());
  const zswap = ALGORITHMS.map(() => new ZswapModel());
  const dedup = ALGORITHMS.map(() => new ZswapModel());
  const after = ALGORITHMS.map(() => new ZramModel());
  let pages = 0;
  let physicalPages = 0;
  let pagesAfterKsm = 0;
  for (let id = 0; id < tally.contentCount; id++) {
    const total = table.countOf(id);
    const physical = tally.physicalOf(id);
    const left = Math.min(physical, total - freedMappings[id]!);
    const flags = tally.flagsOf(id);
    pages += total;
    physicalPages += physical;
    pagesAfterKsm += left;
    for (let a = 0; a < ALGORITHMS.length; a++) {
      const size = tally.sizeOf(id, a);
      zram[a]!.write(flags, size, physical);
      zswap[a]!.store(flags, size, physical);
      dedup[a]!.store(flags, size, physical > 0 ? 1 : 0);
      after[a]!.write(flags, size, left);
    }
  }
  const ksmSaved = input.ksm.general_profit;
  const zramSaving = (s: MmStat): number => s.orig_data_size - s.mem_used_total;
  const zswapSaving = (s: ZswapStat, swappedPages: number): number => swappedPages * PAGE_BYTES - s.poolBytes;
  const shown = (a: Algorithm): boolean => input.offered === undefined || input.offered.includes(a);
  const algorithms = ALGORITHMS.flatMap((algorithm, a): AlgorithmFigures[] => {
    if (!shown(algorithm)) return [];
    const z = zram[a]!.mmStat();
    const w = zswap[a]!.stat();
    const d = dedup[a]!.stat();
    const k = after[a]!.mmStat();
    const cpu = tally.nsPerPage(a);
    return [
      {
        algorithm,
        zram: { ...z, savedBytes: zramSaving(z) },
        zswap: { ...w, savedBytes: zswapSaving(w, w.pages) },
        // Every physical page leaves RAM; the pool holds one copy per content.
        zswapDedup: { ...d, savedBytes: zswapSaving(d, physicalPages) },
        ksmThenZram: { ...k, savedBytes: ksmSaved + zramSaving(k) },
        compressNs: cpu.compressNs,
        decompressNs: cpu.decompressNs,
      },
    ];
  });
  const { ksmd } = input;
  const depth = Math.ceil(Math.log2(Math.max(2, tally.contentCount)));
  return {
    pages,
    physicalPages,
    distinctContents: tally.contentCount,
    pagesAfterKsm,
    ksm: { savedBytes: ksmSaved, pagesFreed: input.ksm.pages_sharing + input.ksm.ksm_zero_pages },
    algorithms,
    cpu: {
      ksmdScanNsPerPage: ksmd.visitPageNs + ksmd.checksumNs + depth * ksmd.compareNs,
      ksmdMergeNs: ksmd.mergeNs,
      cowBreakNs: ksmd.cowBreakNs,
      source: ksmd.source,
    },
    fidelity: FIDELITY,
    notModelled: (input.offered ?? []).filter((o) => !(ALGORITHMS as readonly string[]).includes(o)),
  };
}
