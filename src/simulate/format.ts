/**
 * Text output of `ksmkit simulate`: the live rows (what an operator watching
 * /sys/kernel/mm/ksm sees), the summary table of a run, the sweep table, the
 * published-figure checks, and the JSON lines.
 */
import Table from 'cli-table3';
import type { Sample } from './engine-run.ts';
import type { Scenario } from './scenario.ts';
import { judgeClaim, MILESTONES, type RunSummary } from './summary.ts';
import type { RunResult } from './sweep.ts';
import { formatBytes, formatClock, formatCount, formatDuration } from './units.ts';

function table(head: string[], color: boolean, align?: ('left' | 'right')[]): Table.Table {
  return new Table({
    head,
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
    style: color ? { head: ['cyan'] } : { head: [], border: [] },
    ...(align === undefined ? {} : { colAligns: align }),
  });
}

export const LIVE_HEAD = [
  'time',
  'full_scans',
  'pages_shared',
  'pages_sharing',
  'pages_unshared',
  'pages_volatile',
  'general_profit',
  'ksmd CPU',
  'in use',
];
const LIVE_WIDTHS = [8, 10, 12, 13, 14, 14, 14, 8, 9];

function pad(cells: readonly string[]): string {
  return cells.map((c, i) => c.padStart(LIVE_WIDTHS[i] ?? 8)).join(' ');
}

export function liveHeader(): string {
  return pad(LIVE_HEAD);
}

/** One row of the live view; `~` marks an extrapolated (steady-state) sample. */
export function liveRow(s: Sample): string {
  return pad([
    `${s.extrapolated ? '~' : ''}${formatClock(s.tMs)}`,
    String(s.full_scans),
    String(s.pages_shared),
    String(s.pages_sharing),
    String(s.pages_unshared),
    String(s.pages_volatile),
    formatBytes(s.general_profit),
    `${s.ksmdCpuPercent.toFixed(1)}%`,
    formatBytes(s.memoryInUseBytes),
  ]);
}

/** A short status line for the progress bar. */
export function liveStatus(s: Sample): string {
  return (
    `scans ${s.full_scans}  shared ${formatCount(s.pages_shared)}  sharing ${formatCount(s.pages_sharing)}  ` +
    `unshared ${formatCount(s.pages_unshared)}  volatile ${formatCount(s.pages_volatile)}  ` +
    `saved ${formatBytes(s.general_profit)}  ksmd ${s.ksmdCpuPercent.toFixed(1)}%`
  );
}

function milestone(ms: number | undefined): string {
  return ms === undefined ? 'not reached' : formatDuration(ms);
}

/** The summary of one run, as a two-column table. */
export function summaryTable(result: RunResult, color: boolean): string {
  const s = result.summary;
  const f = s.final;
  const t = table(['', result.spec.label], color, ['left', 'right']);
  const rows: [string, string][] = [
    ['guests', `${s.guests} (${formatBytes(s.guestMemoryBytes)} without KSM)`],
    ['host memory', `${formatBytes(s.hostMemoryBytes)} (${formatBytes(s.availableBytes)} for guests)`],
    [
      'memory saved (general_profit)',
      `${formatBytes(s.savingBytes)} (${(s.savingFraction * 100).toFixed(1)}%)${s.converged ? '' : ', still growing at the end'}`,
    ],
    ...MILESTONES.map((m): [string, string] => [`time to ${m}% of the saving`, milestone(s.timeToMs[m])]),
    ['pages_shared / pages_sharing', `${f.pages_shared} / ${f.pages_sharing}`],
    ['pages_unshared / pages_volatile', `${f.pages_unshared} / ${f.pages_volatile}`],
    ['ksm_zero_pages', String(f.ksm_zero_pages)],
    ['full_scans', String(f.full_scans)],
    ['memory in use at the end', formatBytes(s.memoryAfterBytes)],
    [
      'peak memory in use',
      `${formatBytes(s.peakMemoryBytes)} at ${formatClock(s.peakAtMs)}${s.fitsThroughout ? '' : `, over the host for ${formatDuration(s.overcommittedMs)}`}`,
    ],
    ['fits the host once merged', s.fitsAfterMerge ? 'yes' : 'no'],
    [
      'ksmd CPU',
      `${formatDuration(s.ksmdCpuMs)}: ${s.ksmdCpuPercent.toFixed(2)}% of one CPU on average, ${s.peakCpuPercent.toFixed(1)}% at peak`,
    ],
    ['ksmd CPU until 90%', s.cpuTo90Ms === undefined ? 'n/a' : formatDuration(s.cpuTo90Ms)],
    [
      'COW breaks (guest writes to merged pages)',
      `${s.cowBreaks} (${formatDuration(s.cowCpuMs)} of guest CPU)`,
    ],
    ['pages_to_scan at the end', String(f.pages_to_scan)],
  ];
  if (s.steadyAtMs !== undefined)
    rows.push(['steady state from', `${formatClock(s.steadyAtMs)} (later samples extrapolated)`]);
  t.push(...rows);
  return t.toString();
}

