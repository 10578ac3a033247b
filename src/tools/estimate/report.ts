/** The estimate as tables for people, or as one JSON object. */
import { type Align, textTable } from '../../report/table.ts';
import { renderCompare } from '../compress/report.ts';
import type { EstimateReport, SourceReport } from './estimate.ts';
import { PAGE_BYTES } from './model.ts';
import { SKIP_REASON_TEXT, type SkippedVma, type SkipReason } from './proc-source.ts';

export interface RenderOptions {
  /** How many sources the matrices show at most (those sharing the most with the others). */
  readonly matrixLimit?: number;
  /** Skipped mappings per process even for many processes. */
  readonly verbose?: boolean;
  /** Colour in table borders and headings (a terminal). */
  readonly color?: boolean;
  /** The terminal's columns: tables are fitted to them. */
  readonly width?: number | undefined;
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');

/** Bytes as KiB below 1 MiB, MiB below 10 GiB, else GiB. */
export function mib(bytes: number): string {
  const a = Math.abs(bytes);
  if (a === 0) return '0';
  if (a < 1048576) return `${(bytes / 1024).toFixed(1)} KiB`;
  const v = bytes / 1048576;
  if (Math.abs(v) < 10240) return `${v.toFixed(Math.abs(v) >= 100 ? 0 : 1)} MiB`;
  return `${(v / 1024).toFixed(1)} GiB`;
}

export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'never';
  if (seconds < 1) return `${(seconds * 1000).toFixed(0)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

interface Look {
  readonly color: boolean;
  readonly width: number | undefined;
}

/** Rows pushed, then rendered fitted to the terminal. */
function table(
  head: string[],
  look: Look,
  align?: Align[],
): { push: (...rows: string[][]) => void; toString: () => string } {
  const rows: string[][] = [];
  return {
    push: (...more) => {
      rows.push(...more);
    },
    toString: () =>
      textTable(
        { head, color: look.color, width: look.width, ...(align === undefined ? {} : { align }) },
        rows,
      ),
  };
}

function sourceKind(s: SourceReport): string {
  if (s.kind === 'guest') return 'scenario guest';
  return s.kind === 'process' ? 'process' : s.scan.kind === 'raw' ? 'raw image' : 'ELF core';
}

function groupSkipped(skipped: readonly SkippedVma[]): Map<SkipReason, SkippedVma[]> {
  const by = new Map<SkipReason, SkippedVma[]>();
  for (const v of skipped) {
    const list = by.get(v.reason) ?? [];
    list.push(v);
    by.set(v.reason, list);
  }
  return by;
}

function skippedLine(skipped: readonly SkippedVma[]): string {
  const parts: string[] = [];
  for (const [reason, list] of groupSkipped(skipped)) {
    const size = list.reduce((a, v) => a + (v.end - v.start), 0);
    const names = [...new Set(list.map((v) => v.name).filter((n) => n.startsWith('[')))];
    const named = names.length > 0 ? ` ${names.slice(0, 4).join(' ')}` : '';
    parts.push(`${list.length} ${reason} (${mib(size)}${named})`);
  }
  return parts.length > 0 ? parts.join(', ') : 'none';
}

export function renderHuman(report: EstimateReport, options: RenderOptions = {}): string {
  const color = options.color === true;
  const look: Look = { color, width: options.width };
  const out: string[] = [];
  const st = report.settings;
  const processes = report.sources.filter((s) => s.kind === 'process').length;
  const dumps = report.sources.filter((s) => s.kind === 'dump').length;
  const guests = report.sources.length - processes - dumps;
  out.push(
    `ksmkit estimate: ${processes} process${processes === 1 ? '' : 'es'}, ${dumps} dump file${dumps === 1 ? '' : 's'}` +
      (guests > 0 ? `, ${guests} scenario guest${guests === 1 ? '' : 's'}` : ''),
  );
  const src = (k: keyof typeof st.sources): string => (st.sources[k] === 'option' ? ' (given)' : '');
  out.push(
    `settings: max_page_sharing ${st.maxPageSharing}${src('maxPageSharing')}, use_zero_pages ` +
      `${st.useZeroPages ? 1 : 0}${src('useZeroPages')}, pages_to_scan ${st.pagesToScan}${src('pagesToScan')}, ` +
      `sleep_millisecs ${st.sleepMillisecs}${src('sleepMillisecs')}, HZ ${st.hz}` +
      (Object.values(st.sources).includes('sysfs') ? ' (the rest from /sys/kernel/mm/ksm)' : ''),
  );
  if (report.sources.length === 0) {
    out.push('', 'nothing was read.');
  } else {
    out.push('', 'Per source: alone = if it ran alone under KSM; in the set = all sources together');
    const t = table(
      [
        'source',
        'kind',
        'pages',
        'zero',
        'distinct',
        'alone: shared',
        'sharing',
        'profit',
        'in set: merging',
        'process profit',
      ],
      look,
      ['left', 'left', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right'],
    );
    for (const s of report.sources) {
      const m = s.summary;
      t.push([
        s.label,
        sourceKind(s),
        int(m.examined),
        int(m.zeroPages),
        int(m.distinct),
        int(m.alone.pages_shared),
        int(m.alone.pages_sharing),
        mib(m.alone.general_profit),
        int(m.inSet.ksm_merging_pages),
        mib(m.inSet.ksm_process_profit),
      ]);
    }
    out.push(t.toString());

    const tot = report.total;
    out.push('', 'What KSM would reach with all of them (at convergence, quiet system)');
    const k = table(['counter', 'value', ''], look, ['left', 'right', 'left']);
    k.push(
      ['pages examined', int(tot.examined), mib(tot.examined * PAGE_BYTES)],
      [
        'zero pages',
        int(tot.zeroPages),
        st.useZeroPages ? 'become KSM zero pages' : 'merge like any content',
      ],
      ['distinct contents', int(tot.distinct), `${int(tot.uniquePages)} pages have no copy`],
      ['pages_shared', int(tot.total.pages_shared), 'KSM pages'],
      ['pages_sharing', int(tot.total.pages_sharing), mib(tot.total.pages_sharing * PAGE_BYTES)],
      ['ksm_zero_pages', int(tot.total.ksm_zero_pages), mib(tot.total.ksm_zero_pages * PAGE_BYTES)],
      ['rmap items', int(tot.total.rmap_items), `${mib(tot.total.rmap_items * 64)} of kernel memory`],
      ['general_profit', int(tot.total.general_profit), mib(tot.total.general_profit)],
    );
    if (tot.sameFramePages > 0)
      k.push([
        'fork-shared, no copy',
        int(tot.sameFramePages),
        'one page mapped several times: cannot merge',
      ]);
    out.push(k.toString());

    if (report.sources.length >= 2) out.push('', ...renderMatrices(report, options));
  }

  const tm = report.time;
  out.push('');
  out.push(
    `Time to converge at pages_to_scan ${st.pagesToScan}, sleep_millisecs ${st.sleepMillisecs} ` +
      `(a ${tm.sleepPerBatchMs.toFixed(0)} ms period at HZ ${st.hz}: the timer fires on the next tick):`,
  );
  out.push(
    `  one pass: ${int(tm.pagesPerPass)} pages in ${int(tm.batchesPerPass)} batches = ${duration(tm.passSeconds)} of sleep`,
  );
  if (tm.passesToConverge === 0) {
    out.push('  nothing would merge');
  } else {
    out.push(
      `  merged after ${tm.passesToConverge} passes (checksums, then merges): ${duration(tm.convergeSeconds)}` +
        ` (up to ${duration(tm.worstCaseSeconds)} when ksmd is mid-pass as they register)`,
    );
    if (tm.profitFinalPasses > tm.passesToConverge)
      out.push(
        `  general_profit final after pass ${tm.profitFinalPasses} (KSM zero pages' rmap items freed): ` +
          `${duration(tm.profitFinalSeconds)}`,
      );
    out.push("  ksmd's own processing time (CPU) comes on top: not modelled");
  }

  const procs = report.sources.filter((s) => s.kind === 'process');
  if (procs.length > 0) {
    out.push('', 'Not scanned (as ksmd would not):');
    const detailed = options.verbose === true || procs.length <= 8;
    if (detailed) {
      for (const s of procs) {
        const p = s.scan;
        out.push(
          `  ${s.label} [${p.mode === 'mergeable' ? 'VM_MERGEABLE VMAs only' : 'every KSM-compatible VMA'}]: ` +
            `${p.vmasScanned} VMAs scanned; skipped ${skippedLine(p.skipped)}`,
        );
        out.push(
          `    pages: ${int(p.notPresentPages)} not present, ${int(p.swappedPages)} swapped, ` +
            `${int(p.filePages)} file pages of private file mappings, ${int(p.zeroPageMappings)} zero-page mappings` +
            (p.unreadablePages > 0 ? `, ${int(p.unreadablePages)} unreadable` : ''),
        );
      }
    } else {
      const all = procs.flatMap((s) => s.scan.skipped);
      out.push(`  ${procs.length} processes: skipped ${skippedLine(all)} (--verbose: per process)`);
      const sum = (f: (p: (typeof procs)[number]['scan']) => number): number =>
        procs.reduce((a, s) => a + f(s.scan), 0);
      out.push(
        `    pages: ${int(sum((p) => p.notPresentPages))} not present, ${int(sum((p) => p.swappedPages))} swapped, ` +
          `${int(sum((p) => p.filePages))} file pages, ${int(sum((p) => p.zeroPageMappings))} zero-page mappings`,
      );
    }
    const reasons = new Set(procs.flatMap((s) => s.scan.skipped.map((v) => v.reason)));
    for (const r of reasons) out.push(`    ${r}: ${SKIP_REASON_TEXT[r]}`);
  }
  for (const s of report.sources) {
    if (s.kind !== 'dump') continue;
    const d = s.scan;
    out.push(`  ${s.label}: ${d.kind}, ${d.segments} segment(s) read`);
    for (const sk of d.skipped) out.push(`    ${sk.what}: ${mib(sk.bytes)} ${sk.reason}`);
    if (d.zeroPagesLeftOut > 0) out.push(`    ${int(d.zeroPagesLeftOut)} zero pages taken as not present`);
    for (const n of d.notes) out.push(`    ${n}`);
  }
  if (report.compare !== undefined) out.push(...renderCompare(report.compare, color));
  if (report.unreadable.length > 0) {
    out.push('', `Could not read ${report.unreadable.length}:`);
    for (const u of report.unreadable.slice(0, 20)) out.push(`  ${u.what}: ${u.error}`);
    if (report.unreadable.length > 20) out.push(`  … and ${report.unreadable.length - 20} more`);
  }
  if (report.notes.length > 0) {
    out.push('', 'Notes:');
    for (const n of report.notes) out.push(`  ${n}`);
  }
  const sp = report.speed;
  out.push(
    '',
    `Read and hashed ${mib(sp.bytes)} in ${duration(sp.seconds)}: ${sp.gbPerSecond.toFixed(2)} GB/s` +
      (report.framesKnown
        ? ''
        : ' (page frames not visible: run as root for exact fork and zero-page handling)'),
  );
  return out.join('\n');
}

