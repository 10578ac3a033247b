/**
 * One reading of what KSM is doing on a real host: every file of
 * /sys/kernel/mm/ksm and, per process, /proc/PID/ksm_stat and
 * /proc/PID/ksm_merging_pages. Both roots are injectable, so tests point them
 * at a temporary directory that imitates a kernel (including an old one whose
 * files are missing). Everything a kernel may lack is `null`, never an error:
 * the formatters say "not in this kernel".
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { KSM_SYSFS, KSM_SYSFS_DIR, sysfsValue } from '../../surface/sysfs.ts';
import type { ProcessKsm } from './live-protocol.ts';

export const DEFAULT_PROC_DIR = '/proc';
export const PAGE_SIZE = 4096;

export interface StatusSources {
  /** Default /sys/kernel/mm/ksm. */
  readonly ksmDir: string;
  /** Default /proc. */
  readonly procDir: string;
  /** Reads a whole file as text; tests replace it to imitate EACCES (root reads everything). */
  readonly readText?: (path: string) => string;
}

export const HOST_SOURCES: StatusSources = { ksmDir: KSM_SYSFS_DIR, procDir: DEFAULT_PROC_DIR };

/** One file of /sys/kernel/mm/ksm, as read (or not) on this kernel. */
export interface KsmFile {
  readonly name: string;
  /** A few words from the 6.18 table; '' for a file ksmkit does not know (a newer kernel). */
  readonly meaning: string;
  /** A setting (0644) rather than a counter (0444). */
  readonly writable: boolean;
  /** Whether src/surface/sysfs.ts describes it. */
  readonly known: boolean;
  /** `missing`: not in this kernel; `unreadable`: present but the read failed (see `error`). */
  readonly state: 'ok' | 'missing' | 'unreadable';
  /** The text without its trailing newline; null unless state is ok. */
  readonly text: string | null;
  /** An integer file as a number, advisor_mode as its selected word, anything else as its text. */
  readonly value: number | string | null;
  readonly error?: string;
}

/** Declared with the live page's protocol, which sends it as is (Node-free, the page compiles against it). */
export type { ProcessKsm } from './live-protocol.ts';

export interface StatusSnapshot {
  /** Wall-clock time of the reading (ms since the epoch). */
  readonly time: number;
  /** Monotonic time of the reading (ms), for rates. */
  readonly monotonicMs: number;
  readonly kernel: string;
  readonly ksmDir: string;
  /** Whether the kernel has KSM (the directory exists). */
  readonly available: boolean;
  /** Why not, when it has not (one clause). */
  readonly unavailableReason?: string;
  /** The known files in the table's order (missing ones included), then any unknown ones, sorted. */
  readonly files: readonly KsmFile[];
  /** Processes using KSM (or every process with an mm when asked), by profit. */
  readonly processes: readonly ProcessKsm[];
  /** Processes whose ksm_stat was read (kernel threads and zombies have none). */
  readonly processesRead: number;
  /** Processes whose ksm_stat could not be read (another user's, without root). */
  readonly unreadable: number;
  /** False on a kernel with no /proc/PID/ksm_stat at all (before 6.1). */
  readonly procKsmStat: boolean;
  /** ksm_stat lines this kernel lacks (e.g. ksm_merge_any before 6.14), in ksm_stat's order. */
  readonly missingStatLines: readonly string[];
}

export interface SnapshotOptions {
  /** Every process with an mm, not only those using KSM. */
  readonly allProcesses?: boolean;
}

const STAT_LINES = [
  'ksm_rmap_items',
  'ksm_zero_pages',
  'ksm_merging_pages',
  'ksm_process_profit',
  'ksm_merge_any',
  'ksm_mergeable',
] as const;

function errorCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * One buffer for every read. procfs and sysfs files report size 0, so
 * readFileSync allocates 64 KiB for each of them: a reading of a few hundred
 * processes made tens of MiB of garbage (and took 14 times as long) before
 * the live page's load test showed it. A file larger than the buffer (a very
 * long cmdline) is read whole the ordinary way.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

