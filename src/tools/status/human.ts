/** `ksmkit status` for people: the files with their meaning, the saving, the process table. */
import pc from 'picocolors';
import {
  fileNumber,
  type KsmFile,
  type ProcessKsm,
  type Rates,
  type StatusSnapshot,
  savingOf,
} from './snapshot.ts';

export const NOT_IN_KERNEL = 'not in this kernel';

export interface HumanOptions {
  readonly color: boolean;
  /** Set by --watch from the second reading on. */
  readonly rates?: Rates;
  /** Widest a command may be in the process table. */
  readonly commandWidth?: number;
  /** The terminal's columns: descriptions are cut and commands narrowed to fit. */
  readonly width?: number | undefined;
}

const UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1536 → "1.5 KiB", -6400 → "-6.3 KiB", 512 → "512 B". */
export function formatBytes(bytes: number): string {
  const sign = bytes < 0 ? '-' : '';
  let n = Math.abs(bytes);
  if (n < 1024) return `${sign}${n} B`;
  let unit = -1;
  while (n >= 1024 && unit < UNITS.length - 1) {
    n /= 1024;
    unit++;
  }
  return `${sign}${n.toFixed(1)} ${UNITS[unit]}`;
}

/** A rate per second, short: 12345.6 → "12346", 0.25 → "0.25". */
export function formatRate(perSecond: number | null): string {
  if (perSecond === null) return NOT_IN_KERNEL;
  const r = Math.abs(perSecond) >= 100 ? perSecond.toFixed(0) : perSecond.toFixed(2).replace(/\.?0+$/, '');
  return r === '-0' ? '0' : r;
}

const PAGE_COUNTERS = new Set([
  'pages_shared',
  'pages_sharing',
  'pages_unshared',
  'pages_volatile',
  'ksm_zero_pages',
]);

function shownValue(f: KsmFile): string {
  if (f.state === 'missing') return NOT_IN_KERNEL;
  if (f.state === 'unreadable') return `unreadable (${f.error ?? 'error'})`;
  if (f.name === 'general_profit' && typeof f.value === 'number') return `${f.value} B`;
  return String(f.value);
}

function runLine(s: StatusSnapshot, c: ReturnType<typeof pc.createColors>): string {
  const run = fileNumber(s, 'run');
  const where = `Linux ${s.kernel}`;
  if (!s.available) return `KSM on ${where}: ${c.red(`not in this kernel (${s.unavailableReason})`)}`;
  switch (run) {
    case 0:
      return `KSM on ${where}: ${c.yellow('stopped')} (run = 0): ksmd merges nothing`;
    case 1:
      return `KSM on ${where}: ${c.green('running')} (run = 1): ksmd is merging`;
    case 2:
      return `KSM on ${where}: ${c.yellow('unmerging')} (run = 2): every KSM page was split again`;
    default:
      return `KSM on ${where}: run = ${run ?? NOT_IN_KERNEL}`;
  }
}

/** Columns padded to their widest cell; `right` columns are right-aligned. */
export function alignColumns(
  rows: readonly (readonly string[])[],
  right: ReadonlySet<number>,
  maxWidth?: number,
): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length);
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => {
          const last = i === row.length - 1;
          if (right.has(i)) return cell.padStart(widths[i]!);
          return last ? cell : cell.padEnd(widths[i]!);
        })
        .join('  ')
        .trimEnd(),
    )
    .map((line) =>
      maxWidth === undefined || line.length <= maxWidth ? line : `${line.slice(0, maxWidth - 1)}…`,
    );
}

/** At most `width` characters, control characters as `?`. */
export function truncate(text: string, width: number): string {
  // Control characters (a comm may hold any byte) would break the table.
  const clean = text.replace(/[\p{Cc}]/gu, '?');
  return clean.length <= width ? clean : `${clean.slice(0, width - 1)}…`;
}

function cell(v: number | boolean | null, format: (n: number) => string = String): string {
  if (v === null) return '—';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return format(v);
}

/** Settings then counters, aligned as one table so the two sections line up. */
function fileSections(s: StatusSnapshot, c: ReturnType<typeof pc.createColors>, width?: number): string[] {
  const rows = s.files.map((f) => {
    let value = shownValue(f);
    if (PAGE_COUNTERS.has(f.name) && typeof f.value === 'number' && f.value > 0)
      value = `${f.value} (${formatBytes(f.value * 4096)})`;
    return [f.name, value, f.known ? f.meaning : '(a file ksmkit does not describe)'];
  });
  const aligned = alignColumns(rows, new Set([1]), width === undefined ? undefined : width - 2);
  const section = (title: string, writable: boolean): string[] => {
    const lines = s.files.flatMap((f, i) =>
      f.writable === writable ? [`  ${f.state === 'missing' ? c.dim(aligned[i]!) : aligned[i]!}`] : [],
    );
    return lines.length === 0 ? [] : [c.bold(title), ...lines];
  };
  return [...section(`Settings (${s.ksmDir})`, true), ...section('Counters', false)];
}

