/**
 * `npm run bench`: every workload (size × mix) on the real ksmd, then on the
 * engine, one after the other (never both at once: each holds the
 * workload's memory), then the scale run and the default scenario's speed.
 * A side that cannot run says why in its place; the rest still runs.
 */
import { cpus, release, totalmem } from 'node:os';
import { runInChild } from './child.ts';
import { runEngineSide } from './engine-side.ts';
import {
  KERNEL_METHOD,
  type KernelSideResult,
  kernelSideUnavailable,
  otherMergeableProcesses,
  runKernelSide,
} from './kernel-side.ts';
import { counterDifferences, type PassMeasure, type PassRole, passOfRole } from './passes.ts';
import { runScale, type ScaleOptions } from './scale.ts';
import type { BenchResults, WorkloadResult } from './schema.ts';
import { measureSweepSpeed } from './sweep-speed.ts';
import { type BenchWorkload, type MixDefinition, makeWorkload } from './workload.ts';

export const TARGET_RATIO = 2;
export const TARGET_METADATA_BYTES_PER_SCANNED_PAGE = 64;

export interface BenchOptions {
  readonly sizes: readonly number[];
  readonly mixes: readonly MixDefinition[];
  readonly processCount?: number;
  /** Run the kernel side (where it can run). */
  readonly kernel: boolean;
  /** Run the kernel side even if other processes are mergeable. */
  readonly force?: boolean;
  /** The scale run, or null to skip it. */
  readonly scale: ScaleOptions | null;
  /** Measure the default scenario's speed: with fast-forward, and also without. */
  readonly sweep: 'none' | 'fast-forward' | 'both';
  /** Engine jobs in child processes (default; their own peak RSS) or in this one (tests). */
  readonly isolate?: boolean;
  readonly command: string;
  readonly log?: (line: string) => void;
}

type EngineOutcome = WorkloadResult['engine'];

function ratioByRole(
  engine: readonly PassMeasure[] | undefined,
  kernel: readonly PassMeasure[] | undefined,
): WorkloadResult['ratio'] {
  const one = (role: PassRole): number | null => {
    const e = engine === undefined ? undefined : passOfRole(engine, role);
    const k = kernel === undefined ? undefined : passOfRole(kernel, role);
    return e === undefined || k === undefined || k.pagesPerCpuSecond === 0
      ? null
      : e.pagesPerCpuSecond / k.pagesPerCpuSecond;
  };
  return { first: one('first'), merge: one('merge'), steady: one('steady') };
}

function ofCeiling(engine: EngineOutcome): WorkloadResult['ofHashCeiling'] {
  const none = { first: null, merge: null, steady: null };
  if ('error' in engine || engine.hashCeiling === null) return none;
  const ceiling = engine.hashCeiling.perPagePagesPerSecond;
  const one = (role: PassRole): number | null => {
    const p = passOfRole(engine.passes, role);
    return p === undefined || ceiling === 0 ? null : p.pagesPerCpuSecond / ceiling;
  };
  return { first: one('first'), merge: one('merge'), steady: one('steady') };
}

/** The first pass after which the two sides' counters differ, as one line; null when equal. */
function firstDifference(engine: readonly PassMeasure[], kernel: readonly PassMeasure[]): string | null {
  const n = Math.min(engine.length, kernel.length);
  for (let i = 0; i < n; i++) {
    const d = counterDifferences(kernel[i]!.counters, engine[i]!.counters);
    if (d.length > 0)
      return `after pass ${i + 1}: ${d.map((x) => `${x.name} kernel ${x.a}, engine ${x.b}`).join('; ')}`;
  }
  if (engine.length !== kernel.length)
    return `the kernel settled after ${kernel.length} passes, the engine after ${engine.length}`;
  return null;
}

export function compareSides(
  w: BenchWorkload,
  kernel: KernelSideResult,
  engine: EngineOutcome,
): WorkloadResult {
  const enginePasses = 'error' in engine ? undefined : engine.passes;
  const kernelPasses = kernel.ok ? kernel.passes : undefined;
  const difference =
    enginePasses === undefined || kernelPasses === undefined
      ? null
      : firstDifference(enginePasses, kernelPasses);
  return {
    name: w.name,
    mix: w.mix.name,
    description: w.mix.description,
    sizeBytes: w.sizeBytes,
    processCount: w.processCount,
    pagesPerProcess: w.pagesPerProcess,
    settings: Object.fromEntries(w.settings),
    kernel: kernel.ok ? { ok: true, passes: [...kernel.passes], buildMs: kernel.buildMs } : kernel,
    engine,
    ratio: ratioByRole(enginePasses, kernelPasses),
    ofHashCeiling: ofCeiling(engine),
    countersMatch: enginePasses === undefined || kernelPasses === undefined ? null : difference === null,
    counterDifference: difference,
  };
}

