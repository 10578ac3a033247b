/**
 * `--report FILE.html`: one self-contained page (inline SVG plots drawn with
 * Observable Plot on linkedom's DOM, inline CSS, no script, no external URL)
 * with the saving, ksmd's CPU and the memory in use over time, one line per
 * run, the summary and sweep tables, the scenario's assumptions, and the
 * published figures it is checked against.
 */
import * as Plot from '@observablehq/plot';
import { escapeHtml, plotSvg } from '../report/html.ts';
import { type Calibration, describeFigures } from './cost.ts';
import type { Sample } from './engine-run.ts';
import type { Scenario } from './scenario.ts';
import { judgeClaim, MILESTONES } from './summary.ts';
import type { RunResult } from './sweep.ts';
import { formatBytes, formatClock, formatDuration } from './units.ts';
import { milestoneText, overText, savingText, type Verdict } from './verdict.ts';

export interface ReportInput {
  readonly scenario: Scenario;
  readonly results: readonly RunResult[];
  /** Runs at higher pages_to_scan made for the verdict (the guests were over the host's memory). */
  readonly rescue?: readonly RunResult[];
  /** What the report decides; shown first. */
  readonly verdict?: Verdict;
  readonly calibration: Calibration;
  /** The command line, for the record. */
  readonly command: string;
  /** ISO date of the run. */
  readonly generatedAt: string;
}

const GIB = 2 ** 30;

/** The time axis, its label centred under the ticks (at the right end it overlapped the last ones). */
const X_AXIS = (label: string): Plot.ScaleOptions => ({
  label,
  grid: true,
  labelAnchor: 'center',
  labelOffset: 38,
});

interface Point {
  readonly run: string;
  readonly t: number;
  readonly value: number;
  readonly extrapolated: boolean;
}

function points(results: readonly RunResult[], unitMs: number, value: (s: Sample) => number): Point[] {
  const out: Point[] = [];
  for (const r of results) {
    const samples = r.run.samples;
    for (let i = 0; i < samples.length; i++) {
      const s = samples[i]!;
      // The first extrapolated point also closes the simulated line.
      const next = samples[i + 1];
      out.push({ run: r.spec.label, t: s.tMs / unitMs, value: value(s), extrapolated: s.extrapolated });
      if (!s.extrapolated && next?.extrapolated === true)
        out.push({ run: r.spec.label, t: s.tMs / unitMs, value: value(s), extrapolated: true });
    }
  }
  return out;
}

function lineFigure(
  results: readonly RunResult[],
  unit: { ms: number; label: string },
  y: { label: string; value: (s: Sample) => number },
  extra: Plot.Markish[] = [],
): string {
  const data = points(results, unit.ms, y.value);
  const simulated = data.filter((p) => !p.extrapolated);
  const extrapolated = data.filter((p) => p.extrapolated);
  return plotSvg({
    x: X_AXIS(unit.label),
    marginBottom: 44,
    y: { label: y.label, grid: true, nice: true },
    color: { legend: results.length > 1, type: 'categorical' },
    marks: [
      Plot.ruleY([0]),
      Plot.lineY(simulated, { x: 't', y: 'value', stroke: 'run', z: 'run', strokeWidth: 1.6 }),
      Plot.lineY(extrapolated, {
        x: 't',
        y: 'value',
        stroke: 'run',
        z: 'run',
        strokeWidth: 1.6,
        strokeDasharray: '4,3',
        strokeOpacity: 0.7,
      }),
      ...extra,
    ],
  });
}

function pagesFigure(result: RunResult, unit: { ms: number; label: string }): string {
  const rows: { t: number; counter: string; pages: number }[] = [];
  for (const s of result.run.samples) {
    const t = s.tMs / unit.ms;
    rows.push({ t, counter: 'pages_shared', pages: s.pages_shared });
    rows.push({ t, counter: 'pages_sharing', pages: s.pages_sharing });
    rows.push({ t, counter: 'pages_unshared', pages: s.pages_unshared });
    rows.push({ t, counter: 'pages_volatile', pages: s.pages_volatile });
    rows.push({ t, counter: 'ksm_zero_pages', pages: s.ksm_zero_pages });
  }
  return plotSvg({
    height: 260,
    x: X_AXIS(unit.label),
    marginBottom: 44,
    y: { label: 'pages', grid: true, tickFormat: '~s', nice: true },
    color: { legend: true, type: 'categorical' },
    marks: [Plot.ruleY([0]), Plot.lineY(rows, { x: 't', y: 'pages', stroke: 'counter', strokeWidth: 1.4 })],
  });
}

