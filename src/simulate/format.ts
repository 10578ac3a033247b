/**
 * Text output of `ksmkit simulate`: the live rows (what an operator watching
 * /sys/kernel/mm/ksm sees), the summary table of a run, the sweep table, the
 * published-figure checks, and the JSON lines.
 */
import { type Align, textTable } from '../report/table.ts';
import type { Sample } from './engine-run.ts';
import type { Scenario } from './scenario.ts';
import { judgeClaim, MILESTONES, type RunSummary } from './summary.ts';
import type { RunResult } from './sweep.ts';
import { formatBytes, formatClock, formatCount, formatDuration } from './units.ts';
import { milestoneText, savingText } from './verdict.ts';

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
/** The same columns under short names, for terminals narrower than the full rows (78 columns). */
const COMPACT_HEAD = [
  'time',
  'scans',
  'shared',
  'sharing',
  'unshared',
  'volatile',
  'saved',
  'ksmd',
  'in use',
];
const COMPACT_WIDTHS = [8, 5, 8, 8, 8, 8, 10, 6, 9];

function widthOf(widths: readonly number[]): number {
  return widths.reduce((a, b) => a + b, 0) + widths.length - 1;
}

function compact(width: number | undefined): boolean {
  return width !== undefined && width < widthOf(LIVE_WIDTHS);
}

function pad(cells: readonly string[], width: number | undefined): string {
  const widths = compact(width) ? COMPACT_WIDTHS : LIVE_WIDTHS;
  return cells.map((c, i) => c.padStart(widths[i] ?? 8)).join(' ');
}

/** The live rows' header; `width` (the terminal's) picks the short names when the full ones do not fit. */
export function liveHeader(width?: number): string {
  return pad(compact(width) ? COMPACT_HEAD : LIVE_HEAD, width);
}

/** One row of the live view; `~` marks an extrapolated (steady-state) sample. */
export function liveRow(s: Sample, width?: number): string {
  return pad(
    [
      `${s.extrapolated ? '~' : ''}${formatClock(s.tMs)}`,
      String(s.full_scans),
      String(s.pages_shared),
      String(s.pages_sharing),
      String(s.pages_unshared),
      String(s.pages_volatile),
      formatBytes(s.general_profit),
      `${s.ksmdCpuPercent.toFixed(1)}%`,
      formatBytes(s.memoryInUseBytes),
    ],
    width,
  );
}

/** A short status line for the progress bar. */
export function liveStatus(s: Sample): string {
  return (
    `scans ${s.full_scans}  shared ${formatCount(s.pages_shared)}  sharing ${formatCount(s.pages_sharing)}  ` +
    `unshared ${formatCount(s.pages_unshared)}  volatile ${formatCount(s.pages_volatile)}  ` +
    `saved ${formatBytes(s.general_profit)}  ksmd ${s.ksmdCpuPercent.toFixed(1)}%`
  );
}

/** The summary of one run, as a two-column table. */
export function summaryTable(result: RunResult, color: boolean, width?: number): string {
  const s = result.summary;
  const f = s.final;
  const rows: [string, string][] = [
    ['guests', `${s.guests} (${formatBytes(s.guestMemoryBytes)} without KSM)`],
    ['host memory', `${formatBytes(s.hostMemoryBytes)} (${formatBytes(s.availableBytes)} for guests)`],
    ['memory saved (general_profit)', savingText(s)],
    ...MILESTONES.map((m): [string, string] => [
      `time to ${m}% of the ${s.milestoneBasis === 'peak' ? 'peak ' : ''}saving`,
      milestoneText(s, m),
    ]),
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
  return textTable({ head: ['', result.spec.label], color, align: ['left', 'right'], width }, rows);
}

/** One row per run: the sweep table. */
export function sweepTable(results: readonly RunResult[], color: boolean, width?: number): string {
  const head = [
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
  ];
  const align: Align[] = [
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
  ];
  const rows = results.map((r) => {
    const s = r.summary;
    return [
      r.spec.label,
      `${formatBytes(s.savingBytes)}${s.trend === 'settled' ? '' : ` (${s.trend})`}`,
      `${(s.savingFraction * 100).toFixed(1)}%`,
      milestoneText(s, 50),
      milestoneText(s, 90),
      milestoneText(s, 99),
      `${s.ksmdCpuPercent.toFixed(2)}%`,
      `${s.peakCpuPercent.toFixed(1)}%`,
      s.cpuTo90Ms === undefined ? 'n/a' : formatDuration(s.cpuTo90Ms),
      String(s.fullScans),
      `${formatBytes(s.peakMemoryBytes)}${s.fitsThroughout ? '' : ' (over)'}`,
      s.fitsAfterMerge ? 'yes' : 'no',
    ];
  });
  return textTable({ head, color, align, width }, rows);
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
    `90% after ${milestoneText(s, 90)}, ksmd ${s.ksmdCpuPercent.toFixed(2)}% CPU on average`
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
