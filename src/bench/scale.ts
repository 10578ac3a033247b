/**
 * The scale run: a simulated host of 64 GiB of guest memory (64 guests of
 * 1 GiB cloned from one image, with per-guest differences), page contents
 * held as 64-bit fingerprints (8 bytes a page instead of 4096), merged fully
 * (passes until a steady one, unthrottled) on a machine with less memory
 * than that. Reports wall and CPU time, peak resident memory, and whether the
 * machine swapped meanwhile (pswpout). That fingerprints give the same
 * counters as bytes is held by scale.test.ts on a workload small enough for both.
 */

import { buildEngineHost } from './engine-side.ts';
import { type PassMeasure, pickCounters, runPasses } from './passes.ts';
import { processCpuNs, readPagesSwappedOut, readPeakRssBytes } from './proc.ts';
import { type BenchWorkload, CLONES_MIX, expectedMerge, makeWorkload } from './workload.ts';

export interface ScaleOptions {
  readonly guests: number;
  readonly guestBytes: number;
}

export const DEFAULT_SCALE: ScaleOptions = { guests: 64, guestBytes: 2 ** 30 };

export interface ScaleResult {
  readonly workload: string;
  readonly guests: number;
  readonly guestMemoryBytes: number;
  readonly contentMode: 'fingerprint';
  readonly buildWallMs: number;
  readonly buildCpuNs: number;
  readonly mergeWallMs: number;
  readonly mergeCpuNs: number;
  readonly passes: readonly PassMeasure[];
  readonly peakRssBytes: number;
  /** Pages swapped out on the whole machine during the run (/proc/vmstat pswpout). */
  readonly pagesSwappedOut: number;
  /** The steady pass's counters are what a full merge must give. */
  readonly fullyMerged: boolean;
}

export function scaleWorkload(options: ScaleOptions = DEFAULT_SCALE): BenchWorkload {
  return makeWorkload(CLONES_MIX, options.guests * options.guestBytes, options.guests);
}

export async function runScale(options: ScaleOptions = DEFAULT_SCALE): Promise<ScaleResult> {
  const w = scaleWorkload(options);
  const swapped0 = readPagesSwappedOut();
  const wall0 = performance.now();
  const cpu0 = processCpuNs();
  const { sim } = buildEngineHost(w, 'fingerprint');
  const buildWallMs = performance.now() - wall0;
  const buildCpuNs = processCpuNs() - cpu0;
  const ksm = sim.ksm;
  const wall1 = performance.now();
  const cpu1 = processCpuNs();
  const passes = await runPasses(() => {
    const scanned0 = ksm.pagesScanned;
    const c0 = processCpuNs();
    ksm.fullScans(1);
    return {
      pagesScanned: ksm.pagesScanned - scanned0,
      cpuNs: processCpuNs() - c0,
      counters: pickCounters(ksm.counters()),
    };
  });
  const mergeWallMs = performance.now() - wall1;
  const mergeCpuNs = processCpuNs() - cpu1;
  const last = passes.at(-1)!;
  const want = expectedMerge(w);
  return {
    workload: `${options.guests} guests of ${options.guestBytes / 2 ** 20} MiB, ${w.mix.description}`,
    guests: options.guests,
    guestMemoryBytes: w.sizeBytes,
    contentMode: 'fingerprint',
    buildWallMs,
    buildCpuNs,
    mergeWallMs,
    mergeCpuNs,
    passes,
    peakRssBytes: readPeakRssBytes(),
    pagesSwappedOut: readPagesSwappedOut() - swapped0,
    fullyMerged:
      last.role === 'steady' &&
      last.counters.pages_shared === want.pagesShared &&
      last.counters.pages_sharing === want.pagesSharing &&
      last.counters.ksm_zero_pages === want.ksmZeroPages,
  };
}
