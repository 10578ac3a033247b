/**
 * The engine's side of one benchmark workload: the same processes, region
 * addresses and page contents as the kernel side, in a SimulatedHost (page
 * contents as bytes, the native checksum), ksmd run one full pass at a time,
 * each pass timed in CPU of this process (one thread: one core).
 *
 * Also measured here: the hashing ceiling (the checksum the engine uses,
 * over the workload's own pages, one core), the engine's KSM metadata per
 * scanned and per merged page, and this process's peak resident memory.
 */
import { xxh64 } from '@node-rs/xxhash';
import { pageChecksumNative } from '../backend/sim/native-checksum.ts';
import { forgetCachedViews, pageCompareNative } from '../backend/sim/native-compare.ts';
import type { ContentMode } from '../host/frames.ts';
import { FRAME_ANON } from '../host/frames.ts';
import type { Ksm } from '../ksm/ksm.ts';
import { RMAP_ITEM_BYTES } from '../ksm/rmap-item.ts';
import { STABLE_NODE_BYTES } from '../ksm/stable-node.ts';
import { SimulatedHost } from '../surface/simulated-host.ts';
import { type PassMeasure, pickCounters, rate, runPasses } from './passes.ts';
import { processCpuNs, readPeakRssBytes } from './proc.ts';
import {
  type BenchWorkload,
  makeWorkload,
  PAGE_BYTES,
  pageFills,
  REGION_ADDRESS,
  totalPages,
} from './workload.ts';

export interface EngineHost {
  readonly sim: SimulatedHost;
  readonly pids: readonly number[];
}

/** Frames beyond the workload's pages: the zero page, KSM pages made by copying, slack. */
const SPARE_FRAMES = 16_384;

/** The workload built in a fresh simulated host, settings written, run=1, nothing scanned yet. */
export function buildEngineHost(w: BenchWorkload, contentMode: ContentMode = 'bytes'): EngineHost {
  const sim = new SimulatedHost({
    memoryBytes: (totalPages(w) + SPARE_FRAMES) * PAGE_BYTES,
    contentMode,
    thp: 'never',
    checksum: pageChecksumNative,
    pageCompare: pageCompareNative,
  });
  for (const [name, value] of w.settings) sim.sysfs.write(name, value);
  const pids: number[] = [];
  for (let p = 0; p < w.processCount; p++) {
    const pid = sim.host.spawn({ comm: `bench-${p + 1}` }).pid;
    const lengthBytes = w.pagesPerProcess * PAGE_BYTES;
    const address = sim.host.mmap(pid, { address: REGION_ADDRESS, lengthBytes });
    for (const fill of pageFills(w, p)) {
      let lo = fill.lo;
      let at = address + fill.pageIndex * PAGE_BYTES;
      for (let k = 0; k < fill.pageCount; k++, lo = (lo + fill.loStep) >>> 0, at += PAGE_BYTES) {
        sim.host.writePageValue(pid, at, fill.hi, lo);
      }
    }
    sim.host.madvise(pid, address, lengthBytes, 'mergeable');
    pids.push(pid);
  }
  sim.sysfs.write('run', '1');
  return { sim, pids };
}

export interface HashCeiling {
  /** The engine's checksum (one call per page through the binding), pages per CPU-second of one core. */
  readonly perPagePagesPerSecond: number;
  /** XXH64 over whole 64 MiB chunks (no per-call overhead): the memory-bandwidth end of it. */
  readonly bulkPagesPerSecond: number;
}