/**
 * ksmd's CPU averaged over windows of `windowMs`: a sample's own figure covers
 * only the batches since the previous sample, so a 15 s sample that caught
 * the end of a pass spikes while its neighbours do not (aliasing).
 */
export function cpuWindows(
  samples: readonly Sample[],
  windowMs: number,
): { readonly startMs: number; readonly endMs: number; readonly percent: number }[] {
  const out: { startMs: number; endMs: number; percent: number }[] = [];
  let from = samples[0];
  if (from === undefined) return out;
  for (const s of samples) {
    if (s.tMs - from.tMs < windowMs - 1e-6 && s !== samples.at(-1)) continue;
    if (s.tMs > from.tMs)
      out.push({
        startMs: from.tMs,
        endMs: s.tMs,
        percent: ((s.ksmdCpuMs - from.ksmdCpuMs) / (s.tMs - from.tMs)) * 100,
      });
    from = s;
  }
  return out;
}

/** About 60 windows over the run, never shorter than a sample interval. */
export function cpuWindowMs(durationMs: number, sampleEveryMs: number): number {
  const minute = 60_000;
  const raw = Math.max(sampleEveryMs, durationMs / 60);
  return raw >= minute ? Math.round(raw / minute) * minute : raw;
}

function cpuFigure(
  results: readonly RunResult[],
  unit: { ms: number; label: string },
  windowMs: number,
): string {
  const rows = results.flatMap((r) =>
    cpuWindows(r.run.samples, windowMs).flatMap((w) => [
      { run: r.spec.label, t: w.startMs / unit.ms, value: w.percent },
      { run: r.spec.label, t: w.endMs / unit.ms, value: w.percent },
    ]),
  );
  return plotSvg({
    x: X_AXIS(unit.label),
    marginBottom: 44,
    y: { label: `ksmd CPU, % of one CPU (average per ${formatDuration(windowMs)})`, grid: true, nice: true },
    color: { legend: results.length > 1, type: 'categorical' },
    marks: [
      Plot.ruleY([0]),
      Plot.lineY(rows, { x: 't', y: 'value', stroke: 'run', z: 'run', strokeWidth: 1.6 }),
    ],
  });
}

/** With the scenario's `compression:`: KSM, zram alone and KSM then zram over time, for the first run. */
function compressionSection(
  scenario: Scenario,
  result: RunResult | undefined,
  unit: { ms: number; label: string },
): string {
  const c = scenario.compression;
  if (c === undefined || result === undefined) return '';
  const rows: { t: number; what: string; gib: number }[] = [];
  for (const s of result.run.samples) {
    if (s.compression === undefined) continue;
    const t = s.tMs / unit.ms;
    rows.push({ t, what: 'KSM', gib: s.general_profit / GIB });
    for (const a of s.compression.algorithms) {
      rows.push({ t, what: `zram ${a.algorithm}`, gib: a.zramSavedBytes / GIB });
      rows.push({ t, what: `KSM, then zram ${a.algorithm}`, gib: a.ksmThenZramSavedBytes / GIB });
    }
  }
  const figure = plotSvg({
    x: { label: unit.label, grid: true },
    y: { label: 'memory saved, GiB', grid: true },
    color: { legend: true, type: 'categorical' },
    marks: [Plot.ruleY([0]), Plot.lineY(rows, { x: 't', y: 'gib', stroke: 'what', strokeWidth: 1.5 })],
  });
  return `<h2>KSM beside compression</h2>
<figure>${figure}</figure>
<p class="muted">zram: every guest page swapped out to zram (same-filled pages kept as one word, zsmalloc's size
classes for the memory used); KSM then zram: KSM's general_profit plus zram on the pages KSM leaves. The guests'
pages are values, not bytes: image pages are taken to compress to ${c.image}, tag pages to ${c.tag} and unique
pages to ${c.unique} of a page (the scenario's <code>compression:</code>), measured with the kernel's compressors on
pages made to that ratio; <code>ksmkit estimate --compare</code> measures real memory.</p>`;
}

function timeUnit(durationMs: number): { ms: number; label: string } {
  if (durationMs >= 3 * 3_600_000) return { ms: 3_600_000, label: 'hours (virtual time)' };
  if (durationMs >= 5 * 60_000) return { ms: 60_000, label: 'minutes (virtual time)' };
  return { ms: 1000, label: 'seconds (virtual time)' };
}