function defaultReadText(path: string): string {
  const fd = openSync(path, 'r');
  try {
    let length = 0;
    for (;;) {
      const n = readSync(fd, READ_BUFFER, length, READ_BUFFER.length - length, null);
      if (n === 0) return READ_BUFFER.toString('latin1', 0, length);
      length += n;
      if (length === READ_BUFFER.length) return readFileSync(path, 'latin1');
    }
  } finally {
    closeSync(fd);
  }
}

function readKsmFiles(sources: StatusSources): { available: boolean; files: KsmFile[] } {
  const read = sources.readText ?? defaultReadText;
  let present: Map<string, boolean>;
  try {
    present = new Map(
      readdirSync(sources.ksmDir).map((name) => {
        let writable = false;
        try {
          writable = (statSync(join(sources.ksmDir, name)).mode & 0o200) !== 0;
        } catch {
          // Vanished between readdir and stat: treated as read-only, the read below says more.
        }
        return [name, writable] as const;
      }),
    );
  } catch (e) {
    if (errorCode(e) !== 'ENOENT' && errorCode(e) !== 'ENOTDIR') throw e;
    const files = KSM_SYSFS.map(
      (a): KsmFile => ({
        name: a.name,
        meaning: a.meaning,
        writable: a.mode === 0o644,
        known: true,
        state: 'missing',
        text: null,
        value: null,
      }),
    );
    return { available: false, files };
  }
  const one = (name: string, meaning: string, writable: boolean, known: boolean): KsmFile => {
    const base = { name, meaning, writable, known };
    if (!present.has(name)) return { ...base, state: 'missing', text: null, value: null };
    try {
      const text = read(join(sources.ksmDir, name)).trimEnd();
      return { ...base, state: 'ok', text, value: sysfsValue(name, text) };
    } catch (e) {
      if (errorCode(e) === 'ENOENT') return { ...base, state: 'missing', text: null, value: null };
      return { ...base, state: 'unreadable', text: null, value: null, error: (e as Error).message };
    }
  };
  const files = KSM_SYSFS.map((a) => one(a.name, a.meaning, present.get(a.name) ?? a.mode === 0o644, true));
  const known = new Set(KSM_SYSFS.map((a) => a.name));
  for (const name of [...present.keys()].filter((n) => !known.has(n)).sort()) {
    files.push(one(name, '', present.get(name) ?? false, false));
  }
  return { available: true, files };
}

/** The lines of a ksm_stat, any kernel's version: numbers, and yes/no as booleans. */
export function parseKsmStatLines(text: string): Map<string, number | boolean> {
  const fields = new Map<string, number | boolean>();
  for (const line of text.split('\n')) {
    const m = /^(\w+):?\s+(\S+)\s*$/.exec(line);
    if (m === null) continue;
    const raw = m[2]!;
    if (raw === 'yes' || raw === 'no') fields.set(m[1]!, raw === 'yes');
    else if (/^-?\d+$/.test(raw)) fields.set(m[1]!, Number(raw));
  }
  return fields;
}

function numberField(fields: Map<string, number | boolean>, name: string): number | null {
  const v = fields.get(name);
  return typeof v === 'number' ? v : null;
}

function booleanField(fields: Map<string, number | boolean>, name: string): boolean | null {
  const v = fields.get(name);
  return typeof v === 'boolean' ? v : null;
}

/** Whether the process takes part in KSM in any way the table should show. */
export function usesKsm(p: ProcessKsm): boolean {
  return (
    p.mergeAny === true ||
    p.mergeable === true ||
    (p.rmapItems ?? 0) > 0 ||
    (p.mergingPages ?? 0) > 0 ||
    (p.zeroPages ?? 0) > 0
  );
}

