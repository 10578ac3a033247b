/**
 * The differential fuzzer: generated workloads (generate.ts), seed by seed,
 * on two backends, compared with `diffOutcomes` after every step; at the
 * first difference it stops, shrinks the workload (shrink.ts) to a small one
 * that still differs on the same counters, and saves it as a workload file
 * with a comment header (the seed, the differences): a corpus entry to be.
 *
 * The two sides are called `sim` and `kernel` as in diff.ts, whatever they
 * are (sim vs sim is the fuzzer's own test). A side that throws (not an errno
 * refusal, which is part of the outcome, but an error: an assertion of the
 * engine, a backend failure) is a finding too: it is shrunk to a workload on
 * which the same side still throws the same message.
 */

import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Backend } from '../backend/backend.ts';
import {
  type CounterDifference,
  diffOutcomes,
  formatDifference,
  parseWorkload,
  type ReplayOutcome,
  runReplay,
  type Workload,
} from '../workload/index.ts';
import { type GenerateOptions, generateWorkload } from './generate.ts';
import { type ShrinkOptions, type ShrinkResult, shrinkWorkload, workloadPages } from './shrink.ts';
import { workloadToYaml } from './to-yaml.ts';

export interface BackendPair {
  readonly sim: Backend;
  readonly kernel: Backend;
}

export type Side = keyof BackendPair;

export interface FuzzOptions {
  /** Seeds to run, in order (safe integers). */
  readonly seeds: Iterable<number>;
  /** Two fresh backends; called once per replayed workload (shrinking included). */
  readonly makeBackends: () => BackendPair | Promise<BackendPair>;
  readonly onProgress?: (event: FuzzEvent) => void;
  readonly generate?: GenerateOptions;
  /** false: report the finding unshrunk. */
  readonly shrink?: ShrinkOptions | false;
  /** Where to save the (shrunk) workload of a finding; absent: not saved. */
  readonly outFile?: (seed: number) => string;
  /** How the header of a saved file names the two sides (default `sim` and `kernel`). */
  readonly labels?: SideLabels;
  /** Milliseconds clock (default `performance.now`). */
  readonly now?: () => number;
  /**
   * Errors that say nothing about the workload (a shared machine's state: the
   * kernel lock held too long, other mergeable processes): the workload is run
   * again after `retryDelayMs`, up to `maxRetries` times, instead of being a finding.
   */
  readonly transient?: {
    readonly isTransient: (error: ReplayError) => boolean;
    readonly retryDelayMs: number;
    readonly maxRetries: number;
    readonly sleep: (ms: number) => Promise<void>;
  };
}

/** A side that threw while replaying. */
export interface ReplayError {
  readonly side: Side;
  readonly message: string;
}

export type FuzzEvent =
  | { readonly kind: 'workload'; readonly seed: number; readonly ran: number; readonly elapsedMs: number }
  | { readonly kind: 'finding'; readonly seed: number; readonly check: Check }
  | {
      readonly kind: 'shrinking';
      readonly attempts: number;
      readonly steps: number;
      readonly processes: number;
      readonly pages: number;
    }
  | { readonly kind: 'saved'; readonly file: string }
  | { readonly kind: 'retry'; readonly seed: number; readonly attempt: number; readonly message: string };

/** One workload compared: the differing compared counters, or the error of a side that threw. */
export interface Check {
  readonly differences: readonly CounterDifference[];
  readonly error?: ReplayError;
}

export interface FuzzFinding {
  readonly seed: number;
  /** The generated workload and what it gave. */
  readonly workload: Workload;
  readonly check: Check;
  /** The smallest workload that still gives the same finding, and what it gives. */
  readonly shrunk: Workload;
  readonly shrunkCheck: Check;
  /** false when the saved workload, run once more, did not give the same finding (a flaky backend). */
  readonly reproduced: boolean;
  /** Absent when shrinking was off. */
  readonly shrink?: ShrinkResult;
  /** The saved file's text (header included). */
  readonly yaml: string;
  readonly file?: string;
}

export interface FuzzSummary {
  /** Workloads run (the one that differed included). */
  readonly ran: number;
  /** The differences the seed's workload gave (empty when none differed). */
  readonly differences: readonly CounterDifference[];
  readonly seed?: number;
  readonly file?: string;
  readonly finding?: FuzzFinding;
  readonly elapsedMs: number;
}