/** One row per run: the sweep table. */
export function sweepTable(results: readonly RunResult[], color: boolean): string {
  const t = table(
    [
      'run',
      'saved',
      'saved %',
      'to 50%',
      'to 90%',
      'to 99%',
      'ksmd CPU avg',
      'CPU peak',
      'CPU to 90%',
      'full_scans',
      'peak in use',
      'fits once merged',
    ],
    color,
    [
      'left',
      'right',
      'right',
      'right',
      'right',
      'right',
      'right',
      'right',
      'right',
      'right',
      'right',
      'left',
    ],
  );
  for (const r of results) {
    const s = r.summary;
    t.push([
      r.spec.label,
      `${formatBytes(s.savingBytes)}${s.converged ? '' : ' (growing)'}`,
      `${(s.savingFraction * 100).toFixed(1)}%`,
      milestone(s.timeToMs[50]),
      milestone(s.timeToMs[90]),
      milestone(s.timeToMs[99]),
      `${s.ksmdCpuPercent.toFixed(2)}%`,
      `${s.peakCpuPercent.toFixed(1)}%`,
      s.cpuTo90Ms === undefined ? 'n/a' : formatDuration(s.cpuTo90Ms),
      String(s.fullScans),
      `${formatBytes(s.peakMemoryBytes)}${s.fitsThroughout ? '' : ' (over)'}`,
      s.fitsAfterMerge ? 'yes' : 'no',
    ]);
  }
  return t.toString();
}

/**
 * `--tuner`: the tuners side by side on one scenario: the saving at the end
 * and on average over the run, ksmd's CPU, the time the host was short of
 * memory, the COW breaks, and the full-scan time they came to.
 */
export function tunerTable(results: readonly RunResult[], color: boolean): string {
  const t = table(
    [
      'tuner',
      'saved at end',
      'saved, mean',
      'to 90%',
      'ksmd CPU avg',
      'CPU peak',
      'over host',
      'COW breaks',
      'full scan',
      'decisions',
      'warned',
    ],
    color,
    ['left', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right'],
  );
  for (const r of results) {
    const s = r.summary;
    t.push([
      r.spec.label.replace(/^tuner=/, ''),
      formatBytes(s.savingBytes),
      formatBytes(meanSaving(r.run.samples)),
      milestone(s.timeToMs[90]),
      `${s.ksmdCpuPercent.toFixed(2)}%`,
      `${s.peakCpuPercent.toFixed(1)}%`,
      formatDuration(s.overcommittedMs),
      String(s.cowBreaks),
      s.fullScanS === undefined ? 'none' : formatDuration(s.fullScanS * 1000),
      String(r.run.decisions?.length ?? 0),
      String(r.run.decisions?.filter((d) => d.decision.warnings.length > 0).length ?? 0),
    ]);
  }
  return t.toString();
}

/** general_profit averaged over the run's time (what the host had, not only what it ended with). */
export function meanSaving(samples: readonly Sample[]): number {
  let area = 0;
  for (let i = 1; i < samples.length; i++)
    area += samples[i]!.general_profit * (samples[i]!.tMs - samples[i - 1]!.tMs);
  const span = (samples.at(-1)?.tMs ?? 0) - (samples[0]?.tMs ?? 0);
  return span > 0 ? area / span : 0;
}

/** The scenario's published claims against each run, and what cannot be checked. */
export function publishedLines(scenario: Scenario, results: readonly RunResult[]): string[] {
  const p = scenario.published;
  if (p === undefined) return [];
  const lines = [`Published figures (${p.source}):`];
  for (const claim of p.claims) {
    lines.push(`  "${claim.text}"`);
    if (claim.check === undefined) {
      lines.push('      not checkable by the simulation');
      continue;
    }
    for (const r of results) {
      const v = judgeClaim(claim.text, claim.check, r.summary);
      lines.push(`      ${v.verdict.padEnd(7)} ${r.spec.label}: ${v.simulated}`);
    }
  }
  if (p.cannotCheck.length > 0) {
    lines.push('  Where the simulation cannot agree or disagree:');
    for (const c of p.cannotCheck) lines.push(`    - ${c}`);
  }
  return lines;
}

export function describeSummaryLine(label: string, s: RunSummary): string {
  return (
    `${label}: saved ${formatBytes(s.savingBytes)} (${(s.savingFraction * 100).toFixed(1)}%), ` +
    `90% after ${milestone(s.timeToMs[90])}, ksmd ${s.ksmdCpuPercent.toFixed(2)}% CPU on average`
  );
}

/** `--json`: one object per sample. */
export function sampleJson(run: string, sample: Sample): string {
  return JSON.stringify({ type: 'sample', run, ...sample });
}

/** `--json`: the summary of a run, after its samples. */
export function summaryJson(run: string, result: RunResult): string {
  const { final: _final, ...summary } = result.summary;
  return JSON.stringify({
    type: 'summary',
    run,
    settings: result.run.settings,
    ...summary,
    final: result.summary.final,
    engine: result.run.stats,
    wallMs: Math.round(result.wallMs),
  });
}
