/** `ksmkit probe` for people: the distributions as a table, then the attacker's score, time and leak rate. */
import Table from 'cli-table3';
import pc from 'picocolors';
import { samplesOf } from './json.ts';
import type { ProbeResult } from './probe.ts';
import { summarize, type TimingSummary } from './stats.ts';

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
/** Two decimals near the ends, so that 1 error in 5,000 does not read as 100.0%. */
const pct = (f: number): string => `${(f * 100).toFixed(f > 0.999 || f < 0.001 ? 2 : 1)}%`;

export function duration(seconds: number): string {
  if (seconds < 1e-3) return `${(seconds * 1e6).toFixed(0)} µs`;
  if (seconds < 1) return `${(seconds * 1000).toFixed(1)} ms`;
  return `${seconds.toFixed(2)} s`;
}

function pacing(result: ProbeResult): string {
  const o = result.options;
  const what =
    o.preset === 'default' ? 'the kernel defaults' : o.preset === 'unthrottled' ? 'unthrottled' : 'as given';
  return `pages_to_scan ${o.pagesToScan}, sleep_millisecs ${o.sleepMillisecs} (${what})`;
}

export function formatHuman(result: ProbeResult, options: { readonly color: boolean }): string[] {
  const c = options.color ? pc : pc.createColors(false);
  const o = result.options;
  const out: string[] = [];
  out.push(
    c.bold('ksmkit probe') +
      ': the KSM write-timing side channel, between two processes of ours on this machine',
  );
  out.push(
    `  Linux ${result.host.kernel}, ${result.host.cpu} ×${result.host.cpuCount}; ksmd ${pacing(result)}`,
  );
  out.push(
    `  victim: ${int(o.pages)} secret pages; attacker: ${int(o.pages)} guesses (half right), ` +
      `${o.calibrationPairs} identical pairs and ${o.calibrationPairs} unique pages to calibrate; ` +
      `seed ${o.seed}, ${o.rounds} round${o.rounds === 1 ? '' : 's'}`,
  );
  for (const p of result.otherMergeable) {
    out.push(
      c.yellow(`  note: pid ${p.pid} (${p.command}) is mergeable too: ksmd's passes include its pages`),
    );
  }
  out.push('');

  const s = samplesOf(result.rounds);
  const table = new Table({
    head: ['write time, ns', 'count', 'min', 'p1', 'p10', 'p50', 'p90', 'p99', 'max'],
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
    style: options.color ? { head: ['cyan'] } : { head: [], border: [] },
    colAligns: ['left', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right'],
  });
  const row = (label: string, t: TimingSummary | undefined): void => {
    if (t === undefined) table.push([label, '0', '', '', '', '', '', '', '']);
    else {
      const q = t.percentilesNs;
      table.push([
        label,
        int(t.count),
        int(t.minNs),
        int(q.p1),
        int(q.p10),
        int(q.p50),
        int(q.p90),
        int(q.p99),
        int(t.maxNs),
      ]);
    }
  };
  row('merged (right guesses)', summarize(s.merged));
  row('not merged (wrong guesses)', summarize(s.notMerged));
  row('calibration: paired pages', summarize(s.calibrationMerged));
  row('calibration: unique pages', summarize(s.calibrationPrivate));
  out.push(...table.toString().split('\n'));
  out.push('');

  const thresholds = result.rounds.map((r) => int(r.thresholdNs));
  out.push(
    `  threshold: ${thresholds.join(', ')} ns (from the attacker's own calibration writes, never the truth)`,
  );
  const sc = result.score;
  const verdict = sc.accuracy >= 0.9 ? c.red : sc.accuracy >= 0.6 ? c.yellow : c.green;
  out.push(
    `  accuracy ${verdict(pct(sc.accuracy))}: true positive rate ${pct(sc.truePositiveRate)}, ` +
      `false positive rate ${pct(sc.falsePositiveRate)} ` +
      `(TP ${sc.truePositives}, FP ${sc.falsePositives}, TN ${sc.trueNegatives}, FN ${sc.falseNegatives})`,
  );
  const attack = result.rounds.reduce((a, r) => a + r.attackNs, 0) / 1e9;
  const wait = result.rounds.reduce((a, r) => a + r.waitNs, 0) / 1e9;
  const writes = result.rounds.reduce((a, r) => a + r.writesNs, 0) / 1e9;
  const scans = result.rounds.map((r) => r.fullScans).join(', ');
  out.push(
    `  attack time: ${duration(attack)} from opting in to the last write ` +
      `(waiting for ksmd ${duration(wait)}, ${scans} full scan${scans === '1' ? '' : 's'}; the writes ${duration(writes)})`,
  );
  const l = result.leak;
  out.push(
    `  leak: ${int(l.guessesPerSecond)} guesses/s × (1 − H2(${sc.errorRate.toFixed(4)})) = ` +
      c.bold(`${l.bitsPerSecond.toFixed(1)} bits/s`) +
      ' (binary symmetric channel capacity per guess, times guesses per second)',
  );
  out.push(
    `        at least ${l.bitsPerSecondLower95.toFixed(1)} bits/s at the error rate's 95% upper bound ` +
      `${l.errorRateUpper95.toFixed(4)} (${int(l.guesses)} guesses)`,
  );
  const r = result.restored;
  out.push(
    r.ok
      ? `  ksmd's settings restored (run ${r.run})`
      : c.red(
          `  ksmd's settings NOT restored: ${[r.error, ...r.differing].filter((x) => x !== undefined).join('; ')} (run ${r.run})`,
        ),
  );
  return out;
}
