/**
 * The benchmark's workloads: a few processes of one mergeable region each,
 * every page one 64-bit value repeated 512 times (big-endian, the engine's
 * fingerprint form, `valuePage`), so that the same page contents can be made
 * inside the kernel backend's agents (the `fill` op, no bytes on the socket),
 * written into the engine byte for byte, or held as fingerprints.
 *
 * Values (hi, lo), the same scheme as src/simulate/content.ts:
 *
 * | content          | hi                  | lo                          |
 * |------------------|---------------------|-----------------------------|
 * | zero             | 0                   | 0                           |
 * | image            | 0x1000              | page index within the image |
 * | unique           | 0x100000 + process  | page index in the process   |
 *
 * Image pages are equal across processes (clones of one image); unique pages
 * equal no other page. A process's runs lie in address order.
 */
import { assertNever } from '../host/assert.ts';
import { parseSizeBytes } from '../simulate/units.ts';

export const PAGE_BYTES = 4096;
/** Where every process maps its region (src/workload/layout.ts's first address). */
export const REGION_ADDRESS = 0x1000_0000_0000;
export const REGION_NAME = 'ram';

const IMAGE_HI = 0x1000;
const UNIQUE_HI = 0x100000;

export type ContentKind = 'image' | 'unique' | 'zero';

export interface ContentShare {
  readonly kind: ContentKind;
  /** Fraction of each process's pages, in (0, 1]. */
  readonly share: number;
}

export interface MixDefinition {
  readonly name: string;
  readonly description: string;
  readonly shares: readonly ContentShare[];
  /** Settings beyond the benchmark's (smart_scan 0). */
  readonly settings: ReadonlyArray<readonly [string, string]>;
}

/** The workload mixes of issue 7, in the order the table shows them. */
export const MIXES: readonly MixDefinition[] = [
  {
    name: 'dup50',
    description: '50% of every process cloned from one image, 50% unique',
    shares: [
      { kind: 'image', share: 0.5 },
      { kind: 'unique', share: 0.5 },
    ],
    settings: [],
  },
  {
    name: 'unique',
    description: '98% unique pages, 2% from one image: the scan cost with little to merge',
    shares: [
      { kind: 'image', share: 0.02 },
      { kind: 'unique', share: 0.98 },
    ],
    settings: [],
  },
  {
    name: 'zero',
    description: '60% zero pages, 20% image, 20% unique; use_zero_pages 0 (zeros merge into KSM pages)',
    shares: [
      { kind: 'zero', share: 0.6 },
      { kind: 'image', share: 0.2 },
      { kind: 'unique', share: 0.2 },
    ],
    settings: [['use_zero_pages', '0']],
  },
  {
    name: 'zero-zp',
    description: 'the zero mix with use_zero_pages 1 (zeros map the zero page)',
    shares: [
      { kind: 'zero', share: 0.6 },
      { kind: 'image', share: 0.2 },
      { kind: 'unique', share: 0.2 },
    ],
    settings: [['use_zero_pages', '1']],
  },
];

/** The scale run's guests: cloned from one image, with per-guest differences. */
export const CLONES_MIX: MixDefinition = {
  name: 'clones',
  description: '40% image, 30% zero, 30% the guest’s own pages',
  shares: [
    { kind: 'image', share: 0.4 },
    { kind: 'zero', share: 0.3 },
    { kind: 'unique', share: 0.3 },
  ],
  settings: [],
};

/** One content run of a process: pages [pageIndex, pageIndex + pageCount). */
export interface ContentRun {
  readonly kind: ContentKind;
  readonly pageIndex: number;
  readonly pageCount: number;
}

export interface BenchWorkload {
  /** "dup50 256MiB". */
  readonly name: string;
  readonly mix: MixDefinition;
  readonly sizeBytes: number;
  readonly processCount: number;
  readonly pagesPerProcess: number;
  readonly runs: readonly ContentRun[];
  /** Written at the start on both sides, in order (smart_scan 0 first). */
  readonly settings: ReadonlyArray<readonly [string, string]>;
}

/** A run's pages as fill arguments: page k is (hi, lo + k·loStep). */
export interface PageFill {
  readonly pageIndex: number;
  readonly pageCount: number;
  readonly hi: number;
  readonly lo: number;
  readonly loStep: number;
}

export function totalPages(w: BenchWorkload): number {
  return w.processCount * w.pagesPerProcess;
}

/**
 * A workload of `sizeBytes` of mergeable memory split evenly over
 * `processCount` processes (default 4). Throws a RangeError naming what was wrong.
 */