function htmlTable(head: readonly string[], rows: readonly (readonly string[])[], numericFrom = 1): string {
  const th = head.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const body = rows
    .map(
      (row) =>
        `<tr>${row.map((c, i) => `<td${i >= numericFrom ? ' class="n"' : ''}>${escapeHtml(c)}</td>`).join('')}</tr>`,
    )
    .join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>${body}</tbody></table>`;
}

function summaryRows(results: readonly RunResult[]): string {
  const head = ['', ...results.map((r) => r.spec.label)];
  const row = (name: string, f: (r: RunResult) => string): string[] => [name, ...results.map(f)];
  const rows = [
    row('memory saved (general_profit)', (r) => savingText(r.summary)),
    ...MILESTONES.map((m) => row(`time to ${m}% of the saving`, (r) => milestoneText(r.summary, m))),
    row('ksmd CPU, average', (r) => `${r.summary.ksmdCpuPercent.toFixed(2)}% of one CPU`),
    row('ksmd CPU, peak', (r) => `${r.summary.peakCpuPercent.toFixed(1)}%`),
    row('ksmd CPU until 90%', (r) =>
      r.summary.cpuTo90Ms === undefined ? 'n/a' : formatDuration(r.summary.cpuTo90Ms),
    ),
    row('pages_shared', (r) => String(r.summary.final.pages_shared)),
    row('pages_sharing', (r) => String(r.summary.final.pages_sharing)),
    row('pages_unshared', (r) => String(r.summary.final.pages_unshared)),
    row('pages_volatile', (r) => String(r.summary.final.pages_volatile)),
    row('ksm_zero_pages', (r) => String(r.summary.final.ksm_zero_pages)),
    row('full_scans', (r) => String(r.summary.fullScans)),
    row('memory in use at the end', (r) => formatBytes(r.summary.memoryAfterBytes)),
    row(
      'peak memory in use',
      (r) => `${formatBytes(r.summary.peakMemoryBytes)} at ${formatClock(r.summary.peakAtMs)}`,
    ),
    row('the host’s memory', (r) => overText(r.summary, true)),
    row('fits the host once merged', (r) => (r.summary.fitsAfterMerge ? 'yes' : 'no')),
    row('COW breaks', (r) => `${r.summary.cowBreaks} (${formatDuration(r.summary.cowCpuMs)} guest CPU)`),
    row('steady state from', (r) =>
      r.summary.steadyAtMs === undefined ? 'not reached / not used' : formatClock(r.summary.steadyAtMs),
    ),
    row('simulation wall time', (r) => formatDuration(r.wallMs)),
  ];
  return htmlTable(head, rows);
}

function publishedSection(scenario: Scenario, results: readonly RunResult[]): string {
  const p = scenario.published;
  if (p === undefined) return '';
  const rows: string[][] = [];
  for (const claim of p.claims) {
    if (claim.check === undefined) {
      rows.push([claim.text, '—', 'not checkable by the simulation', '']);
      continue;
    }
    for (const r of results) {
      const v = judgeClaim(claim.text, claim.check, r.summary);
      rows.push([claim.text, r.spec.label, v.verdict, v.simulated]);
    }
  }
  const cannot = p.cannotCheck.map((c) => `<li>${escapeHtml(c)}</li>`).join('');
  return `<h2>The published figure</h2>
<p class="muted">Source: ${escapeHtml(p.source)}</p>
${htmlTable(['published', 'run', 'simulation', 'what the simulation shows'], rows, 99)}
${cannot === '' ? '' : `<h3>Where the simulation cannot agree or disagree</h3><ul>${cannot}</ul>`}`;
}

function verdictSection(input: ReportInput): string {
  const v = input.verdict;
  if (v === undefined) return '';
  const details = v.details.map((d) => `<li>${escapeHtml(d)}</li>`).join('');
  const rescue = input.rescue ?? [];
  const base = input.results[0];
  const sweep =
    rescue.length === 0 || base === undefined
      ? ''
      : `<h3>pages_to_scan sweep, run for this verdict</h3>${htmlTable(
          ['run', 'the host’s memory', 'peak in use', 'saved', 'ksmd CPU, average'],
          [base, ...rescue].map((r) => [
            r.spec.label,
            overText(r.summary, true),
            `${formatBytes(r.summary.peakMemoryBytes)} of ${formatBytes(r.summary.availableBytes)}`,
            formatBytes(r.summary.savingBytes),
            `${r.summary.ksmdCpuPercent.toFixed(2)}% of one CPU`,
          ]),
        )}`;
  return `<div class="verdict"><p><strong>${escapeHtml(v.headline)}</strong></p>${details === '' ? '' : `<ul>${details}</ul>`}${sweep}</div>`;
}

const CSS = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 960px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 13px; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 3px 10px; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { border-left: 4px solid #2a6; background: #f3faf5; padding: 0.4em 1em; margin: 1em 0; }
.muted { color: #666; } figure { margin: 0.5em 0 1.5em; } code { background: #f4f4f4; padding: 0 3px; }
`;

/** The whole page. */
export function renderReport(input: ReportInput): string {
  const { scenario, calibration } = input;
  // The run the verdict recommends is drawn and summarised beside the runs asked for.
  const chosen = input.verdict?.chosen;
  const results =
    chosen === undefined || input.results.includes(chosen) ? input.results : [...input.results, chosen];
  const unit = timeUnit(scenario.durationMs);
  const available = (scenario.host.memoryBytes - scenario.host.reservedBytes) / GIB;
  const milestones90 = results.flatMap((r) => {
    const t = r.summary.timeToMs[90];
    const basis = r.summary.milestoneBasis === 'peak' ? r.summary.peakSavingBytes : r.summary.savingBytes;
    return t === undefined || r.summary.trend === 'growing'
      ? []
      : [{ run: r.spec.label, t: t / unit.ms, value: (basis * 0.9) / GIB }];
  });
  const saving = lineFigure(
    results,
    unit,
    { label: 'memory saved, GiB (general_profit)', value: (s) => s.general_profit / GIB },
    [
      Plot.dot(milestones90, {
        x: 't',
        y: 'value',
        stroke: 'run',
        r: 4,
        title: (d: { run: string }) => `${d.run}: 90%`,
      }),
      // Up and to the left of the dot (above a rising curve, where nothing else is drawn), but to the
      // right and below it near the left edge, where the y axis's labels are.
      ...[true, false].map((early) =>
        Plot.text(
          milestones90.filter((d) => d.t < (scenario.durationMs / unit.ms) * 0.15 === early),
          {
            x: 't',
            y: 'value',
            text: () => '90%',
            dx: early ? 8 : -7,
            dy: early ? 10 : -9,
            textAnchor: early ? 'start' : 'end',
            fill: '#444',
          },
        ),
      ),
    ],
  );
  const cpu = cpuFigure(results, unit, cpuWindowMs(scenario.durationMs, scenario.sampleEveryMs));
  const memory = lineFigure(
    results,
    unit,
    { label: 'guests’ memory in use on the host, GiB', value: (s) => s.memoryInUseBytes / GIB },
    [
      Plot.ruleY([available], { stroke: '#c00', strokeDasharray: '6,4' }),
      Plot.text([available], {
        y: (d: number) => d,
        frameAnchor: 'right',
        dy: -7,
        text: () => 'host memory for guests',
        fill: '#c00',
      }),
    ],
  );
  const pages = input.results.map(
    (r) => `<h3>${escapeHtml(r.spec.label)}</h3><figure>${pagesFigure(r, unit)}</figure>`,
  );
  const settings = Object.entries(results[0]?.run.settings ?? {})
    .map(([k, v]) => `<code>${escapeHtml(k)}=${escapeHtml(v)}</code>`)
    .join(' ');
  const assumptions = scenario.assumptions.map((a) => `<li>${escapeHtml(a)}</li>`).join('');
  const extrapolated = results.some((r) => r.summary.steadyAtMs !== undefined)
    ? '<p class="muted">Dashed lines: steady state, extrapolated from the last simulated pass (nothing left that could merge; see <code>--no-fast-forward</code>).</p>'
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ksmkit simulate: ${escapeHtml(scenario.title)}</title>
<style>${CSS}</style></head><body>
<h1>${escapeHtml(scenario.title)}</h1>
<p class="muted">ksmkit simulate, scenario <code>${escapeHtml(scenario.name)}</code>, ${escapeHtml(input.generatedAt)}.
<code>${escapeHtml(input.command)}</code></p>
<p>${escapeHtml(scenario.description)}</p>
${verdictSection(input)}
<h2>Memory saved</h2>
<figure>${saving}</figure>${extrapolated}
<h2>ksmd CPU</h2>
<figure>${cpu}</figure>
<h2>Memory in use against the host</h2>
<figure>${memory}</figure>
${compressionSection(scenario, results[0], unit)}
<h2>Summary</h2>
${summaryRows(results)}
${publishedSection(scenario, results)}
<h2>Counters of /sys/kernel/mm/ksm</h2>
${pages.join('\n')}
<h2>Assumptions</h2>
<ul>${assumptions}</ul>
<h2>How this was simulated</h2>
<p>The KSM engine of ksmkit (Linux 6.18's mm/ksm.c, line by line) over a simulated host of
${formatBytes(input.results[0]?.summary.guestMemoryBytes ?? 0)} of guest memory held as 64-bit page fingerprints,
ksmd batches on a virtual clock. Settings of the first run: ${settings}.</p>
<p>CPU cost per event (${escapeHtml(calibration.method)}; ${escapeHtml(calibration.measuredOn)}):
${escapeHtml(describeFigures(calibration.figures))}.</p>
</body></html>
`;
}