/** The sources that share the most with the others, best first. */
function matrixSources(report: EstimateReport, limit: number): number[] {
  const score = new Float64Array(report.sources.length);
  for (const p of report.pairs) {
    score[p.a]! += p.aPagesFoundInB;
    score[p.b]! += p.bPagesFoundInA;
  }
  return [...report.sources.keys()]
    .sort((x, y) => score[y]! - score[x]! || x - y)
    .slice(0, limit)
    .sort((x, y) => x - y);
}

function renderMatrices(report: EstimateReport, options: RenderOptions): string[] {
  const color = options.color === true;
  const look: Look = { color, width: options.width };
  const limit = options.matrixLimit ?? 8;
  const chosen = matrixSources(report, limit);
  const n = report.sources.length;
  const pairIndex = new Map<number, (typeof report.pairs)[number]>();
  for (const p of report.pairs) pairIndex.set(p.a * n + p.b, p);
  const short = (i: number): string => {
    const s = report.sources[i]!;
    return s.kind === 'process' ? String(s.scan.pid) : s.label.slice(0, 14);
  };
  const out: string[] = [];
  const more =
    n > chosen.length ? ` (the ${chosen.length} of ${n} sources sharing the most; --matrix N for more)` : '';
  out.push(`Sharing matrix${more}`);
  out.push('  pages_sharing if only the row and the column ran under KSM (diagonal: the row alone)');
  const a = table(['', ...chosen.map(short)], look, ['left', ...chosen.map(() => 'right' as const)]);
  for (const i of chosen) {
    a.push([
      report.sources[i]!.label,
      ...chosen.map((j) => {
        if (i === j) return int(report.sources[i]!.summary.alone.pages_sharing);
        const p = pairIndex.get(Math.min(i, j) * n + Math.max(i, j));
        if (p !== undefined) return int(p.together.pages_sharing);
        return int(
          report.sources[i]!.summary.alone.pages_sharing + report.sources[j]!.summary.alone.pages_sharing,
        );
      }),
    ]);
  }
  out.push(a.toString());
  out.push('  pages of the row whose content also appears in the column');
  const b = table(['', ...chosen.map(short)], look, ['left', ...chosen.map(() => 'right' as const)]);
  for (const i of chosen) {
    b.push([
      report.sources[i]!.label,
      ...chosen.map((j) => {
        if (i === j) return '-';
        const p = pairIndex.get(Math.min(i, j) * n + Math.max(i, j));
        if (p === undefined) return '0';
        return int(i < j ? p.aPagesFoundInB : p.bPagesFoundInA);
      }),
    ]);
  }
  out.push(b.toString());
  return out;
}

