/**
 * What a run comes to: the final counters, the saving and when it was
 * reached (50%, 90%, 99% of the final general_profit, or of its peak when it
 * fell), whether it settled, grew or fell, the memory the guests
 * cost the host against what it has, and ksmd's CPU time. The same function
 * summarises an engine run and a run on the real kernel, so both are read
 * the same way.
 */
import type { CostFigures } from './cost.ts';
import type { Sample } from './engine-run.ts';
import type { ClaimCheck, Scenario } from './scenario.ts';
import { formatBytes, formatDuration } from './units.ts';

export const MILESTONES = [50, 90, 99] as const;
export type SavingTrend = 'settled' | 'growing' | 'falling';
/** A saving this far below its peak at the end is falling, not settled. */
const FALLING_SHARE = 0.05;
export type Milestone = (typeof MILESTONES)[number];

export interface RunSummary {
  readonly durationMs: number;
  readonly guests: number;
  /** What the guests use without KSM. */
  readonly guestMemoryBytes: number;
  readonly hostMemoryBytes: number;
  /** Host memory less the host's own reserve. */
  readonly availableBytes: number;
  readonly final: Sample;
  /** general_profit at the end (bytes). */
  readonly savingBytes: number;
  /** The saving as a share of the guests' memory. */
  readonly savingFraction: number;
  /**
   * Virtual time at which the saving first reached each share of `milestoneBasis`
   * (undefined: never, or no saving). When the run ended still growing, these
   * are not meaningful (`trend` says so).
   */
  readonly timeToMs: Readonly<Record<Milestone, number | undefined>>;
  /** What the milestones are shares of: the final saving, or its peak when the saving fell from it. */
  readonly milestoneBasis: 'final' | 'peak';
  /** The largest saving of the run, and when. */
  readonly peakSavingBytes: number;
  readonly peakSavingAtMs: number;
  /**
   * How the saving ended: settled (steady state, or within 1% over the last
   * tenth of the run and 99% reached before it), growing (still climbing at
   * the end: the run was too short), falling (more than 5% below its peak:
   * the guests' writes break merged pages faster than ksmd merges them).
   */
  readonly trend: SavingTrend;
  readonly memoryAfterBytes: number;
  readonly peakMemoryBytes: number;
  readonly peakAtMs: number;
  /** The guests fit once merged (memory in use at the end within what the host has for them). */
  readonly fitsAfterMerge: boolean;
  /** They fit at every sample (never more memory in use than the host has). */
  readonly fitsThroughout: boolean;
  /** How long the guests needed more memory than the host has (sample resolution). */
  readonly overcommittedMs: number;
  readonly ksmdCpuMs: number;
  /** Average ksmd CPU over the run, % of one CPU. */
  readonly ksmdCpuPercent: number;
  readonly peakCpuPercent: number;
  /** ksmd CPU spent until the saving reached 90%. */
  readonly cpuTo90Ms: number | undefined;
  readonly cowBreaks: number;
  /** The guests' CPU time in COW faults on merged pages. */
  readonly cowCpuMs: number;
  /** pages_volatile as a share of all rmap items at the end. */
  readonly volatileShare: number;
  readonly fullScans: number;
  /** From when on the samples are extrapolated (steady state), if they are. */
  readonly steadyAtMs: number | undefined;
  /** `trend` is not 'growing': the times to 50/90/99% mean something. */
  readonly converged: boolean;
}

export function summarize(
  scenario: Scenario,
  samples: readonly Sample[],
  figures: CostFigures,
  steadyAtMs: number | undefined,
): RunSummary {
  const final = samples.at(-1);
  if (final === undefined) throw new Error('summarize: a run without samples');
  const saving = final.general_profit;
  let peakSaving = samples[0]!;
  for (const s of samples) if (s.general_profit > peakSaving.general_profit) peakSaving = s;
  const falling = peakSaving.general_profit > 0 && saving < peakSaving.general_profit * (1 - FALLING_SHARE);
  const basis = falling ? peakSaving.general_profit : saving;
  const timeToMs = {} as Record<Milestone, number | undefined>;
  for (const m of MILESTONES) timeToMs[m] = basis > 0 ? timeToReach(samples, (basis * m) / 100) : undefined;
  const t99 = timeToMs[99];
  const trend: SavingTrend = falling
    ? 'falling'
    : steadyAtMs !== undefined ||
        (settled(samples) && (t99 === undefined || t99 <= final.tMs * (1 - SETTLED_TAIL)))
      ? 'settled'
      : 'growing';
  const available = scenario.host.memoryBytes - scenario.host.reservedBytes;
  let peak = final;
  let overcommittedMs = 0;
  let peakCpu = 0;
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]!;
    if (s.memoryInUseBytes > peak.memoryInUseBytes) peak = s;
    if (i > 0) peakCpu = Math.max(peakCpu, s.ksmdCpuPercent);
    if (i > 0 && s.memoryInUseBytes > available) overcommittedMs += s.tMs - samples[i - 1]!.tMs;
  }
  const guests = scenario.groups.reduce((sum, g) => sum + g.count, 0);
  const t90 = timeToMs[90];
  return {
    durationMs: final.tMs,
    guests,
    guestMemoryBytes: final.guestMemoryBytes,
    hostMemoryBytes: scenario.host.memoryBytes,
    availableBytes: available,
    final,
    savingBytes: saving,
    savingFraction: final.guestMemoryBytes > 0 ? saving / final.guestMemoryBytes : 0,
    timeToMs,
    milestoneBasis: falling ? 'peak' : 'final',
    peakSavingBytes: peakSaving.general_profit,
    peakSavingAtMs: peakSaving.tMs,
    trend,
    memoryAfterBytes: final.memoryInUseBytes,
    peakMemoryBytes: peak.memoryInUseBytes,
    peakAtMs: peak.tMs,
    fitsAfterMerge: final.memoryInUseBytes <= available,
    fitsThroughout: peak.memoryInUseBytes <= available,
    overcommittedMs,
    ksmdCpuMs: final.ksmdCpuMs,
    ksmdCpuPercent: final.tMs > 0 ? (final.ksmdCpuMs / final.tMs) * 100 : 0,
    peakCpuPercent: peakCpu,
    cpuTo90Ms: t90 === undefined ? undefined : cpuAt(samples, t90),
    cowBreaks: final.cowBreaks,
    cowCpuMs: (final.cowBreaks * figures.cowBreakNs) / 1e6,
    volatileShare: final.rmap_items > 0 ? final.pages_volatile / final.rmap_items : 0,
    fullScans: final.full_scans,
    steadyAtMs,
    converged: trend !== 'growing',
  };
}

