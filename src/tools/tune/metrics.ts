/**
 * The tuner's last decision in the Prometheus text format: written by the
 * daemon after every step to a file (default /run/ksmkit/tune.prom, a
 * node_exporter textfile-collector file too), and appended by
 * `ksmkit status --prometheus` and `--serve` when it is there.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describeChange } from '../../tuner/inputs.ts';
import type { DecisionRecord } from '../../tuner/loop.ts';
import { Exposition } from '../status/prometheus.ts';

export const DEFAULT_TUNE_METRICS_FILE = '/run/ksmkit/tune.prom';

export function formatTuneMetrics(r: DecisionRecord, nowMs = Date.now()): string {
  const out = new Exposition();
  const s = r.decision.settings;
  out.family(
    'ksmkit_tune_decision_info',
    'gauge',
    'the last decision of ksmkit tune: its policy and action',
    [
      [
        [
          ['policy', r.policy],
          ['action', r.decision.action],
          ['dry_run', r.dryRun ? '1' : '0'],
        ],
        1,
      ],
    ],
  );
  out.family('ksmkit_tune_decisions_total', 'counter', 'decisions made since the daemon started', [
    [[], r.seq + 1],
  ]);
  out.family(
    'ksmkit_tune_last_decision_timestamp_seconds',
    'gauge',
    'when the last decision was made (Unix time)',
    [[[], Math.round(nowMs / 1000)]],
  );
  const decided: Array<[string, number | undefined, number, string]> = [
    ['ksmkit_tune_run', s.run, 1, 'run as decided (absent: left as it was)'],
    ['ksmkit_tune_pages_to_scan', s.pages_to_scan, 1, 'pages_to_scan as decided'],
    ['ksmkit_tune_sleep_seconds', s.sleep_millisecs, 1000, 'sleep_millisecs as decided, seconds'],
  ];
  for (const [name, value, divisor, help] of decided) {
    if (value !== undefined) out.family(name, 'gauge', help, [[[], value / divisor]]);
  }
  const m = r.measured;
  if (m !== undefined) {
    out.family('ksmkit_tune_ksmd_cpu_ratio', 'gauge', "ksmd's CPU over the last interval, ratio of one CPU", [
      [[], m.ksmdCpuPercent / 100],
    ]);
    if (m.fullScanS !== undefined)
      out.family(
        'ksmkit_tune_full_scan_seconds',
        'gauge',
        'measured time of one full scan at the present rate',
        [[[], m.fullScanS]],
      );
  }
  out.family(
    'ksmkit_tune_cow_headroom_bytes',
    'gauge',
    'MemAvailable + SwapFree left if every merged page were written at once (may be negative)',
    [[[], r.cowLeftKb * 1024]],
  );
  out.family(
    'ksmkit_tune_warnings',
    'gauge',
    'warnings in the last decision (target and budget unmet, COW headroom)',
    [[[], r.decision.warnings.length]],
  );
  return out.text();
}

/** The last decision as the daemon exports it beside the metrics (the live page's marks). */
export interface TuneDecisionExport {
  /** Decisions made before it since the daemon started. */
  readonly seq: number;
  /** When it was made (ms since the epoch). */
  readonly timeMs: number;
  readonly policy: string;
  readonly action: string;
  readonly dryRun: boolean;
  /** What was written (what would have been, under dry-run): `pages_to_scan=… sleep_millisecs=…` or `no change`. */
  readonly set: string;
  /** The first line of the reason. */
  readonly reason: string;
}

/**
 * Where the daemon writes its last decision as JSON: beside the metrics file, free text (the reason) having no clean
 * place in the Prometheus format (a label would make a series per reason); not `.prom`, so the textfile collector
 * passes it by.
 */
export function tuneDecisionFile(metricsFile: string): string {
  return `${metricsFile.replace(/\.prom$/, '')}.decision.json`;
}

export function formatTuneDecision(r: DecisionRecord, nowMs = Date.now()): string {
  const d: TuneDecisionExport = {
    seq: r.seq,
    timeMs: nowMs,
    policy: r.policy,
    action: r.decision.action,
    dryRun: r.dryRun,
    set: describeChange(r.dryRun ? r.decision.settings : r.written),
    reason: r.decision.reason.split('\n', 1)[0]!.trim(),
  };
  return `${JSON.stringify(d)}\n`;
}

/** formatTuneDecision read back; null when the text is not one (no file, another writer's file). */
export function parseTuneDecision(text: string): TuneDecisionExport | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  const strings = ['policy', 'action', 'set', 'reason'] as const;
  if (!Number.isInteger(o.seq) || (o.seq as number) < 0 || !Number.isFinite(o.timeMs)) return null;
  if (typeof o.dryRun !== 'boolean' || strings.some((k) => typeof o[k] !== 'string')) return null;
  return {
    seq: o.seq as number,
    timeMs: o.timeMs as number,
    policy: o.policy as string,
    action: o.action as string,
    dryRun: o.dryRun,
    set: o.set as string,
    reason: o.reason as string,
  };
}

/** The daemon's file, for status to append; '' when there is none. */
export function readTuneMetrics(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}
