/**
 * What a report decides: turn KSM on or not, with which settings, and why.
 * The verdict reads the runs' summaries only, so the text output, the HTML
 * report and the JSON say the same thing.
 *
 * Order of concerns, as an operator weighs them: first whether the guests
 * were over the host's memory for minutes (the simulation neither swaps nor
 * kills, so that would be swapping or an OOM kill on a real host), then
 * whether the saving is worth ksmd's CPU, then whether the figures can be
 * trusted (a saving still growing at the end, or falling from its peak).
 */
import { MILESTONES, type Milestone, type RunSummary } from './summary.ts';
import type { RunResult } from './sweep.ts';
import { formatBytes, formatDuration } from './units.ts';

/** Over the host's memory for this long is "for minutes": worth the verdict's first line. */
export const OVER_MEMORY_MS = 60_000;
/** Below this share of the guests' memory, a saving is not worth ksmd when the guests fit anyway. */
export const WORTHWHILE_SAVING = 0.05;

export interface Verdict {
  /** One line: turn KSM on or not, with which settings, and why. */
  readonly headline: string;
  /** What the operator must know next, most important first. */
  readonly details: readonly string[];
  /** The run whose settings the verdict recommends (or the least bad one). */
  readonly chosen: RunResult;
}

export interface VerdictInput {
  /** The runs asked for; the first is the scenario's own settings unless swept. */
  readonly results: readonly RunResult[];
  /** Runs added to find a pages_to_scan that keeps the guests within the host (may be empty). */
  readonly rescue: readonly RunResult[];
  /** The command that would run the pages_to_scan sweep, when it was not run. */
  readonly sweepCommand?: string;
}

export function isOverForMinutes(s: RunSummary): boolean {
  return s.overcommittedMs >= OVER_MEMORY_MS;
}

/** How long a run was over the host's memory, in words; `short` leaves "the host's memory" to the column's name. */
export function overText(s: RunSummary, short = false): string {
  const what = short ? '' : " the host's memory";
  if (s.fitsThroughout) return `never over${what}`;
  if (s.overcommittedMs === 0) return `over${what} only at the first sample`;
  return `over${what} for ${formatDuration(s.overcommittedMs)}`;
}

function cpu(s: RunSummary): string {
  return `${s.ksmdCpuPercent.toFixed(2)}% of one CPU`;
}

function saved(s: RunSummary): string {
  return `${formatBytes(s.savingBytes)} (${(s.savingFraction * 100).toFixed(1)}% of the guests' memory)`;
}

/** A time to 50/90/99% of the saving, as tables print it. */
export function milestoneText(s: RunSummary, m: Milestone): string {
  const t = s.timeToMs[m];
  if (s.trend === 'growing') return 'not meaningful (still growing)';
  if (t === undefined) return 'not reached';
  return s.trend === 'falling' ? `${formatDuration(t)} (of the peak)` : formatDuration(t);
}

/** The saving with how it ended: "605.6 MiB, falling from 926.2 MiB at 10.0 min". */
export function savingText(s: RunSummary): string {
  const base = `${formatBytes(s.savingBytes)} (${(s.savingFraction * 100).toFixed(1)}%)`;
  if (s.trend === 'falling')
    return `${base}, falling from its peak of ${formatBytes(s.peakSavingBytes)} at ${formatDuration(s.peakSavingAtMs)}`;
  if (s.trend === 'growing') return `${base}, still growing at the end`;
  return base;
}

/**
 * Which run to recommend: one not over the host's memory for minutes if any
 * (a few seconds at boot, before the first pass, no setting avoids), then the
 * least ksmd CPU, then the largest saving.
 */
function choose(runs: readonly RunResult[]): RunResult {
  const within = runs.filter((r) => !isOverForMinutes(r.summary));
  if (within.length === 0)
    return [...runs].sort((a, b) => a.summary.overcommittedMs - b.summary.overcommittedMs)[0]!;
  return [...within].sort(
    (a, b) =>
      a.summary.ksmdCpuPercent - b.summary.ksmdCpuPercent || b.summary.savingBytes - a.summary.savingBytes,
  )[0]!;
}

