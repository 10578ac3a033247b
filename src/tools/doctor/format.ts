/** `ksmkit doctor` for people: the host line, then the findings grouped by verdict, biggest memory first, fix beside each. */
import pc from 'picocolors';
import { formatBytes } from '../status/human.ts';
import type { DoctorReport } from './doctor.ts';
import { formatSeconds } from './host.ts';
import { vmaLabel } from './process.ts';
import { type Finding, type Subject, VERDICT_INFO, type Verdict } from './verdicts.ts';

export interface FormatOptions {
  readonly color: boolean;
  /** Rows shown per verdict before "and N more"; Infinity for all. */
  readonly rowsPerVerdict: number;
  /** Widest a command may be. */
  readonly commandWidth?: number;
}

/**
 * A command line cut to `width`: the program without its directory, then as
 * much of the end as fits (`ksmkit-agent …vm-clone-1`): the end tells guests apart.
 */
export function shortCommand(cmdline: string, width: number): string {
  const space = cmdline.indexOf(' ');
  const program = (space < 0 ? cmdline : cmdline.slice(0, space)).replace(/^.*\//, '');
  const rest = space < 0 ? '' : cmdline.slice(space + 1);
  const whole = rest === '' ? program : `${program} ${rest}`;
  if (whole.length <= width) return whole;
  const room = width - program.length - 2;
  return room <= 0 ? `${program.slice(0, width - 1)}…` : `${program} …${rest.slice(-room)}`;
}

function subjectText(s: Subject, commandWidth: number): string {
  if (s.pid === undefined)
    return s.command === undefined ? 'host' : `${s.command}${s.name ? `  ${s.name}` : ''}`;
  const command = shortCommand(s.command ?? '?', commandWidth);
  const who = `pid ${s.pid} ${command}`;
  if (s.start === undefined || s.end === undefined) return who;
  return `${who}  ${vmaLabel({ start: s.start, end: s.end, name: s.name ?? '' })}`;
}

function hostLine(r: DoctorReport): string {
  const h = r.host;
  const s = h.settings;
  const parts = [
    `run ${s.run ?? '?'}`,
    `pages_to_scan ${s.pagesToScan ?? '?'}`,
    `sleep_millisecs ${s.sleepMillisecs ?? '?'}`,
    `${h.pagesToVisit} pages to visit`,
  ];
  if (h.fullScanSeconds !== null)
    parts.push(
      `full scan ~${formatSeconds(h.fullScanSeconds)} (${h.fullScanBasis}; target ${formatSeconds(h.targetScanSeconds)})`,
    );
  if (h.ksmdCpuPercent !== null) parts.push(`ksmd ${h.ksmdCpuPercent.toFixed(1)}% CPU`);
  return `host: ${parts.join(', ')}`;
}

export function formatReport(r: DoctorReport, options: FormatOptions): string[] {
  const c = pc.createColors(options.color);
  const width = options.commandWidth ?? 40;
  const lines: string[] = [];
  const who =
    r.source === 'host'
      ? `${r.root ? 'root' : 'not root'}, window ${r.host.windowSeconds.toFixed(1)} s`
      : 'engine';
  lines.push(
    c.bold(
      `ksmkit doctor: ${r.target.description} (${r.target.pids.length} processes), kernel ${r.kernel}, ${who}`,
    ),
  );
  lines.push(hostLine(r));
  if (r.pageAnalysis) {
    const t = Object.entries(r.pageTotals)
      .filter(([, n]) => n > 0)
      .map(([v, n]) => `${v} ${formatBytes(n * 4096)}`);
    lines.push(`pages: ${t.length === 0 ? 'no VM_MERGEABLE page present' : t.join(', ')}`);
  }
  for (const p of r.problems) lines.push(c.yellow(`! ${p}`));
  for (const n of r.notes) lines.push(c.dim(`note: ${n}`));
  const groups = new Map<Verdict, Finding[]>();
  for (const f of r.findings) {
    const g = groups.get(f.verdict);
    if (g === undefined) groups.set(f.verdict, [f]);
    else g.push(f);
  }
  for (const [verdict, rows] of groups) {
    const info = VERDICT_INFO[verdict];
    const total = rows.reduce((s, f) => s + f.bytes, 0);
    const level =
      info.level === 'finding'
        ? c.red('FINDING')
        : info.level === 'info'
          ? c.cyan('info   ')
          : c.green('ok     ');
    lines.push('');
    lines.push(
      `${level} ${c.bold(info.title)} [${verdict}]${total > 0 ? `  ${formatBytes(total)}` : ''}${rows.length > 1 ? `, ${rows.length} rows` : ''}`,
    );
    lines.push(c.dim(`        ${info.meaning}`));
    const shown = rows.slice(0, options.rowsPerVerdict);
    for (const f of shown) {
      const mem = f.bytes > 0 ? formatBytes(f.bytes) : '';
      lines.push(`  ${mem.padStart(10)}  ${subjectText(f.subject, width)}: ${f.evidence}`);
      if (f.fix !== '') lines.push(`  ${''.padStart(10)}  ${c.green('fix:')} ${f.fix}`);
    }
    if (rows.length > shown.length) {
      const rest = rows.slice(shown.length);
      lines.push(
        c.dim(
          `  ${''.padStart(10)}  … and ${rest.length} more (${formatBytes(rest.reduce((s, f) => s + f.bytes, 0))}; --rows to see them)`,
        ),
      );
    }
  }
  lines.push('');
  const n = r.findings.filter((f) => VERDICT_INFO[f.verdict].level === 'finding').length;
  lines.push(r.healthy ? c.green('healthy: no finding') : c.red(`${n} finding${n === 1 ? '' : 's'}`));

  return lines;
}
