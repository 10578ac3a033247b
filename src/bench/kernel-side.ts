/**
 * The real ksmd's side of one benchmark workload, through the kernel backend:
 * one agent process per workload process (real processes, the same region
 * address and page contents as the engine's; pages made by the agents
 * themselves with the `fill` op), smart_scan 0, and ksmd stepped one full
 * pass at a time by the backend's stepper.
 *
 * Unthrottled. The stepper runs each pass as one batch: pages_to_scan
 * 10,000,000 (more than any pass here) and a wake-up by a sleep_millisecs
 * write. A pass always ends a batch (scan_get_next_rmap_item returns NULL at
 * the end of the mm list), so with pages_to_scan large and sleep_millisecs 0
 * ksmd would run exactly the same batches, only without waiting between
 * them; that wait is not CPU time, and ksmd's CPU time is what is measured
 * (/proc/<ksmd>/schedstat, time on a CPU, not wall time). pages scanned come
 * from pages_scanned. The backend's SysfsGuard restores every setting after.
 */
import { KernelBackend, kernelBackendAvailability } from '../backend/kernel/kernel-backend.ts';
import { readKsmNumber } from '../backend/kernel/ksm-sysfs.ts';
import { type MergeableProcess, mergeableProcesses } from '../backend/kernel/sysfs-guard.ts';
import { ksmdPid } from '../simulate/kernel-run.ts';
import { type PassMeasure, pickCounters, runPasses } from './passes.ts';
import { readKsmdCpuNs } from './proc.ts';
import { type BenchWorkload, pageFills, REGION_ADDRESS, REGION_NAME } from './workload.ts';

export const KERNEL_METHOD =
  'the backend stepper: one batch per full pass (pages_to_scan 10000000, woken by a sleep_millisecs write), ' +
  'smart_scan 0; equivalent to pages_to_scan large with sleep_millisecs 0, as a pass always ends a batch; ' +
  'ksmd CPU from /proc/<ksmd>/schedstat';

export type KernelSideResult =
  | {
      readonly ok: true;
      readonly passes: readonly PassMeasure[];
      /** Wall time to start the agents and fill their pages. */
      readonly buildMs: number;
    }
  | { readonly ok: false; readonly reason: string };

/** Why the kernel side cannot run here, or undefined. */
export function kernelSideUnavailable(): string | undefined {
  const a = kernelBackendAvailability();
  return a.ok ? undefined : a.reason;
}

/** Other processes of the machine KSM may scan (they would mix their pages into ksmd's counters). */
export function otherMergeableProcesses(): MergeableProcess[] {
  try {
    return mergeableProcesses();
  } catch {
    return [];
  }
}

export interface KernelSideOptions {
  /** Run even if other processes are mergeable. */
  readonly force?: boolean;
  /** How long to wait for the machine-wide kernel lock; default 10 minutes. */
  readonly lockTimeoutMs?: number;
}

/** Runs the workload on the real ksmd; a failure to run is a result with its reason, not a throw. */
export async function runKernelSide(
  w: BenchWorkload,
  options: KernelSideOptions = {},
): Promise<KernelSideResult> {
  const unavailable = kernelSideUnavailable();
  if (unavailable !== undefined) return { ok: false, reason: unavailable };
  const backend = new KernelBackend({
    force: options.force ?? false,
    lockTimeoutMs: options.lockTimeoutMs ?? 600_000,
    passTimeoutMs: 600_000,
  });
  try {
    await backend.start(w.settings);
    const started = performance.now();
    for (let p = 0; p < w.processCount; p++) {
      const name = `bench-${p + 1}`;
      must(await backend.spawn(name, { memoryMerge: false }), `start ${name}`);
      must(
        await backend.mmap(name, {
          name: REGION_NAME,
          address: REGION_ADDRESS,
          pageCount: w.pagesPerProcess,
          shared: false,
          thp: false,
        }),
        `map ${w.pagesPerProcess} pages in ${name}`,
      );
      for (const fill of pageFills(w, p)) {
        must(await backend.fillValues(name, REGION_NAME, fill, fill), `fill the pages of ${name}`);
      }
      must(await backend.madvise(name, REGION_NAME, 'mergeable'), `madvise(MADV_MERGEABLE) in ${name}`);
    }
    const buildMs = performance.now() - started;
    const pid = ksmdPid();
    const passes = await runPasses(async () => {
      const scanned0 = readKsmNumber('pages_scanned');
      const cpu0 = readKsmdCpuNs(pid);
      await backend.scan(1);
      const cpuNs = readKsmdCpuNs(pid) - cpu0;
      const pagesScanned = readKsmNumber('pages_scanned') - scanned0;
      return { pagesScanned, cpuNs, counters: pickCounters((await backend.counters()).ksm) };
    });
    return { ok: true, passes, buildMs };
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  } finally {
    await backend.close();
  }
}

function must(r: { readonly ok: boolean; readonly errno?: string }, what: string): void {
  if (!r.ok) throw new Error(`cannot ${what}: ${r.errno ?? 'refused'}`);
}