function isFinding(check: Check): boolean {
  return check.error !== undefined || check.differences.length > 0;
}

async function replayOn(
  workload: Workload,
  backend: Backend,
  side: Side,
): Promise<ReplayOutcome | ReplayError> {
  try {
    return await runReplay(workload, backend);
  } catch (error) {
    return { side, message: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
  }
}

/** Runs `workload` on a fresh pair of backends and compares them. */
export async function checkWorkload(
  workload: Workload,
  makeBackends: FuzzOptions['makeBackends'],
): Promise<Check> {
  const backends = await makeBackends();
  const sim = await replayOn(workload, backends.sim, 'sim');
  if ('side' in sim) {
    await backends.kernel.close();
    return { differences: [], error: sim };
  }
  const kernel = await replayOn(workload, backends.kernel, 'kernel');
  if ('side' in kernel) return { differences: [], error: kernel };
  return { differences: diffOutcomes(sim, kernel).differences };
}

/** `pages_sharing`, or `*.ksm_merging_pages` for a process's field (process names change while shrinking). */
function counterKind(difference: CounterDifference): string {
  const dot = difference.counter.lastIndexOf('.');
  return dot < 0 ? difference.counter : `*${difference.counter.slice(dot)}`;
}

/** An error message with its numbers blanked, so that the same failure at another address still matches. */
function errorShape(error: ReplayError): string {
  return `${error.side}: ${error.message.split('\n')[0]!.replace(/\d+/g, 'N')}`;
}

/** Whether `check` is the same finding as `original`: the same side throwing alike, or a difference in a counter that differed. */
export function sameFinding(original: Check, check: Check): boolean {
  if (original.error !== undefined) {
    return check.error !== undefined && errorShape(check.error) === errorShape(original.error);
  }
  if (check.error !== undefined) return false;
  const kinds = new Set(original.differences.map(counterKind));
  return check.differences.some((difference) => kinds.has(counterKind(difference)));
}

/** How a report names the two sides. */
export interface SideLabels {
  readonly sim: string;
  readonly kernel: string;
}

export const DEFAULT_LABELS: SideLabels = { sim: 'sim', kernel: 'kernel' };

/** `step 3: pages_sharing: sim 500, kernel 499`, with the sides named by `labels`. */
export function describeDifference(
  difference: CounterDifference,
  labels: SideLabels = DEFAULT_LABELS,
): string {
  if (labels.sim === 'sim' && labels.kernel === 'kernel')
    return formatDifference(difference, { compared: true });
  const show = (value: CounterDifference['sim']): string => (value === null ? 'absent' : String(value));
  return `step ${difference.step}: ${difference.counter}: ${labels.sim} ${show(difference.sim)}, ${labels.kernel} ${show(difference.kernel)}`;
}

/** One line per difference, or the error of the side that threw. */
export function describeCheck(check: Check, labels: SideLabels = DEFAULT_LABELS): string[] {
  if (check.error !== undefined) return [`${labels[check.error.side]} threw: ${check.error.message}`];
  return check.differences.map((difference) => describeDifference(difference, labels));
}

export async function fuzz(options: FuzzOptions): Promise<FuzzSummary> {
  const now = options.now ?? (() => performance.now());
  const startMs = now();
  let ran = 0;
  for (const seed of options.seeds) {
    const workload = generateWorkload(seed, options.generate);
    let check = await checkWorkload(workload, options.makeBackends);
    const transient = options.transient;
    for (let attempt = 1; transient !== undefined && attempt <= transient.maxRetries; attempt++) {
      if (check.error === undefined || !transient.isTransient(check.error)) break;
      options.onProgress?.({ kind: 'retry', seed, attempt, message: check.error.message });
      await transient.sleep(transient.retryDelayMs);
      check = await checkWorkload(workload, options.makeBackends);
    }
    ran++;
    options.onProgress?.({ kind: 'workload', seed, ran, elapsedMs: now() - startMs });
    if (!isFinding(check)) continue;
    options.onProgress?.({ kind: 'finding', seed, check });
    const finding = await reportFinding(seed, workload, check, options);
    return {
      ran,
      differences: check.differences,
      seed,
      ...(finding.file === undefined ? {} : { file: finding.file }),
      finding,
      elapsedMs: now() - startMs,
    };
  }
  return { ran, differences: [], elapsedMs: now() - startMs };
}

async function reportFinding(
  seed: number,
  workload: Workload,
  check: Check,
  options: FuzzOptions,
): Promise<FuzzFinding> {
  let shrunk = workload;
  let shrunkCheck = check;
  let shrink: ShrinkResult | undefined;
  if (options.shrink !== false) {
    const shrinkOptions = options.shrink ?? {};
    const stillFails = async (candidate: Workload): Promise<boolean> =>
      sameFinding(check, await checkWorkload(candidate, options.makeBackends));
    // A difference first seen after step k needs no step after k: start from that prefix.
    let start = workload;
    if (check.differences.length > 0) {
      const firstStep = Math.min(...check.differences.map((difference) => difference.step));
      const prefix = { ...workload, steps: workload.steps.slice(0, firstStep) };
      if (firstStep < workload.steps.length && (await stillFails(prefix))) start = prefix;
    }
    shrink = await shrinkWorkload(start, stillFails, {
      ...shrinkOptions,
      onAttempt: (progress) => {
        shrinkOptions.onAttempt?.(progress);
        options.onProgress?.({
          kind: 'shrinking',
          attempts: progress.attempts,
          steps: progress.steps,
          processes: progress.processes,
          pages: progress.pages,
        });
      },
    });
    shrunk = shrink.workload;
  }
  // Once more, as saved: on a real kernel an accepted candidate may have been a fluke.
  if (shrunk !== workload) shrunkCheck = await checkWorkload(shrunk, options.makeBackends);
  const reproduced = sameFinding(check, shrunkCheck);
  const file = options.outFile?.(seed);
  const described: Workload = {
    ...shrunk,
    name: `fuzz-seed-${seed}`,
    description: `found by ksmkit fuzz from seed ${seed}${shrink === undefined ? '' : ', shrunk'}`,
  };
  const yaml = workloadToYaml(described, {
    header: findingHeader({
      seed,
      workload,
      shrunk,
      check: reproduced ? shrunkCheck : check,
      reproduced,
      shrink,
      labels: options.labels,
    }),
  });
  // The saved text must replay as the shrunk workload did.
  parseWorkload(yaml, file ?? described.fileName, { baseDir: described.baseDir });
  if (file !== undefined) {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, yaml);
    options.onProgress?.({ kind: 'saved', file });
  }
  return {
    seed,
    workload,
    check,
    shrunk: described,
    shrunkCheck,
    reproduced,
    ...(shrink === undefined ? {} : { shrink }),
    yaml,
    ...(file === undefined ? {} : { file }),
  };
}