function describePasses(side: string, passes: readonly PassMeasure[]): string {
  return `${side}: ${passes
    .map((p) => `${p.role} ${Math.round(p.pagesPerCpuSecond).toLocaleString('en')}/s`)
    .join(', ')}`;
}

export async function runBench(options: BenchOptions): Promise<BenchResults> {
  const log = options.log ?? (() => undefined);
  const isolate = options.isolate ?? true;
  const startedAt = new Date().toISOString();
  const unavailable = options.kernel ? kernelSideUnavailable() : 'not asked for (--no-kernel)';
  const others = unavailable === undefined ? otherMergeableProcesses() : [];
  if (others.length > 0) {
    log(
      `other mergeable processes on this machine: ${others.map((p) => `${p.pid} (${p.command})`).join(', ')}` +
        (options.force === true
          ? '; going ahead (--force)'
          : '; the kernel side waits for the kernel lock and refuses any still mergeable then (--force)'),
    );
  }
  const workloads: WorkloadResult[] = [];
  for (const size of options.sizes) {
    for (const mix of options.mixes) {
      const w = makeWorkload(mix, size, options.processCount);
      log(`${w.name}: ${w.processCount} processes of ${w.pagesPerProcess} pages (${mix.description})`);
      const kernel: KernelSideResult =
        unavailable === undefined
          ? await runKernelSide(w, { force: options.force ?? false })
          : { ok: false, reason: unavailable };
      log(kernel.ok ? `  ${describePasses('kernel', kernel.passes)}` : `  kernel: ${kernel.reason}`);
      let engine: EngineOutcome;
      try {
        const e = isolate
          ? await runInChild({ kind: 'engine', workload: w, options: {} })
          : await runEngineSide(w);
        log(`  ${describePasses('engine', e.passes)}`);
        engine = e;
      } catch (e) {
        engine = { error: (e as Error).message };
        log(`  engine: ${engine.error}`);
      }
      workloads.push(compareSides(w, kernel, engine));
    }
  }
  let scale: BenchResults['scale'] = null;
  if (options.scale !== null) {
    log(
      `scale: ${options.scale.guests} guests of ${options.scale.guestBytes / 2 ** 20} MiB in fingerprint mode`,
    );
    try {
      const s = isolate
        ? await runInChild({ kind: 'scale', options: options.scale })
        : await runScale(options.scale);
      scale = s;
      log(`  ${(s.mergeWallMs / 1000).toFixed(1)} s to a steady pass, peak RSS ${s.peakRssBytes} bytes`);
    } catch (e) {
      scale = { error: (e as Error).message };
      log(`  scale: ${scale.error}`);
    }
  }
  const defaultScenario: BenchResults['defaultScenario'] = [];
  const sweeps = options.sweep === 'none' ? [] : options.sweep === 'both' ? [true, false] : [true];
  for (const fastForward of sweeps) {
    log(`default scenario, ${fastForward ? 'as npm start runs it' : 'every batch simulated'}`);
    try {
      const s = isolate ? await runInChild({ kind: 'sweep', fastForward }) : measureSweepSpeed(fastForward);
      defaultScenario.push(s);
      log(`  ${s.cpuSecondsPerSimulatedHour.toFixed(2)} CPU-seconds per simulated hour`);
    } catch (e) {
      defaultScenario.push({ error: (e as Error).message });
    }
  }
  return {
    version: 1,
    command: options.command,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: {
      kernel: release(),
      cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
      cpus: cpus().length,
      memoryBytes: totalmem(),
      node: process.version,
    },
    kernelSide: {
      available: unavailable === undefined,
      reason: unavailable ?? null,
      method: KERNEL_METHOD,
      otherMergeableProcesses: others.map((p) => ({ pid: p.pid, command: p.command })),
    },
    targets: {
      ratio: TARGET_RATIO,
      metadataBytesPerScannedPage: TARGET_METADATA_BYTES_PER_SCANNED_PAGE,
    },
    workloads,
    scale,
    defaultScenario,
  };
}