/** The last share of the run over which a settled saving moves by at most 1%. */
const SETTLED_TAIL = 0.1;

function settled(samples: readonly Sample[]): boolean {
  const final = samples.at(-1)!;
  const cutoff = final.tMs * (1 - SETTLED_TAIL);
  let before = samples[0]!;
  for (const s of samples) if (s.tMs <= cutoff) before = s;
  const tolerance = Math.max(Math.abs(final.general_profit) * 0.01, 4096 * 16);
  return Math.abs(final.general_profit - before.general_profit) <= tolerance;
}

/** First time general_profit reaches `target`, interpolated linearly between samples. */
export function timeToReach(samples: readonly Sample[], target: number): number | undefined {
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]!;
    if (s.general_profit < target) continue;
    if (i === 0) return s.tMs;
    const p = samples[i - 1]!;
    const span = s.general_profit - p.general_profit;
    return span > 0 ? p.tMs + ((target - p.general_profit) / span) * (s.tMs - p.tMs) : s.tMs;
  }
  return undefined;
}

function cpuAt(samples: readonly Sample[], tMs: number): number {
  for (let i = 1; i < samples.length; i++) {
    const s = samples[i]!;
    if (s.tMs < tMs) continue;
    const p = samples[i - 1]!;
    return p.ksmdCpuMs + ((tMs - p.tMs) / (s.tMs - p.tMs)) * (s.ksmdCpuMs - p.ksmdCpuMs);
  }
  return samples.at(-1)!.ksmdCpuMs;
}

// ------------------------------------------------------------------ published figures

export interface ClaimVerdict {
  readonly text: string;
  /** 'agrees' | 'differs' when checked; 'not checked' for claims stated for the record. */
  readonly verdict: 'agrees' | 'differs' | 'not checked';
  /** What the simulation shows, in words. */
  readonly simulated: string;
}

export function judgeClaim(text: string, check: ClaimCheck | undefined, summary: RunSummary): ClaimVerdict {
  if (check === undefined) return { text, verdict: 'not checked', simulated: '' };
  const v = (ok: boolean, simulated: string): ClaimVerdict => ({
    text,
    verdict: ok ? 'agrees' : 'differs',
    simulated,
  });
  switch (check.kind) {
    case 'fits_host': {
      const peak = summary.fitsThroughout
        ? 'never more than the host has'
        : `peak ${formatBytes(summary.peakMemoryBytes)} at ${formatDuration(summary.peakAtMs)}, over for ${formatDuration(summary.overcommittedMs)}`;
      return v(
        summary.fitsAfterMerge,
        `${formatBytes(summary.memoryAfterBytes)} in use once merged, of ${formatBytes(summary.availableBytes)} available (${peak})`,
      );
    }
    case 'saving': {
      const off = summary.savingBytes / check.bytes - 1;
      return v(
        Math.abs(off) <= check.withinFraction,
        `${formatBytes(summary.savingBytes)} saved (${off >= 0 ? '+' : ''}${(off * 100).toFixed(0)}% from ${formatBytes(check.bytes)})`,
      );
    }
    case 'saving_at_least':
      return v(
        summary.savingBytes >= check.bytes,
        `${formatBytes(summary.savingBytes)} saved (at least ${formatBytes(check.bytes)} needed)`,
      );
    case 'volatile_share':
      return v(
        summary.volatileShare >= check.atLeast,
        `${(summary.volatileShare * 100).toFixed(0)}% of rmap items volatile at the end`,
      );
    case 'converge': {
      const t = summary.timeToMs[check.percent];
      if (summary.trend === 'growing')
        return v(false, `the saving was still growing after ${formatDuration(summary.durationMs)}`);
      if (summary.trend === 'falling')
        return v(
          false,
          `the saving peaked at ${formatBytes(summary.peakSavingBytes)} after ${formatDuration(summary.peakSavingAtMs)} and fell to ${formatBytes(summary.savingBytes)}`,
        );
      return v(
        t !== undefined && t >= check.fromMs && t <= check.toMs,
        t === undefined
          ? `${check.percent}% of the saving not reached in ${formatDuration(summary.durationMs)}`
          : `${check.percent}% of the saving after ${formatDuration(t)}`,
      );
    }
  }
}