function size(workload: Workload): string {
  const processes = workload.processes.length;
  return `${workload.steps.length} steps, ${processes} process${processes === 1 ? '' : 'es'}, ${workloadPages(workload)} pages`;
}

function findingHeader(input: {
  seed: number;
  workload: Workload;
  shrunk: Workload;
  check: Check;
  reproduced: boolean;
  shrink: ShrinkResult | undefined;
  labels: FuzzOptions['labels'];
}): string[] {
  const labels = input.labels ?? DEFAULT_LABELS;
  const what = input.check.error === undefined ? 'differ' : 'disagree: one side threw';
  const lines = [
    `Found by \`ksmkit fuzz --seed ${input.seed} --count 1\`: ${labels.sim} and ${labels.kernel} ${what}.`,
  ];
  if (input.shrink !== undefined) {
    const seconds = (input.shrink.elapsedMs / 1000).toFixed(1);
    lines.push(
      `Shrunk from ${size(input.workload)} to ${size(input.shrunk)} (${input.shrink.attempts} attempts, ${seconds} s${input.shrink.budgetExhausted ? ', budget exhausted' : ''}).`,
    );
  }
  if (!input.reproduced) {
    lines.push('WARNING: run once more, this workload did not give the same finding (a flaky backend?).');
    lines.push("What the seed's workload gave:");
  } else {
    lines.push(input.check.error === undefined ? 'Differences on this workload:' : 'On this workload:');
  }
  for (const line of describeCheck(input.check, labels).slice(0, 20)) lines.push(`  ${line}`);
  if (input.check.differences.length > 20) lines.push(`  ... ${input.check.differences.length - 20} more`);
  return lines;
}