/** Hashes every anonymous frame of the host (the workload's pages, before any merge). Bytes mode only. */
export function measureHashCeiling(sim: SimulatedHost): HashCeiling {
  const frames = sim.host.frames;
  const anon: number[] = [];
  for (let f = 0; f < frames.frameCount; f++) if ((frames.flags[f]! & FRAME_ANON) !== 0) anon.push(f);
  let x = 0;
  // Best of three: the machine is shared, and a ceiling is the best this core can do.
  let perPageNs = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 3; round++) {
    const t0 = processCpuNs();
    for (const f of anon) x ^= pageChecksumNative(frames.chunkOf(f), frames.offsetOf(f));
    perPageNs = Math.min(perPageNs, processCpuNs() - t0);
  }
  const chunks = new Set<Uint8Array>(anon.map((f) => frames.chunkOf(f)));
  let bulkBytes = 0;
  const t1 = processCpuNs();
  for (const chunk of chunks) {
    x ^= Number(xxh64(chunk) & 0xffn);
    bulkBytes += chunk.length;
  }
  const bulkNs = processCpuNs() - t1;
  if (Number.isNaN(x)) throw new Error('unreachable');
  return {
    perPagePagesPerSecond: rate(anon.length, perPageNs),
    bulkPagesPerSecond: rate(bulkBytes / PAGE_BYTES, bulkNs),
  };
}

export interface MetadataMeasure {
  /** Bytes of every typed array the KSM engine holds (its pools, free lists, tree roots), walked and summed. */
  readonly ksmArrayBytes: number;
  /** Growth of this process's ArrayBuffer and heap memory across the passes (after a GC where --expose-gc
   * allows): an upper bound, as it also holds the host's growth (free-frame stacks) and heap noise. */
  readonly measuredBytes: number;
  /** Whether the figure was taken after forced GCs (otherwise garbage may inflate it). */
  readonly afterGc: boolean;
  /** The pools' capacities times the declared layouts (RMAP_ITEM_BYTES, STABLE_NODE_BYTES). */
  readonly allocatedBytes: number;
  /** Live items and nodes times the declared layouts. */
  readonly liveBytes: number;
  /** What the engine itself reports (a Ksm method, when the engine has one), else null. */
  readonly reportedBytes: number | null;
  readonly scannedPages: number;
  /** pages_sharing + ksm_zero_pages: the pages a merge gave back. */
  readonly mergedPages: number;
  readonly ksmArrayPerScannedPage: number;
  /** The rmap item arrays alone per scanned page: the figure the kernel's 64-byte rmap_item compares with. */
  readonly rmapItemsPerScannedPage: number;
  readonly ksmArrayPerMergedPage: number;
  readonly measuredPerScannedPage: number;
  readonly measuredPerMergedPage: number;
  readonly allocatedPerScannedPage: number;
}

/** Fields, at any depth, that lead out of KSM's own memory (to the host's, the mm's). */
const NOT_KSM_FIELDS = new Set(['host', 'frames', 'mm', 'costModel', 'listener', 'checksum', 'settings']);

/**
 * The bytes of every distinct ArrayBuffer behind a typed array reachable from
 * `ksm` in up to three steps (its fields, their fields: the rmap item and
 * stable node pools with their free lists, the tree roots, the mm slots),
 * the host and the mms excluded.
 */
export function ksmArrayBytes(ksm: Ksm): number {
  return typedArrayBytes(ksm, NOT_KSM_FIELDS);
}

/** The rmap item pool's arrays alone: what the kernel's 64-byte rmap_item slab holds. */
export function rmapItemArrayBytes(ksm: Ksm): number {
  return typedArrayBytes(ksm.items, new Set());
}

function typedArrayBytes(root: object, skip: ReadonlySet<string>): number {
  const buffers = new Set<ArrayBufferLike>();
  const seen = new Set<object>();
  const walk = (value: unknown, depth: number): void => {
    if (ArrayBuffer.isView(value)) {
      buffers.add(value.buffer);
      return;
    }
    if (depth === 0 || typeof value !== 'object' || value === null || seen.has(value)) return;
    seen.add(value);
    const children =
      value instanceof Map ? [...value.values()] : Array.isArray(value) ? value : Object.values(value);
    for (const child of children) walk(child, depth - 1);
  };
  seen.add(root);
  for (const [name, value] of Object.entries(root)) if (!skip.has(name)) walk(value, 3);
  let bytes = 0;
  for (const b of buffers) bytes += b.byteLength;
  return bytes;
}

export interface EngineSideResult {
  readonly passes: readonly PassMeasure[];
  readonly buildCpuNs: number;
  readonly hashCeiling: HashCeiling | null;
  readonly metadata: MetadataMeasure;
  readonly peakRssBytes: number;
}

