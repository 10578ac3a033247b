/**
 * The Prometheus text exposition format (version 0.0.4) of a status reading,
 * hand-written: `# HELP` and `# TYPE` once per metric family, then its samples.
 * Names follow Prometheus conventions: `ksm_` prefix, base units (seconds,
 * bytes, ratios), `_total` for counters. A file the kernel lacks gives no
 * sample (absent, as exporters do), never a made-up zero.
 */
import type { StatusSnapshot } from './snapshot.ts';

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

interface FileMetric {
  readonly metric: string;
  readonly type: 'gauge' | 'counter';
  /** Divides the file's value into the metric's unit (1000 for milliseconds to seconds). */
  readonly divisor?: number;
  /** Replaces the table's meaning where the unit changed. */
  readonly help?: string;
}

/** One family per /sys/kernel/mm/ksm file; advisor_mode is handled apart (one sample per mode). */
const FILE_METRICS: Readonly<Record<string, FileMetric>> = {
  run: { metric: 'ksm_run', type: 'gauge' },
  pages_to_scan: { metric: 'ksm_pages_to_scan', type: 'gauge' },
  sleep_millisecs: {
    metric: 'ksm_sleep_seconds',
    type: 'gauge',
    divisor: 1000,
    help: 'ksmd sleep between batches, seconds',
  },
  merge_across_nodes: { metric: 'ksm_merge_across_nodes', type: 'gauge' },
  use_zero_pages: { metric: 'ksm_use_zero_pages', type: 'gauge' },
  max_page_sharing: { metric: 'ksm_max_page_sharing', type: 'gauge' },
  stable_node_chains_prune_millisecs: {
    metric: 'ksm_stable_node_chains_prune_seconds',
    type: 'gauge',
    divisor: 1000,
    help: 'interval of stale dup pruning, seconds',
  },
  smart_scan: { metric: 'ksm_smart_scan', type: 'gauge' },
  advisor_max_cpu: {
    metric: 'ksm_advisor_max_cpu_ratio',
    type: 'gauge',
    divisor: 100,
    help: 'advisor: ksmd CPU cap, as a ratio (advisor_max_cpu percent / 100)',
  },
  advisor_min_pages_to_scan: { metric: 'ksm_advisor_min_pages_to_scan', type: 'gauge' },
  advisor_max_pages_to_scan: { metric: 'ksm_advisor_max_pages_to_scan', type: 'gauge' },
  advisor_target_scan_time: { metric: 'ksm_advisor_target_scan_time_seconds', type: 'gauge' },
  pages_scanned: { metric: 'ksm_pages_scanned_total', type: 'counter' },
  pages_shared: { metric: 'ksm_pages_shared', type: 'gauge' },
  pages_sharing: { metric: 'ksm_pages_sharing', type: 'gauge' },
  pages_unshared: { metric: 'ksm_pages_unshared', type: 'gauge' },
  pages_volatile: { metric: 'ksm_pages_volatile', type: 'gauge' },
  pages_skipped: { metric: 'ksm_pages_skipped_total', type: 'counter' },
  ksm_zero_pages: { metric: 'ksm_zero_pages', type: 'gauge' },
  general_profit: { metric: 'ksm_general_profit_bytes', type: 'gauge' },
  stable_node_chains: { metric: 'ksm_stable_node_chains', type: 'gauge' },
  stable_node_dups: { metric: 'ksm_stable_node_dups', type: 'gauge' },
  full_scans: { metric: 'ksm_full_scans_total', type: 'counter' },
};

/** `\` and newline escaped, as HELP text requires. */
export function escapeHelp(text: string): string {
  return text.replaceAll('\\', '\\\\').replaceAll('\n', '\\n');
}

/** `\`, `"` and newline escaped, as a label value requires. */
export function escapeLabelValue(text: string): string {
  return text.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
}

/** A metric name from anything: [a-zA-Z_:][a-zA-Z0-9_:]*. */
export function metricName(text: string): string {
  const name = text.replace(/[^a-zA-Z0-9_:]/g, '_');
  return /^[a-zA-Z_:]/.test(name) ? name : `_${name}`;
}

/** A sample value as Prometheus parses it (Go's ParseFloat, plus NaN and ±Inf). */
export function formatSampleValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

type Labels = ReadonlyArray<readonly [string, string]>;

class Exposition {
  private readonly lines: string[] = [];
  private readonly families = new Set<string>();