/** The report as JSON: every figure, every skipped mapping, every pair with something in common. */
export function renderJson(report: EstimateReport): string {
  const labels = report.sources.map((s) => s.label);
  return JSON.stringify(
    {
      settings: report.settings,
      sources: report.sources.map((s) =>
        s.kind === 'process'
          ? {
              kind: s.kind,
              label: s.label,
              pid: s.scan.pid,
              command: s.scan.command,
              ...s.summary,
              scan: {
                ...s.scan,
                skipped: s.scan.skipped.map((v) => ({
                  start: `0x${v.start.toString(16)}`,
                  end: `0x${v.end.toString(16)}`,
                  name: v.name,
                  reason: v.reason,
                  rssKb: v.rssKb,
                })),
              },
            }
          : s.kind === 'guest'
            ? { kind: s.kind, label: s.label, ...s.summary, scan: s.scan }
            : { kind: s.kind, label: s.label, path: s.scan.path, ...s.summary, scan: s.scan },
      ),
      total: report.total,
      pairs: report.pairs.map((p) => ({ ...p, aLabel: labels[p.a], bLabel: labels[p.b] })),
      time: report.time,
      speed: report.speed,
      framesKnown: report.framesKnown,
      ...(report.compare !== undefined ? { compare: report.compare } : {}),
      unreadable: report.unreadable,
      notes: report.notes,
    },
    (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v),
    2,
  );
}
