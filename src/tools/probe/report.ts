/**
 * `ksmkit probe --report FILE.html`: one self-contained page (inline SVG drawn
 * with Observable Plot on linkedom's DOM, inline CSS, no script) with the
 * histograms of merged and not merged write times, the attacker's threshold,
 * and the figures of the summary.
 */
import * as Plot from '@observablehq/plot';
import { escapeHtml, plotSvg } from '../../report/html.ts';
import { formatHuman } from './human.ts';
import { samplesOf } from './json.ts';
import type { ProbeResult } from './probe.ts';
import { logHistogram } from './stats.ts';

interface Bar {
  readonly kind: string;
  readonly x1: number;
  readonly x2: number;
  readonly count: number;
}

const BINS_PER_DECADE = 24;

function histogramFigure(
  classes: ReadonlyArray<{ readonly label: string; readonly valuesNs: readonly number[] }>,
  thresholdsNs: readonly number[],
): string {
  const all = classes.flatMap((c) => c.valuesNs);
  if (all.length === 0) return '<p>No samples.</p>';
  let lo = Number.POSITIVE_INFINITY;
  let hi = 0;
  for (const v of all) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const range = { loNs: Math.max(1, lo), hiNs: Math.max(hi, lo + 1), binsPerDecade: BINS_PER_DECADE };
  const bars: Bar[] = [];
  for (const c of classes) {
    for (const b of logHistogram(c.valuesNs, range)) {
      if (b.count > 0) bars.push({ kind: c.label, x1: b.fromNs, x2: b.toNs, count: b.count });
    }
  }
  return plotSvg({
    x: { type: 'log', label: 'one write, ns (log scale)', grid: true },
    y: { label: 'writes', grid: true },
    color: { legend: true, type: 'categorical', domain: classes.map((c) => c.label) },
    marks: [
      // Overlaid, not stacked: where the kinds overlap, both bars show.
      Plot.rect(bars, { x1: 'x1', x2: 'x2', y1: 0, y2: 'count', fill: 'kind', fillOpacity: 0.6, inset: 0 }),
      Plot.ruleX(thresholdsNs, { stroke: 'black', strokeDasharray: '4,3' }),
      Plot.ruleY([0]),
    ],
  });
}

export interface ProbeReportInput {
  readonly result: ProbeResult;
  readonly command: string;
  readonly generatedAt: string;
}

export function renderReport(input: ProbeReportInput): string {
  const { result } = input;
  const s = samplesOf(result.rounds);
  const thresholds = result.rounds.map((r) => r.thresholdNs);
  const guesses = histogramFigure(
    [
      { label: 'merged (right guess)', valuesNs: s.merged },
      { label: 'not merged (wrong guess)', valuesNs: s.notMerged },
    ],
    thresholds,
  );
  const calibration = histogramFigure(
    [
      { label: 'paired pages (merged)', valuesNs: s.calibrationMerged },
      { label: 'unique pages (private)', valuesNs: s.calibrationPrivate },
    ],
    thresholds,
  );
  const summary = formatHuman(result, { color: false }).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ksmkit probe</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 900px; color: #222; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 12px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
.note { color: #555; }
</style></head><body>
<h1>ksmkit probe: the KSM write-timing side channel on this machine</h1>
<p class="note">${escapeHtml(input.command)} — ${escapeHtml(input.generatedAt)}</p>
<p>A victim process holds secret pages; an attacker process maps guesses, half of them right, and both opt in to KSM.
Once ksmd merged what it could, a write to a merged page takes a write-protect fault and a copy (microseconds), a
write to a private page is a plain store (nanoseconds). The attacker times one write per guess and calls it merged
above its threshold, which it takes from pages of its own only (pairs it made identical, pages it made unique).</p>
<h2>Guesses: one write each</h2>
${guesses}
<p class="note">Dashed: the attacker's threshold${thresholds.length > 1 ? ' (one per round)' : ''}.</p>
<h2>The attacker's calibration pages</h2>
${calibration}
<h2>Summary</h2>
<pre>${escapeHtml(summary)}</pre>
</body></html>
`;
}