  family(
    name: string,
    type: 'gauge' | 'counter',
    help: string,
    samples: ReadonlyArray<[Labels, number]>,
  ): void {
    if (samples.length === 0) return;
    if (this.families.has(name)) throw new Error(`metric family ${name} written twice`);
    this.families.add(name);
    this.lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) {
      const l =
        labels.length === 0 ? '' : `{${labels.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
      this.lines.push(`${name}${l} ${formatSampleValue(value)}`);
    }
  }

  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

/** A family not read from the snapshot (ksmd's CPU, the server's own figures), one unlabelled sample. */
export interface ExtraFamily {
  readonly name: string;
  readonly type: 'gauge' | 'counter';
  readonly help: string;
  readonly value: number;
}

/** The whole exposition, global metrics, then per-process ones, then `extra`, ending in a newline. */
export function formatPrometheus(s: StatusSnapshot, extra: readonly ExtraFamily[] = []): string {
  const out = new Exposition();
  out.family('ksm_available', 'gauge', `1 when the kernel has KSM (${s.ksmDir} exists)`, [
    [[], s.available ? 1 : 0],
  ]);
  for (const f of s.files) {
    const help = `${f.meaning || 'not described by ksmkit'} (${s.ksmDir}/${f.name})`;
    if (f.name === 'advisor_mode') {
      if (f.text === null) continue;
      const modes = f.text.replace(/[[\]]/g, '').split(/\s+/).filter(Boolean);
      out.family(
        'ksm_advisor_mode',
        'gauge',
        help,
        modes.map((m) => [[['mode', m]], m === f.value ? 1 : 0]),
      );
      continue;
    }
    // A sample is a float64: an unsigned long beyond 2^53 (kept exact as text in --json) is exported rounded.
    const sample =
      typeof f.value === 'number'
        ? f.value
        : f.value !== null && /^-?\d+$/.test(f.value)
          ? Number(f.value)
          : null;
    if (sample === null) continue;
    const spec = FILE_METRICS[f.name];
    if (spec === undefined) {
      out.family(metricName(`ksm_${f.name}`), 'gauge', help, [[[], sample]]);
      continue;
    }
    const value = spec.divisor === undefined ? sample : sample / spec.divisor;
    out.family(
      spec.metric,
      spec.type,
      spec.help === undefined ? help : `${spec.help} (${s.ksmDir}/${f.name})`,
      [[[], value]],
    );
  }
  if (s.procKsmStat) {
    out.family(
      'ksm_processes_unreadable',
      'gauge',
      "processes whose /proc/PID/ksm_stat could not be read (other users' processes need root)",
      [[[], s.unreadable]],
    );
  }
  const perProcess = (
    name: string,
    help: string,
    pick: (p: StatusSnapshot['processes'][number]) => number | boolean | null,
  ): void => {
    const samples: Array<[Labels, number]> = [];
    for (const p of s.processes) {
      const v = pick(p);
      if (v === null) continue;
      samples.push([
        [
          ['pid', String(p.pid)],
          ['command', p.comm],
        ],
        typeof v === 'boolean' ? Number(v) : v,
      ]);
    }
    out.family(name, 'gauge', help, samples);
  };
  perProcess(
    'ksm_process_merging_pages',
    'pages of the process mapped to KSM pages (/proc/PID/ksm_merging_pages)',
    (p) => p.mergingPages,
  );
  perProcess(
    'ksm_process_rmap_items',
    'rmap items ksmd holds for the process (ksm_rmap_items)',
    (p) => p.rmapItems,
  );
  perProcess(
    'ksm_process_zero_pages',
    'empty pages of the process mapped to the zero page (ksm_zero_pages)',
    (p) => p.zeroPages,
  );
  perProcess(
    'ksm_process_profit_bytes',
    'bytes KSM saves for the process, net of its rmap items (ksm_process_profit)',
    (p) => p.profit,
  );
  perProcess(
    'ksm_process_mergeable',
    '1 when at least one VMA of the process is mergeable (ksm_mergeable)',
    (p) => p.mergeable,
  );
  perProcess(
    'ksm_process_merge_any',
    '1 when PR_SET_MEMORY_MERGE is on for the process (ksm_merge_any)',
    (p) => p.mergeAny,
  );
  for (const f of extra) out.family(f.name, f.type, f.help, [[[], f.value]]);
  return out.text();
}
