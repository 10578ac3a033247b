/**
 * `ksmkit status --json`: one object for scripts (with --watch, one per line).
 * Missing files and ksm_stat lines are null; byte values are bytes.
 */
import { type Rates, type StatusSnapshot, savingOf } from './snapshot.ts';

export interface StatusJson {
  readonly time: string;
  readonly kernel: string;
  readonly ksm_available: boolean;
  readonly sysfs_dir: string;
  /** Every file: value (number, advisor_mode's word, or null when not in this kernel), meaning, writable. */
  readonly sysfs: Record<
    string,
    {
      value: number | string | null;
      meaning: string;
      writable: boolean;
      state: 'ok' | 'missing' | 'unreadable';
    }
  >;
  readonly saving: {
    general_profit_bytes: number | null;
    pages_sharing: number | null;
    pages_shared: number | null;
    sharing_ratio: number | null;
  };
  readonly processes: Array<{
    pid: number;
    command: string;
    cmdline: string;
    merging_pages: number | null;
    rmap_items: number | null;
    zero_pages: number | null;
    profit_bytes: number | null;
    mergeable: boolean | null;
    merge_any: boolean | null;
  }>;
  readonly processes_read: number;
  readonly processes_unreadable: number;
  readonly proc_ksm_stat: boolean;
  readonly missing_ksm_stat_lines: readonly string[];
  readonly notes: readonly string[];
  readonly rates?: {
    interval_seconds: number;
    pages_scanned_per_second: number | null;
    merged_per_second: number | null;
    full_scans_per_second: number | null;
  };
}

export function notesOf(s: StatusSnapshot): string[] {
  const notes: string[] = [];
  if (!s.available) notes.push(`KSM is not in this kernel: ${s.unavailableReason}`);
  for (const f of s.files) {
    if (f.state === 'missing' && s.available) notes.push(`${f.name}: not in this kernel`);
  }
  if (!s.procKsmStat) notes.push('/proc/PID/ksm_stat: not in this kernel (it needs Linux 6.1 or later)');
  for (const line of s.missingStatLines) notes.push(`ksm_stat line ${line}: not in this kernel`);
  if (s.unreadable > 0)
    notes.push(`${s.unreadable} processes' /proc/PID/ksm_stat unreadable: other users' processes need root`);
  return notes;
}

export function toJson(s: StatusSnapshot, rates?: Rates): StatusJson {
  const saving = savingOf(s);
  const json: StatusJson = {
    time: new Date(s.time).toISOString(),
    kernel: s.kernel,
    ksm_available: s.available,
    sysfs_dir: s.ksmDir,
    sysfs: Object.fromEntries(
      s.files.map((f) => [
        f.name,
        { value: f.value, meaning: f.meaning, writable: f.writable, state: f.state },
      ]),
    ),
    saving: {
      general_profit_bytes: saving.generalProfit,
      pages_sharing: saving.pagesSharing,
      pages_shared: saving.pagesShared,
      sharing_ratio: saving.sharingRatio,
    },
    processes: s.processes.map((p) => ({
      pid: p.pid,
      command: p.comm,
      cmdline: p.cmdline,
      merging_pages: p.mergingPages,
      rmap_items: p.rmapItems,
      zero_pages: p.zeroPages,
      profit_bytes: p.profit,
      mergeable: p.mergeable,
      merge_any: p.mergeAny,
    })),
    processes_read: s.processesRead,
    processes_unreadable: s.unreadable,
    proc_ksm_stat: s.procKsmStat,
    missing_ksm_stat_lines: s.missingStatLines,
    notes: notesOf(s),
  };
  if (rates === undefined) return json;
  return {
    ...json,
    rates: {
      interval_seconds: rates.seconds,
      pages_scanned_per_second: rates.pagesScanned,
      merged_per_second: rates.merged,
      full_scans_per_second: rates.fullScans,
    },
  };
}
