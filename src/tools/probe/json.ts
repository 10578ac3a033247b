/**
 * `ksmkit probe --json`: one object for scripts, and `--calibration FILE`:
 * the write-timing model the simulated attack reads.
 *
 * Both are versioned; keys are only ever added. Times carry their unit in
 * their name (`_ns`, `_seconds`); rates are fractions from 0 to 1.
 */

import type { ProbeResult, RoundResult } from './probe.ts';
import { LEAK_FORMULA, PERCENTILES, type Score, summarize, type TimingSummary } from './stats.ts';

export const PROBE_JSON_VERSION = 1;

export interface TimingJson {
  readonly count: number;
  readonly min_ns: number;
  readonly max_ns: number;
  readonly mean_ns: number;
  readonly median_ns: number;
  /** p1, p5, p10, p25, p50, p75, p90, p95, p99. */
  readonly percentiles_ns: Readonly<Record<string, number>>;
}

export interface ClassificationJson {
  readonly true_positives: number;
  readonly false_positives: number;
  readonly true_negatives: number;
  readonly false_negatives: number;
  readonly accuracy: number;
  readonly true_positive_rate: number;
  readonly false_positive_rate: number;
  readonly error_rate: number;
}

/** The schema of `ksmkit probe --json`. */
export interface ProbeJson {
  readonly version: 1;
  readonly tool: 'ksmkit probe';
  readonly host: { readonly kernel: string; readonly cpu: string; readonly cpu_count: number };
  readonly options: {
    readonly pages: number;
    readonly seed: number;
    readonly rounds: number;
    readonly calibration_pairs: number;
    readonly preset: 'default' | 'unthrottled' | 'custom';
    readonly pages_to_scan: number;
    readonly sleep_millisecs: number;
  };
  /** /sys/kernel/mm/ksm as read back during the rounds. */
  readonly settings_in_force: Readonly<Record<string, string>>;
  readonly other_mergeable_processes: ReadonlyArray<{ readonly pid: number; readonly command: string }>;
  readonly method: Readonly<Record<'timer' | 'write' | 'threshold' | 'wait' | 'leak_formula', string>>;
  /**
   * Write times: `merged` are the guesses that were right (the victim holds the
   * page, so ksmd merged it: pages_sharing per round says it did), `not_merged`
   * the wrong ones; the attacker's calibration pages apart. null: no sample.
   */
  readonly write_ns: {
    readonly merged: TimingJson | null;
    readonly not_merged: TimingJson | null;
    readonly calibration_merged: TimingJson | null;
    readonly calibration_private: TimingJson | null;
  };
  readonly classification: ClassificationJson;
  readonly time: {
    /** Attacker's opt-in to its last timed write, all rounds. */
    readonly attack_seconds: number;
    /** Of which waiting for ksmd's passes. */
    readonly wait_seconds: number;
    /** Of which the timed writes. */
    readonly writes_seconds: number;
  };
  readonly leak: {
    readonly guesses: number;
    readonly guesses_per_second: number;
    /** 1 - H2(error_rate). */
    readonly bits_per_guess: number;
    readonly bits_per_second: number;
    /** 95% upper bound of the error rate (Wilson score interval). */
    readonly error_rate_upper_95: number;
    /** bits/s at that bound: what the run shows at least. */
    readonly bits_per_second_lower_95: number;
  };
  readonly rounds: ReadonlyArray<{
    readonly round: number;
    readonly seed: number;
    readonly threshold_ns: number;
    readonly classification: ClassificationJson;
    readonly attack_seconds: number;
    readonly wait_seconds: number;
    readonly writes_seconds: number;
    readonly full_scans: number;
    readonly pages_sharing: number;
  }>;
  /** ok: every saved setting reads back as saved; differing: `name: saved -> now` for any that does not. */
  readonly restored: {
    readonly ok: boolean;
    readonly run: string;
    readonly differing: readonly string[];
    readonly error?: string;
  };
}

export const METHOD = {
  timer: 'clock_gettime(CLOCK_MONOTONIC) (vDSO) around each write, a full fence after the store',
  write:
    'one byte per page, every page of the attacker in address order, each read (untimed) just before its timed write ' +
    'so TLB and cache are alike for both kinds; the read takes no fault, merged or not, and breaks no sharing',
  threshold:
    "best split of the attacker's own calibration writes (K pairs it made identical, K unique pages): of the cuts at " +
    'the geometric mean of two neighbouring values, the one with the lowest balanced error, ties to the one closest ' +
    'to the geometric mean of the two medians; never the truth',
  wait:
    'from the attacker: once its own /proc/self/ksm_merging_pages shows its 2K paired pages merged, wait for ' +
    '/sys/kernel/mm/ksm/full_scans (world-readable) to move on: the merging pass is then over',
  leak_formula: LEAK_FORMULA,
} as const;

function timing(summary: TimingSummary | undefined): TimingJson | null {
  if (summary === undefined) return null;
  return {
    count: summary.count,
    min_ns: summary.minNs,
    max_ns: summary.maxNs,
    mean_ns: summary.meanNs,
    median_ns: summary.medianNs,
    percentiles_ns: { ...summary.percentilesNs },
  };
}

function classification(s: Score): ClassificationJson {
  return {
    true_positives: s.truePositives,
    false_positives: s.falsePositives,
    true_negatives: s.trueNegatives,
    false_negatives: s.falseNegatives,
    accuracy: s.accuracy,
    true_positive_rate: s.truePositiveRate,
    false_positive_rate: s.falsePositiveRate,
    error_rate: s.errorRate,
  };
}