function processSection(
  s: StatusSnapshot,
  options: HumanOptions,
  c: ReturnType<typeof pc.createColors>,
): string[] {
  if (!s.procKsmStat) {
    return [c.bold('Processes'), `  /proc/PID/ksm_stat is ${NOT_IN_KERNEL} (it needs Linux 6.1 or later)`];
  }
  const lines: string[] = [];
  const rates = options.rates?.processMerged;
  const what = s.processes.length === s.processesRead ? 'all' : `${s.processes.length} of ${s.processesRead}`;
  if (s.processes.length === 0) {
    lines.push(
      c.bold('Processes'),
      '  none uses KSM (none is mergeable or has merged pages); `ksmkit exec CMD` starts one with KSM on',
    );
  } else {
    lines.push(c.bold(`Processes using KSM (${what}), by profit`));
    const header = ['PID', 'COMMAND', 'MERGING', 'RMAP', 'ZERO', 'PROFIT', 'MERGEABLE', 'MERGE-ANY'];
    if (rates !== undefined) header.push('MERGED/S');
    const table = (width: number): string[] =>
      alignColumns([header, ...rowsOf(width)], new Set([0, 2, 3, 4, 5, 8]));
    const rowsOf = (width: number): string[][] =>
      s.processes.map((p: ProcessKsm) => {
        const row = [
          String(p.pid),
          truncate(p.cmdline, width),
          cell(p.mergingPages),
          cell(p.rmapItems),
          cell(p.zeroPages),
          cell(p.profit, formatBytes),
          cell(p.mergeable),
          cell(p.mergeAny),
        ];
        if (rates !== undefined) {
          const r = rates.get(p.pid);
          row.push(r === undefined ? '' : formatRate(r));
        }
        return row;
      });
    // The command column gives way first when the terminal is narrow.
    let width = options.commandWidth ?? 40;
    let aligned = table(width);
    const longest = Math.max(...aligned.map((l) => l.length));
    if (options.width !== undefined && longest + 2 > options.width) {
      const used = Math.max('COMMAND'.length, ...s.processes.map((p) => Math.min(p.cmdline.length, width)));
      width = Math.max(8, used - (longest + 2 - options.width));
      aligned = table(width);
    }
    lines.push(`  ${c.bold(aligned[0]!)}`, ...aligned.slice(1).map((l) => `  ${l}`));
  }
  if (s.missingStatLines.length > 0) {
    lines.push(
      `  — ${NOT_IN_KERNEL}: its ksm_stat has no ${s.missingStatLines.join(', ')} line ` +
        '(ksm_zero_pages came in Linux 6.5, ksm_merge_any and ksm_mergeable in 6.14)',
    );
  }
  if (s.unreadable > 0) {
    lines.push(
      c.yellow(
        `  ${s.unreadable} process${s.unreadable === 1 ? "'s" : "es'"} /proc/PID/ksm_stat could not be read: ` +
          "other users' processes need root (run ksmkit status as root to see them all)",
      ),
    );
  }
  return lines;
}

/** The whole screen, one string per line. */
export function formatHuman(s: StatusSnapshot, options: HumanOptions): string[] {
  const c = pc.createColors(options.color);
  const lines = [runLine(s, c)];
  if (!s.available) return lines;
  lines.push('');
  lines.push(...fileSections(s, c, options.width));
  lines.push('');
  const saving = savingOf(s);
  const rows: string[][] = [
    [
      'general_profit',
      saving.generalProfit === null
        ? `${NOT_IN_KERNEL} (it needs Linux 6.4 or later)`
        : `${formatBytes(saving.generalProfit)} saved, net of KSM's own metadata`,
    ],
    [
      'pages_sharing/pages_shared',
      saving.pagesSharing === null || saving.pagesShared === null
        ? NOT_IN_KERNEL
        : saving.sharingRatio === null
          ? `${saving.pagesSharing}/${saving.pagesShared}: no KSM page yet`
          : `${saving.sharingRatio.toFixed(2)} (${saving.pagesSharing}/${saving.pagesShared}): ` +
            'extra mappings per KSM page',
    ],
  ];
  lines.push(c.bold('Saving'), ...alignColumns(rows, new Set()).map((l) => `  ${l}`));
  lines.push('');
  if (options.rates !== undefined) {
    const r = options.rates;
    const rateRows = [
      ['pages scanned', formatRate(r.pagesScanned), 'Δ pages_scanned'],
      ['merged', formatRate(r.merged), 'Δ (pages_sharing + ksm_zero_pages); negative when unmerged'],
      ['full scans', formatRate(r.fullScans), 'Δ full_scans'],
    ];
    lines.push(
      c.bold(`Per second (over the last ${r.seconds.toFixed(1)} s)`),
      ...alignColumns(rateRows, new Set([1])).map((l) => `  ${l}`),
      '',
    );
  }
  lines.push(...processSection(s, options, c));
  return lines;
}