/** By profit, highest first (unknown last), then merging pages, rmap items, pid. */
export function compareProcesses(a: ProcessKsm, b: ProcessKsm): number {
  const key = (v: number | null): number => v ?? Number.NEGATIVE_INFINITY;
  return (
    key(b.profit) - key(a.profit) ||
    key(b.mergingPages) - key(a.mergingPages) ||
    key(b.rmapItems) - key(a.rmapItems) ||
    a.pid - b.pid
  );
}

function readProcesses(
  sources: StatusSources,
  options: SnapshotOptions,
): Pick<StatusSnapshot, 'processes' | 'processesRead' | 'unreadable' | 'procKsmStat' | 'missingStatLines'> {
  const read = sources.readText ?? defaultReadText;
  let entries: string[];
  try {
    entries = readdirSync(sources.procDir).filter((e) => /^\d+$/.test(e));
  } catch (e) {
    if (errorCode(e) !== 'ENOENT') throw e;
    entries = [];
  }
  const processes: ProcessKsm[] = [];
  const seenLines = new Set<string>();
  let processesRead = 0;
  let unreadable = 0;
  let withoutFile = 0;
  for (const entry of entries) {
    const pid = Number(entry);
    const dir = join(sources.procDir, entry);
    let text: string;
    try {
      text = read(join(dir, 'ksm_stat'));
    } catch (e) {
      const code = errorCode(e);
      if (code === 'EACCES' || code === 'EPERM') unreadable++;
      else if (code === 'ENOENT') {
        // The process is gone, or this kernel has no ksm_stat.
        try {
          statSync(dir);
          withoutFile++;
        } catch {
          // Gone.
        }
      }
      continue;
    }
    // A kernel thread or a zombie: no mm, nothing printed.
    if (text.trim() === '') continue;
    processesRead++;
    const fields = parseKsmStatLines(text);
    for (const k of fields.keys()) seenLines.add(k);
    let mergingPages = numberField(fields, 'ksm_merging_pages');
    if (mergingPages === null) {
      // 6.1-6.3: ksm_stat has only ksm_rmap_items; the count is in its own file.
      try {
        const m = read(join(dir, 'ksm_merging_pages')).trim();
        if (/^\d+$/.test(m)) mergingPages = Number(m);
      } catch {
        // Not in this kernel, or the process went away: unknown.
      }
    }
    const p: ProcessKsm = {
      pid,
      comm: '',
      cmdline: '',
      mergingPages,
      rmapItems: numberField(fields, 'ksm_rmap_items'),
      zeroPages: numberField(fields, 'ksm_zero_pages'),
      profit: numberField(fields, 'ksm_process_profit'),
      mergeAny: booleanField(fields, 'ksm_merge_any'),
      mergeable: booleanField(fields, 'ksm_mergeable'),
    };
    if (options.allProcesses !== true && !usesKsm(p)) continue;
    processes.push({ ...p, ...commandOf(read, dir) });
  }
  processes.sort(compareProcesses);
  const procKsmStat = processesRead + unreadable > 0 || withoutFile === 0;
  const missingStatLines = processesRead > 0 ? STAT_LINES.filter((l) => !seenLines.has(l)) : [];
  return { processes, processesRead, unreadable, procKsmStat, missingStatLines };
}

function commandOf(read: (path: string) => string, dir: string): { comm: string; cmdline: string } {
  let comm = '?';
  try {
    comm = read(join(dir, 'comm')).replace(/\n$/, '');
  } catch {
    // Gone meanwhile.
  }
  let cmdline = '';
  try {
    cmdline = read(join(dir, 'cmdline')).replace(/\0+$/, '').replaceAll('\0', ' ');
  } catch {
    // Gone meanwhile.
  }
  return { comm, cmdline: cmdline === '' ? `[${comm}]` : cmdline };
}

function kernelRelease(sources: StatusSources): string {
  try {
    return (sources.readText ?? defaultReadText)(join(sources.procDir, 'sys/kernel/osrelease')).trim();
  } catch {
    return release();
  }
}

