/** `ksmkit fleet` for people (terminal tables, an HTML page) and for programs (JSON). */
import { escapeHtml } from '../../report/html.ts';
import { textTable } from '../../report/table.ts';
import { formatBytes } from '../../simulate/units.ts';
import type { FleetReport, HostSaving } from './fleet.ts';

export interface HumanOptions {
  readonly color: boolean;
  /** Rows shown in the long tables (hosts, moves, sources). */
  readonly limit: number;
  /** The terminal's width (tables wrap to fit), or undefined. */
  readonly width?: number;
}

function saving(h: HostSaving): string {
  return h.errorBytes > 0
    ? `${formatBytes(h.general_profit)} ± ${formatBytes(h.errorBytes)}`
    : formatBytes(h.general_profit);
}

/** The rows of the report's tables, as text cells: one source for the terminal and the HTML page. */
function sections(report: FleetReport, limit: number) {
  const hosts = [...report.hosts]
    .sort(
      (a, b) =>
        b.after.general_profit -
          b.before.general_profit -
          (a.after.general_profit - a.before.general_profit) || (a.host < b.host ? -1 : 1),
    )
    .slice(0, limit)
    .map((h) => [
      h.host,
      `${h.before.sources} → ${h.after.sources}`,
      `${formatBytes(h.after.residentBytes)} / ${formatBytes(h.after.memoryBytes)}`,
      String(h.before.pages_sharing),
      saving(h.before),
      String(h.after.pages_sharing),
      saving(h.after),
    ]);
  const similar = report.similar
    .slice(0, limit)
    .map((p) => [p.a, p.b, String(p.aPagesInB), String(p.bPagesInA), p.jaccard.toFixed(3)]);
  const moves = report.moves.slice(0, limit).map((m) => [m.source, m.from, m.to]);
  const elsewhere = report.bestElsewhere.slice(0, limit).map((b) => [b.source, b.host, String(b.pages)]);
  return {
    hosts: {
      head: [
        'host',
        'sources',
        'resident / memory',
        'pages_sharing now',
        'saving now',
        'pages_sharing planned',
        'saving planned',
      ],
      rows: hosts,
    },
    similar: {
      head: ['source', 'source', 'pages of 1st in 2nd', 'pages of 2nd in 1st', 'Jaccard'],
      rows: similar,
    },
    elsewhere: { head: ['source', 'host where it shares most', 'pages'], rows: elsewhere },
    moves: { head: ['source', 'from', 'to'], rows: moves },
  };
}

function headline(report: FleetReport): string[] {
  const { before, after, errorBytes } = report.total;
  const err = errorBytes > 0 ? ` (± ${formatBytes(errorBytes)} from sampling)` : '';
  return [
    `${report.hosts.length} hosts, ${report.hosts.reduce((s, h) => s + h.before.sources, 0)} sources, ` +
      `fingerprints ${report.sampleOneIn === 1 ? 'all kept' : `sampled 1 in ${report.sampleOneIn}`} (engine ${report.engine})`,
    `KSM saves now: ${formatBytes(before)}${err}`,
    `with the plan:  ${formatBytes(after)} (${after >= before ? '+' : ''}${formatBytes(after - before)}), ${report.moves.length} moves`,
    `planner: ${report.method}`,
  ];
}

export function renderHuman(report: FleetReport, options: HumanOptions): string {
  const out = [...headline(report), ''];
  const s = sections(report, options.limit);
  const add = (title: string, t: { head: string[]; rows: string[][] }, total: number): void => {
    out.push(`${title}${total > t.rows.length ? ` (first ${t.rows.length} of ${total})` : ''}`);
    out.push(textTable({ head: t.head, color: options.color, width: options.width }, t.rows), '');
  };
  add('Hosts (largest change first)', s.hosts, report.hosts.length);
  add('Moves', s.moves, report.moves.length);
  add('Sources that overlap most', s.similar, report.similar.length);
  add('Where each source would share most (another host)', s.elsewhere, report.bestElsewhere.length);
  for (const n of report.notes) out.push(`note: ${n}`);
  return out.join('\n');
}

export function renderJson(report: FleetReport): string {
  return JSON.stringify(report, null, 2);
}

export function renderHtml(report: FleetReport): string {
  const s = sections(report, Number.POSITIVE_INFINITY);
  const tableHtml = (title: string, t: { head: string[]; rows: string[][] }): string =>
    `<h2>${escapeHtml(title)}</h2><table><thead><tr>${t.head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead>` +
    `<tbody>${t.rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ksmkit fleet</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin-bottom:1.5em}
td,th{border-bottom:1px solid #ddd;padding:2px 8px;text-align:left}th{background:#f4f4f4}</style></head><body>
<h1>ksmkit fleet</h1>
${headline(report)
  .map((l) => `<p>${escapeHtml(l)}</p>`)
  .join('\n')}
${tableHtml('Hosts', s.hosts)}
${tableHtml('Moves', s.moves)}
${tableHtml('Sources that overlap most', s.similar)}
${tableHtml('Where each source would share most (another host)', s.elsewhere)}
<ul>${report.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>
</body></html>
`;
}