/** Write times of the guesses by truth, and of the calibration pages, over all rounds. */
export function samplesOf(rounds: readonly RoundResult[]): {
  merged: number[];
  notMerged: number[];
  calibrationMerged: number[];
  calibrationPrivate: number[];
} {
  const out = {
    merged: [] as number[],
    notMerged: [] as number[],
    calibrationMerged: [] as number[],
    calibrationPrivate: [] as number[],
  };
  for (const r of rounds) {
    r.guessNs.forEach((ns, g) => {
      (r.truth[g] ? out.merged : out.notMerged).push(ns);
    });
    out.calibrationMerged.push(...r.calibrationMergedNs);
    out.calibrationPrivate.push(...r.calibrationPrivateNs);
  }
  return out;
}

const seconds = (ns: number): number => ns / 1e9;

export function toJson(result: ProbeResult): ProbeJson {
  const s = samplesOf(result.rounds);
  const sum = (f: (r: RoundResult) => number): number => result.rounds.reduce((a, r) => a + f(r), 0);
  const o = result.options;
  return {
    version: PROBE_JSON_VERSION,
    tool: 'ksmkit probe',
    host: { kernel: result.host.kernel, cpu: result.host.cpu, cpu_count: result.host.cpuCount },
    options: {
      pages: o.pages,
      seed: o.seed,
      rounds: o.rounds,
      calibration_pairs: o.calibrationPairs,
      preset: o.preset,
      pages_to_scan: o.pagesToScan,
      sleep_millisecs: o.sleepMillisecs,
    },
    settings_in_force: result.settingsInForce,
    other_mergeable_processes: result.otherMergeable.map((p) => ({ pid: p.pid, command: p.command })),
    method: METHOD,
    write_ns: {
      merged: timing(summarize(s.merged)),
      not_merged: timing(summarize(s.notMerged)),
      calibration_merged: timing(summarize(s.calibrationMerged)),
      calibration_private: timing(summarize(s.calibrationPrivate)),
    },
    classification: classification(result.score),
    time: {
      attack_seconds: seconds(sum((r) => r.attackNs)),
      wait_seconds: seconds(sum((r) => r.waitNs)),
      writes_seconds: seconds(sum((r) => r.writesNs)),
    },
    leak: {
      guesses: result.leak.guesses,
      guesses_per_second: result.leak.guessesPerSecond,
      bits_per_guess: result.leak.bitsPerGuess,
      bits_per_second: result.leak.bitsPerSecond,
      error_rate_upper_95: result.leak.errorRateUpper95,
      bits_per_second_lower_95: result.leak.bitsPerSecondLower95,
    },
    rounds: result.rounds.map((r) => ({
      round: r.round,
      seed: r.seed,
      threshold_ns: r.thresholdNs,
      classification: classification(r.score),
      attack_seconds: seconds(r.attackNs),
      wait_seconds: seconds(r.waitNs),
      writes_seconds: seconds(r.writesNs),
      full_scans: r.fullScans,
      pages_sharing: r.pagesSharing,
    })),
    restored: result.restored,
  };
}

/**
 * A write-timing model for the simulated attack: per access fault kind (the
 * names of the engine's `AccessFault`), the measured distribution of one
 * one-byte write. `none`: the page is present, private and writable;
 * `cow-ksm`: the page is a KSM page (write-protect fault and copy).
 */
export interface WriteTimingModel {
  readonly version: 1;
  readonly source: 'ksmkit probe';
  readonly measured_on: string;
  readonly date: string;
  readonly ksmd: {
    readonly preset: string;
    readonly pages_to_scan: number;
    readonly sleep_millisecs: number;
  };
  readonly percentiles: readonly number[];
  readonly faults: { readonly none: TimingJson; readonly 'cow-ksm': TimingJson };
  /** What the attacker reached with this distribution on this machine. */
  readonly attack: {
    readonly guesses: number;
    readonly threshold_ns: number;
    readonly accuracy: number;
    readonly attack_seconds: number;
    readonly full_scans: number;
    readonly bits_per_second: number;
  };
}

/** The model from a run: guesses by truth and calibration pages together, per kind. Undefined if a kind is empty. */
export function toWriteTimingModel(result: ProbeResult, date: string): WriteTimingModel | undefined {
  const s = samplesOf(result.rounds);
  const none = timing(summarize([...s.notMerged, ...s.calibrationPrivate]));
  const cow = timing(summarize([...s.merged, ...s.calibrationMerged]));
  if (none === null || cow === null) return undefined;
  const thresholds = result.rounds.map((r) => r.thresholdNs).sort((a, b) => a - b);
  return {
    version: 1,
    source: 'ksmkit probe',
    measured_on: `Linux ${result.host.kernel}, ${result.host.cpu} ×${result.host.cpuCount}`,
    date,
    ksmd: {
      preset: result.options.preset,
      pages_to_scan: result.options.pagesToScan,
      sleep_millisecs: result.options.sleepMillisecs,
    },
    percentiles: [...PERCENTILES],
    faults: { none, 'cow-ksm': cow },
    attack: {
      guesses: result.leak.guesses,
      threshold_ns: thresholds[thresholds.length >> 1]!,
      accuracy: result.score.accuracy,
      attack_seconds: result.leak.attackSeconds,
      full_scans: result.rounds.reduce((a, r) => a + r.fullScans, 0),
      bits_per_second: result.leak.bitsPerSecond,
    },
  };
}