export function makeWorkload(mix: MixDefinition, sizeBytes: number, processCount = 4): BenchWorkload {
  if (!Number.isSafeInteger(processCount) || processCount < 2) {
    throw new RangeError(`a workload needs at least 2 processes, got ${processCount}`);
  }
  const pagesPerProcess = Math.floor(sizeBytes / PAGE_BYTES / processCount);
  if (!Number.isSafeInteger(pagesPerProcess) || pagesPerProcess < mix.shares.length) {
    throw new RangeError(
      `${sizeBytes} bytes over ${processCount} processes is too small for the ${mix.name} mix ` +
        `(at least ${mix.shares.length} pages per process)`,
    );
  }
  const total = mix.shares.reduce((sum, s) => sum + s.share, 0);
  if (Math.abs(total - 1) > 1e-9) throw new RangeError(`mix ${mix.name}: shares add up to ${total}, not 1`);
  const runs: ContentRun[] = [];
  let pageIndex = 0;
  for (const [i, s] of mix.shares.entries()) {
    const last = i === mix.shares.length - 1;
    const pageCount = last ? pagesPerProcess - pageIndex : Math.max(1, Math.round(pagesPerProcess * s.share));
    runs.push({ kind: s.kind, pageIndex, pageCount });
    pageIndex += pageCount;
  }
  return {
    name: `${mix.name} ${formatSize(pagesPerProcess * processCount * PAGE_BYTES)}`,
    mix,
    sizeBytes: pagesPerProcess * processCount * PAGE_BYTES,
    processCount,
    pagesPerProcess,
    runs,
    settings: [['smart_scan', '0'], ...mix.settings],
  };
}

/** The fills that make process `processIndex`'s pages (see the table at the top). */
export function pageFills(w: BenchWorkload, processIndex: number): PageFill[] {
  if (!Number.isSafeInteger(processIndex) || processIndex < 0 || processIndex >= w.processCount) {
    throw new RangeError(`process index ${processIndex} is outside 0..${w.processCount - 1}`);
  }
  let imagePage = 0;
  return w.runs.map((run) => {
    switch (run.kind) {
      case 'zero':
        return { pageIndex: run.pageIndex, pageCount: run.pageCount, hi: 0, lo: 0, loStep: 0 };
      case 'image': {
        const fill = {
          pageIndex: run.pageIndex,
          pageCount: run.pageCount,
          hi: IMAGE_HI,
          lo: imagePage,
          loStep: 1,
        };
        imagePage += run.pageCount;
        return fill;
      }
      case 'unique':
        return {
          pageIndex: run.pageIndex,
          pageCount: run.pageCount,
          hi: UNIQUE_HI + processIndex,
          lo: run.pageIndex,
          loStep: 1,
        };
      default:
        return assertNever(run.kind, 'content kind');
    }
  });
}

/** What a full merge must reach: pages_shared, pages_sharing, ksm_zero_pages (max_page_sharing 256). */
export function expectedMerge(w: BenchWorkload): {
  readonly pagesShared: number;
  readonly pagesSharing: number;
  readonly ksmZeroPages: number;
} {
  const useZeroPages = w.settings.some(([name, value]) => name === 'use_zero_pages' && value === '1');
  let shared = 0;
  let sharing = 0;
  let zero = 0;
  // One KSM page holds at most max_page_sharing (256) mappings; more copies make more KSM pages.
  const group = (copies: number, groups: number): void => {
    const perKsmPage = 256;
    const ksmPages = Math.ceil(copies / perKsmPage);
    shared += ksmPages * groups;
    sharing += (copies - ksmPages) * groups;
  };
  for (const run of w.runs) {
    if (run.kind === 'image') group(w.processCount, run.pageCount);
    if (run.kind === 'zero') {
      if (useZeroPages) zero += run.pageCount * w.processCount;
      else group(run.pageCount * w.processCount, 1);
    }
  }
  return { pagesShared: shared, pagesSharing: sharing, ksmZeroPages: zero };
}

/** "256MiB", "1GiB". */
export function formatSize(bytes: number): string {
  if (bytes >= 2 ** 30 && bytes % 2 ** 30 === 0) return `${bytes / 2 ** 30}GiB`;
  if (bytes >= 2 ** 20 && bytes % 2 ** 20 === 0) return `${bytes / 2 ** 20}MiB`;
  return `${bytes}B`;
}

/** "256M,1G,4G" (M and G are binary, as everywhere in ksmkit). Throws a one-line Error. */
export function parseSizes(text: string): number[] {
  const sizes = text.split(',').map((part) => {
    const trimmed = part.trim();
    const bytes = parseSizeBytes(trimmed);
    if (bytes === undefined || bytes < 64 * PAGE_BYTES) {
      throw new Error(`--sizes: "${trimmed}" is not a size of at least 256KiB (write 256M, 1G, 4G)`);
    }
    return bytes;
  });
  if (sizes.length === 0) throw new Error('--sizes: give at least one size');
  return sizes;
}

/** "dup50,zero" against MIXES. Throws a one-line Error listing the mixes there are. */
export function parseMixes(text: string): MixDefinition[] {
  return text.split(',').map((part) => {
    const name = part.trim();
    const mix = MIXES.find((m) => m.name === name);
    if (mix === undefined) {
      throw new Error(
        `--mixes: no mix named "${name}"; the mixes are ${MIXES.map((m) => m.name).join(', ')}`,
      );
    }
    return mix;
  });
}