function collectGarbage(): boolean {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return false;
  gc();
  gc();
  return true;
}

function heldBytes(): number {
  const m = process.memoryUsage();
  return m.arrayBuffers + m.heapUsed;
}

export interface EngineSideOptions {
  /** Measure the hashing ceiling (default true). */
  readonly hashCeiling?: boolean;
  /** Run a small workload of the same mix first, unmeasured (default true). */
  readonly warmUp?: boolean;
}

/** Mergeable memory of the warm-up run. */
export const WARM_UP_BYTES = 32 * 2 ** 20;

/**
 * The same mix at WARM_UP_BYTES, built and scanned to a steady pass, then
 * dropped. ksmd's code is compiled ahead of time; the engine's is compiled by
 * V8 as it runs, and at 256 MiB that start-up took a visible share of a pass
 * (the first pass ran at 0.5 of the rate it has at 1 GiB). A warmed-up engine
 * is what a sweep or a long simulation runs on.
 */
function warmUp(w: BenchWorkload): void {
  const small = makeWorkload(w.mix, Math.min(WARM_UP_BYTES, w.sizeBytes), w.processCount);
  const { sim } = buildEngineHost(small);
  for (let pass = 0; pass < 4; pass++) sim.ksm.fullScans(1);
  // The compare keeps views of the last pages' arrays: the warm-up host would outlive it and be freed mid-measurement.
  forgetCachedViews();
}

/** Builds the workload, then runs passes to a steady one; everything in this process. */
export async function runEngineSide(
  w: BenchWorkload,
  options: EngineSideOptions = {},
): Promise<EngineSideResult> {
  if (options.warmUp !== false) warmUp(w);
  const b0 = processCpuNs();
  const { sim } = buildEngineHost(w);
  const buildCpuNs = processCpuNs() - b0;
  const hashCeiling = options.hashCeiling === false ? null : measureHashCeiling(sim);
  const ksm = sim.ksm;
  const afterGc = collectGarbage();
  const held0 = heldBytes();
  const passes = await runPasses(() => {
    const scanned0 = ksm.pagesScanned;
    const c0 = processCpuNs();
    ksm.fullScans(1);
    const cpuNs = processCpuNs() - c0;
    return { pagesScanned: ksm.pagesScanned - scanned0, cpuNs, counters: pickCounters(ksm.counters()) };
  });
  collectGarbage();
  const measuredBytes = heldBytes() - held0;
  const ksmBytes = ksmArrayBytes(ksm);
  const last = passes.at(-1)!;
  // Every mergeable page is scanned in pass 1; later passes skip pages mapped to the zero page.
  const scannedPages = Math.max(...passes.map((p) => p.pagesScanned));
  const mergedPages = last.counters.pages_sharing + last.counters.ksm_zero_pages;
  const allocatedBytes = ksm.items.capacity * RMAP_ITEM_BYTES + ksm.nodes.capacity * STABLE_NODE_BYTES;
  const liveBytes = ksm.items.live * RMAP_ITEM_BYTES + ksm.nodes.live * STABLE_NODE_BYTES;
  return {
    passes,
    buildCpuNs,
    hashCeiling,
    metadata: {
      ksmArrayBytes: ksmBytes,
      measuredBytes,
      afterGc,
      allocatedBytes,
      liveBytes,
      reportedBytes: ksm.metadataBytes().total,
      scannedPages,
      mergedPages,
      ksmArrayPerScannedPage: scannedPages > 0 ? ksmBytes / scannedPages : 0,
      rmapItemsPerScannedPage: scannedPages > 0 ? rmapItemArrayBytes(ksm) / scannedPages : 0,
      ksmArrayPerMergedPage: mergedPages > 0 ? ksmBytes / mergedPages : 0,
      measuredPerScannedPage: scannedPages > 0 ? measuredBytes / scannedPages : 0,
      measuredPerMergedPage: mergedPages > 0 ? measuredBytes / mergedPages : 0,
      allocatedPerScannedPage: scannedPages > 0 ? allocatedBytes / scannedPages : 0,
    },
    peakRssBytes: readPeakRssBytes(),
  };
}