/** Reads everything once. Never throws for what a kernel may lack; throws for what it should not. */
export function readSnapshot(
  sources: StatusSources = HOST_SOURCES,
  options: SnapshotOptions = {},
): StatusSnapshot {
  const time = Date.now();
  const monotonicMs = performance.now();
  const { available, files } = readKsmFiles(sources);
  const notLinux = process.platform !== 'linux' && sources.ksmDir === KSM_SYSFS_DIR;
  return {
    time,
    monotonicMs,
    kernel: kernelRelease(sources),
    ksmDir: sources.ksmDir,
    available,
    ...(available
      ? {}
      : {
          unavailableReason: notLinux
            ? `KSM is a Linux feature, this is ${process.platform}`
            : `no ${sources.ksmDir}: CONFIG_KSM is off`,
        }),
    files,
    ...readProcesses(sources, options),
  };
}

/** The numeric value of a file, or null when it is missing or not a number. */
export function fileNumber(s: StatusSnapshot, name: string): number | null {
  const v = s.files.find((f) => f.name === name)?.value;
  return typeof v === 'number' ? v : null;
}

/** general_profit and the sharing ratio (mappings per KSM page). */
export interface Saving {
  readonly generalProfit: number | null;
  readonly pagesSharing: number | null;
  readonly pagesShared: number | null;
  /** pages_sharing / pages_shared; null when there is no KSM page (or a file is missing). */
  readonly sharingRatio: number | null;
}

export function savingOf(s: StatusSnapshot): Saving {
  const pagesSharing = fileNumber(s, 'pages_sharing');
  const pagesShared = fileNumber(s, 'pages_shared');
  return {
    generalProfit: fileNumber(s, 'general_profit'),
    pagesSharing,
    pagesShared,
    sharingRatio:
      pagesSharing !== null && pagesShared !== null && pagesShared > 0 ? pagesSharing / pagesShared : null,
  };
}

/** Per-second changes between two readings (for --watch). */
export interface Rates {
  readonly seconds: number;
  /** Δ pages_scanned / s. */
  readonly pagesScanned: number | null;
  /** Δ (pages_sharing + ksm_zero_pages) / s: mappings merged (negative when unmerged). */
  readonly merged: number | null;
  /** Δ full_scans / s. */
  readonly fullScans: number | null;
  /** Per pid: Δ (ksm_merging_pages + ksm_zero_pages) / s. */
  readonly processMerged: ReadonlyMap<number, number>;
}

export function ratesBetween(before: StatusSnapshot, after: StatusSnapshot): Rates {
  const seconds = Math.max((after.monotonicMs - before.monotonicMs) / 1000, 1e-9);
  const rate = (a: number | null, b: number | null): number | null =>
    a === null || b === null ? null : (b - a) / seconds;
  const merged = (s: StatusSnapshot): number | null => {
    const sharing = fileNumber(s, 'pages_sharing');
    return sharing === null ? null : sharing + (fileNumber(s, 'ksm_zero_pages') ?? 0);
  };
  const processMerged = new Map<number, number>();
  const previous = new Map(before.processes.map((p) => [p.pid, p]));
  for (const p of after.processes) {
    const q = previous.get(p.pid);
    if (q === undefined || p.mergingPages === null || q.mergingPages === null) continue;
    const now = p.mergingPages + (p.zeroPages ?? 0);
    const then = q.mergingPages + (q.zeroPages ?? 0);
    processMerged.set(p.pid, (now - then) / seconds);
  }
  return {
    seconds,
    pagesScanned: rate(fileNumber(before, 'pages_scanned'), fileNumber(after, 'pages_scanned')),
    merged: rate(merged(before), merged(after)),
    fullScans: rate(fileNumber(before, 'full_scans'), fileNumber(after, 'full_scans')),
    processMerged,
  };
}
