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
  // As comments, which Prometheus and the textfile collector skip: as labels they would make a new series per reason.
  const set = r.dryRun ? describeChange(r.decision.settings) : describeChange(r.written);
  return `${out.text()}${REASON_COMMENT}${firstLine(r.decision.reason)}\n${SET_COMMENT}${set}\n`;
}

const REASON_COMMENT = '# ksmkit_tune_reason ';
const SET_COMMENT = '# ksmkit_tune_set ';

function firstLine(text: string): string {
  return text.split('\n', 1)[0]!.trim();
}

/** The last decision as read back from the daemon's file (the live page's marks). */
export interface TuneDecisionExport {
  /** Decisions made before it since the daemon started. */
  readonly seq: number;
  /** When it was made (ms since the epoch, to the second). */
  readonly timeMs: number;
  readonly policy: string;
  readonly action: string;
  readonly dryRun: boolean;
  /** What was written (what would have been, under dry-run): `pages_to_scan=… sleep_millisecs=…` or `no change`. */
  readonly set: string;
  readonly reason: string;
}

/** formatTuneMetrics read back; null when the text is not a whole decision (no file, another writer's file). */
export function parseTuneDecision(text: string): TuneDecisionExport | null {
  let info: Map<string, string> | undefined;
  let total: number | undefined;
  let seconds: number | undefined;
  let reason = '';
  let set = '';
  for (const line of text.split('\n')) {
    if (line.startsWith(REASON_COMMENT)) reason = line.slice(REASON_COMMENT.length);
    else if (line.startsWith(SET_COMMENT)) set = line.slice(SET_COMMENT.length);
    else if (line.startsWith('ksmkit_tune_decision_info{')) {
      info = new Map([...line.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]));
    } else if (line.startsWith('ksmkit_tune_decisions_total ')) total = Number(line.split(' ')[1]);
    else if (line.startsWith('ksmkit_tune_last_decision_timestamp_seconds '))
      seconds = Number(line.split(' ')[1]);
  }
  if (info === undefined || total === undefined || seconds === undefined) return null;
  if (!Number.isInteger(total) || total < 1 || !Number.isFinite(seconds)) return null;
  return {
    seq: total - 1,
    timeMs: seconds * 1000,
    policy: info.get('policy') ?? '?',
    action: info.get('action') ?? '?',
    dryRun: info.get('dry_run') === '1',
    set,
    reason,
  };
}

/** The daemon's file, for status to append; '' when there is none. */
export function readTuneMetrics(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}
