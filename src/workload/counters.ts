/**
 * The counters a workload may set, expect and compare, declared once.
 *
 * One row per file of /sys/kernel/mm/ksm (Linux 6.18) and per field of
 * /proc/PID/ksm_stat (plus /proc/PID/ksm_merging_pages). The schema takes the
 * allowed `ksm:`/`set:`/`expect:` names from here, and `diff` takes from here
 * which counters depend on wall-clock time. When src/surface/ gains its own
 * table of these files, this one should be derived from it.
 */

import type { KsmCounters } from '../backend/backend.ts';

/** What an `expect` value for the counter must be. */
export type CounterValueKind = 'integer' | 'advisor-mode' | 'yes-no';

export interface SysfsFileRow {
  /** Byte-exact file name under /sys/kernel/mm/ksm. */
  readonly name: string;
  /** Mode 0644: may be named in `ksm:` and `set:`. */
  readonly writable: boolean;
  readonly value: CounterValueKind;
  /**
   * When the value depends on wall-clock time at this step, `diff` reports it
   * but does not compare it. Absent: always compared exactly.
   */
  readonly wallClockWhen?: {
    readonly applies: (ksm: KsmCounters) => boolean;
    readonly why: string;
  };
}

const advisorScanTime = (ksm: KsmCounters): boolean => ksm.advisor_mode === 'scan-time';

/** Every file of /sys/kernel/mm/ksm in 6.18, settings first (the order of Documentation/admin-guide/mm/ksm.rst). */
export const KSM_SYSFS_FILES: readonly SysfsFileRow[] = [
  { name: 'run', writable: true, value: 'integer' },
  {
    name: 'pages_to_scan',
    writable: true,
    value: 'integer',
    wallClockWhen: {
      applies: advisorScanTime,
      why: 'the scan-time advisor recomputes pages_to_scan from the measured pass time and ksmd CPU time (mm/ksm.c scan_time_advisor)',
    },
  },
  { name: 'sleep_millisecs', writable: true, value: 'integer' },
  { name: 'merge_across_nodes', writable: true, value: 'integer' },
  { name: 'use_zero_pages', writable: true, value: 'integer' },
  { name: 'max_page_sharing', writable: true, value: 'integer' },
  { name: 'stable_node_chains_prune_millisecs', writable: true, value: 'integer' },
  { name: 'smart_scan', writable: true, value: 'integer' },
  { name: 'advisor_mode', writable: true, value: 'advisor-mode' },
  { name: 'advisor_max_cpu', writable: true, value: 'integer' },
  { name: 'advisor_min_pages_to_scan', writable: true, value: 'integer' },
  { name: 'advisor_max_pages_to_scan', writable: true, value: 'integer' },
  { name: 'advisor_target_scan_time', writable: true, value: 'integer' },
  { name: 'full_scans', writable: false, value: 'integer' },
  { name: 'pages_shared', writable: false, value: 'integer' },
  { name: 'pages_sharing', writable: false, value: 'integer' },
  { name: 'pages_unshared', writable: false, value: 'integer' },
  { name: 'pages_volatile', writable: false, value: 'integer' },
  { name: 'pages_scanned', writable: false, value: 'integer' },
  { name: 'pages_skipped', writable: false, value: 'integer' },
  { name: 'stable_node_chains', writable: false, value: 'integer' },
  { name: 'stable_node_dups', writable: false, value: 'integer' },
  { name: 'ksm_zero_pages', writable: false, value: 'integer' },
  { name: 'general_profit', writable: false, value: 'integer' },
];

export interface ProcessFieldRow {
  /** Byte-exact ksm_stat field name (without the colon of the yes/no lines). */
  readonly name: string;
  readonly value: CounterValueKind;
}

/** /proc/PID/ksm_stat in 6.18, in its line order; ksm_merging_pages is also its own file. */
export const KSM_STAT_FIELDS: readonly ProcessFieldRow[] = [
  { name: 'ksm_rmap_items', value: 'integer' },
  { name: 'ksm_zero_pages', value: 'integer' },
  { name: 'ksm_merging_pages', value: 'integer' },
  { name: 'ksm_process_profit', value: 'integer' },
  { name: 'ksm_merge_any', value: 'yes-no' },
  { name: 'ksm_mergeable', value: 'yes-no' },
];

export const WRITABLE_SYSFS_NAMES: readonly string[] = KSM_SYSFS_FILES.filter((row) => row.writable).map(
  (row) => row.name,
);

const SYSFS_BY_NAME: ReadonlyMap<string, SysfsFileRow> = new Map(
  KSM_SYSFS_FILES.map((row) => [row.name, row]),
);
const FIELD_BY_NAME: ReadonlyMap<string, ProcessFieldRow> = new Map(
  KSM_STAT_FIELDS.map((row) => [row.name, row]),
);

export function sysfsFile(name: string): SysfsFileRow | undefined {
  return SYSFS_BY_NAME.get(name);
}

export function processField(name: string): ProcessFieldRow | undefined {
  return FIELD_BY_NAME.get(name);
}

/**
 * A counter named in `expect:` or in a diff: a sysfs file, or `PROCESS.FIELD`.
 * Process names may contain dots but field names do not, so the last dot splits.
 */
export type CounterRef =
  | { readonly scope: 'ksm'; readonly name: string; readonly row: SysfsFileRow }
  | {
      readonly scope: 'process';
      readonly process: string;
      readonly field: string;
      readonly row: ProcessFieldRow;
    };

export function parseCounterRef(counter: string): CounterRef | undefined {
  const dot = counter.lastIndexOf('.');
  if (dot < 0) {
    const row = sysfsFile(counter);
    return row === undefined ? undefined : { scope: 'ksm', name: counter, row };
  }
  const process = counter.slice(0, dot);
  const field = counter.slice(dot + 1);
  const row = processField(field);
  if (row === undefined || process.length === 0) return undefined;
  return { scope: 'process', process, field, row };
}
