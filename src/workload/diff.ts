/**
 * `ksmkit diff`: the same workload on the simulator and on the real kernel,
 * compared counter by counter after every step. Every difference is reported
 * as `{step, counter, sim, kernel}`, all of them, not the first.
 *
 * A counter whose value depends on wall-clock time is reported but not
 * compared; which counters those are, and when, is declared per counter in
 * counters.ts (`wallClockWhen`), never decided here. Besides the counters, each
 * step compares its outcome: `op`, `ok`, `errno` and the number of failed checks.
 * Step 0 compares the start: the settings in force and the refused setup calls.
 */

import type { Backend, KsmCounters, ProcessCounters } from '../backend/backend.ts';
import { KSM_STAT_FIELDS, KSM_SYSFS_FILES, sysfsFile } from './counters.ts';
import { type ReplayOptions, type ReplayOutcome, runReplay, type StepResult } from './replay.ts';
import type { Workload } from './workload.ts';

export type CounterValue = number | string | boolean | null;

export interface CounterDifference {
  /** 0 for the start (settings in force, setup), else the 1-based step. */
  readonly step: number;
  /** A sysfs file name, `PROCESS.FIELD`, or one of `op`, `ok`, `errno`, `failures`, `setup`. */
  readonly counter: string;
  /** null: absent on that side. */
  readonly sim: CounterValue;
  readonly kernel: CounterValue;
}

export interface ReplayDiff {
  /** Differing compared counters: any one makes the diff fail. */
  readonly differences: readonly CounterDifference[];
  /** Differing counters that depend on wall-clock time at that step: reported, not compared. */
  readonly uncompared: readonly CounterDifference[];
}

class DiffCollector {
  readonly differences: CounterDifference[] = [];
  readonly uncompared: CounterDifference[] = [];

  compare(
    step: number,
    counter: string,
    sim: CounterValue | undefined,
    kernel: CounterValue | undefined,
  ): void {
    this.add(this.differences, step, counter, sim, kernel);
  }

  report(
    step: number,
    counter: string,
    sim: CounterValue | undefined,
    kernel: CounterValue | undefined,
  ): void {
    this.add(this.uncompared, step, counter, sim, kernel);
  }

  private add(
    into: CounterDifference[],
    step: number,
    counter: string,
    sim: CounterValue | undefined,
    kernel: CounterValue | undefined,
  ): void {
    if (sim === kernel || (sim ?? null) === (kernel ?? null)) return;
    into.push({ step, counter, sim: sim ?? null, kernel: kernel ?? null });
  }
}

/** Names of both sides in a stable order: `known` first (the tables' order), then the others sorted. */
function unionOfNames(known: readonly string[], ...sides: readonly object[]): string[] {
  const present = new Set(sides.flatMap((side) => Object.keys(side)));
  const extra = [...present].filter((name) => !known.includes(name)).sort();
  return [...known.filter((name) => present.has(name)), ...extra];
}

const SYSFS_ORDER = KSM_SYSFS_FILES.map((row) => row.name);
const FIELD_ORDER = KSM_STAT_FIELDS.map((row) => row.name);

function compareKsm(collector: DiffCollector, step: number, sim: KsmCounters, kernel: KsmCounters): void {
  for (const name of unionOfNames(SYSFS_ORDER, sim, kernel)) {
    const wallClock = sysfsFile(name)?.wallClockWhen;
    const dependsOnClock = wallClock !== undefined && (wallClock.applies(sim) || wallClock.applies(kernel));
    if (dependsOnClock) collector.report(step, name, sim[name], kernel[name]);
    else collector.compare(step, name, sim[name], kernel[name]);
  }
}

function compareProcesses(
  collector: DiffCollector,
  step: number,
  sim: Readonly<Record<string, ProcessCounters>>,
  kernel: Readonly<Record<string, ProcessCounters>>,
): void {
  for (const process of unionOfNames([], sim, kernel)) {
    const simFields = sim[process] ?? {};
    const kernelFields = kernel[process] ?? {};
    for (const field of unionOfNames(FIELD_ORDER, simFields, kernelFields)) {
      collector.compare(step, `${process}.${field}`, simFields[field], kernelFields[field]);
    }
  }
}

function compareStep(collector: DiffCollector, step: number, sim?: StepResult, kernel?: StepResult): void {
  collector.compare(step, 'op', sim?.op, kernel?.op);
  collector.compare(step, 'ok', sim?.ok, kernel?.ok);
  collector.compare(step, 'errno', sim?.errno, kernel?.errno);
  const failureCount = (result?: StepResult): number | undefined =>
    result === undefined ? undefined : (result.failures?.length ?? 0);
  collector.compare(step, 'failures', failureCount(sim), failureCount(kernel));
  compareKsm(collector, step, sim?.ksm ?? {}, kernel?.ksm ?? {});
  compareProcesses(collector, step, sim?.processes ?? {}, kernel?.processes ?? {});
}

/** Compares two step-result streams step by step (a step missing on one side compares against nothing). */
export function diffStepResults(sim: readonly StepResult[], kernel: readonly StepResult[]): ReplayDiff {
  const collector = new DiffCollector();
  for (let index = 0; index < Math.max(sim.length, kernel.length); index++) {
    compareStep(collector, index + 1, sim[index], kernel[index]);
  }
  return { differences: collector.differences, uncompared: collector.uncompared };
}

/** Compares two whole replays: the start (as step 0), then every step. */
export function diffOutcomes(sim: ReplayOutcome, kernel: ReplayOutcome): ReplayDiff {
  const collector = new DiffCollector();
  compareKsm(collector, 0, sim.start.settings, kernel.start.settings);
  const setupText = (outcome: ReplayOutcome): string | null =>
    outcome.start.setup === undefined ? null : JSON.stringify(outcome.start.setup);
  collector.compare(0, 'setup', setupText(sim), setupText(kernel));
  const steps = diffStepResults(sim.results, kernel.results);
  return {
    differences: [...collector.differences, ...steps.differences],
    uncompared: [...collector.uncompared, ...steps.uncompared],
  };
}

export interface BackendsDiff {
  readonly sim: ReplayOutcome;
  readonly kernel: ReplayOutcome;
  readonly diff: ReplayDiff;
}

/** Replays `workload` on the simulator, then on the kernel, and compares them. */
export async function diffBackends(
  workload: Workload,
  backends: { readonly sim: Backend; readonly kernel: Backend },
  options: ReplayOptions = {},
): Promise<BackendsDiff> {
  const sim = await runReplay(workload, backends.sim, options);
  const kernel = await runReplay(workload, backends.kernel, options);
  return { sim, kernel, diff: diffOutcomes(sim, kernel) };
}

/** `step 3: pages_sharing: sim 500, kernel 499` (with `(not compared: wall-clock)` for a reported-only one). */
export function formatDifference(
  difference: CounterDifference,
  options: { readonly compared: boolean },
): string {
  const show = (value: CounterValue): string => (value === null ? 'absent' : String(value));
  const note = options.compared ? '' : ' (not compared: depends on wall-clock time)';
  return `step ${difference.step}: ${difference.counter}: sim ${show(difference.sim)}, kernel ${show(difference.kernel)}${note}`;
}