export function decide(input: VerdictInput): Verdict {
  const base = input.results[0];
  if (base === undefined) throw new Error('decide: no run');
  const chosen = choose([...input.results, ...input.rescue]);
  const s = chosen.summary;
  const b = base.summary;
  const details: string[] = [];
  const overRuns = [...input.results, ...input.rescue].filter((r) => isOverForMinutes(r.summary));
  if (isOverForMinutes(b) || overRuns.length > 0) {
    const r = isOverForMinutes(b) ? base : overRuns[0]!;
    details.push(
      `Over the host's memory: at ${r.spec.label} the guests need up to ${formatBytes(r.summary.peakMemoryBytes)} ` +
        `(at ${formatDuration(r.summary.peakAtMs)}) where the host has ${formatBytes(r.summary.availableBytes)} for them, ` +
        `for ${formatDuration(r.summary.overcommittedMs)} of the run. Swap and OOM are not modelled: the simulation lets ` +
        `memory in use exceed the host; a real host would swap or its OOM killer would end a guest.`,
    );
    if (input.rescue.length > 0) {
      const steps = [base, ...input.rescue].map(
        (x) => `${x.spec.label}: ${overText(x.summary)}, ksmd ${cpu(x.summary)}`,
      );
      details.push(`pages_to_scan sweep (run for this verdict): ${steps.join('; ')}.`);
    } else if (input.sweepCommand !== undefined) {
      details.push(
        `A pages_to_scan sweep shows which setting avoids it and what it costs: ${input.sweepCommand}`,
      );
    }
  }
  if (s.trend === 'falling')
    details.push(
      `The saving falls: ${formatBytes(s.peakSavingBytes)} at its peak (${formatDuration(s.peakSavingAtMs)}), ` +
        `${formatBytes(s.savingBytes)} at the end, as the guests' writes break merged pages (${s.cowBreaks.toLocaleString('en-US')} COW breaks). ` +
        `The times to ${MILESTONES.join('/')}% are of the peak.`,
    );
  if (s.trend === 'growing')
    details.push(
      `The saving was still growing when the run ended (${formatDuration(s.durationMs)}): it did not converge, so the ` +
        `times to ${MILESTONES.join('/')}% are not meaningful. Run longer: --duration ${Math.ceil((s.durationMs * 2) / 60_000)}min.`,
    );

  const guestsFit = s.guestMemoryBytes <= s.availableBytes;
  let headline: string;
  if (isOverForMinutes(s) && input.rescue.length === 0 && input.results.length === 1) {
    headline =
      `Verdict: turn KSM on, but with more than ${chosen.spec.label}: at it the guests are over the host's memory for ` +
      `${formatDuration(s.overcommittedMs)} (peak ${formatBytes(s.peakMemoryBytes)}, ${formatBytes(s.availableBytes)} available). ` +
      `It saves ${saved(s)}; ${input.sweepCommand === undefined ? 'a pages_to_scan sweep' : input.sweepCommand} shows which pages_to_scan avoids it and at what CPU.`;
  } else if (isOverForMinutes(s)) {
    headline =
      `Verdict: KSM alone is not enough here. Even at ${chosen.spec.label} the guests are over the host's memory for ` +
      `${formatDuration(s.overcommittedMs)} (peak ${formatBytes(s.peakMemoryBytes)}, ${formatBytes(s.availableBytes)} available); ` +
      `turn it on to save ${saved(s)}, and run fewer guests or give the host more memory.`;
  } else if (guestsFit && s.savingFraction < WORTHWHILE_SAVING) {
    headline =
      `Verdict: leave KSM off. It saves only ${saved(s)} for ${cpu(s)} on average and ` +
      `${s.cowBreaks.toLocaleString('en-US')} COW breaks in the guests, and the guests fit the host without it.`;
  } else {
    let fit = '';
    if (chosen !== base && isOverForMinutes(b))
      fit =
        ` It keeps the guests within the host's memory${s.fitsThroughout ? '' : ` but for ${formatDuration(s.overcommittedMs)}`} ` +
        `(at ${base.spec.label} they are over it for ${formatDuration(b.overcommittedMs)}).`;
    else if (!guestsFit)
      fit = ` The guests need ${formatBytes(s.guestMemoryBytes)} without it; the host has ${formatBytes(s.availableBytes)} for them.`;
    const how =
      s.trend === 'falling'
        ? ` at the end, down from a peak of ${formatBytes(s.peakSavingBytes)} as the guests' writes break merged pages`
        : s.trend === 'growing'
          ? ', still growing when the run ended'
          : s.timeToMs[90] !== undefined
            ? `, 90% of it after ${formatDuration(s.timeToMs[90])}`
            : '';
    headline = `Verdict: turn KSM on with ${chosen.spec.label}.${fit} It saves ${saved(s)}${how}, for ${cpu(s)} on average.`;
  }
  return { headline, details, chosen };
}
