/**
 * What `ksmkit status --serve` pushes to the live page over server-sent
 * events (GET /events): one `hello` when a page connects (the last hour and
 * the current view), then one `tick` per reading. Types only and no Node or
 * DOM: the server (src/tools/status/live.ts) and the page (src/web/live/)
 * both compile against this file.
 *
 * A later panel (the doctor's verdicts) is one more optional field of
 * `LiveView`; a later kind of time-axis mark (the tuner's decisions) is one
 * more member of `LiveMark['kind']`.
 */

/** Bumped when a field changes meaning; the page refuses another version. */
export const LIVE_PROTOCOL_VERSION = 1;

/** The time series, in the order of `LivePoint.values`. */
export const LIVE_SERIES = [
  'general_profit',
  'pages_shared',
  'pages_sharing',
  'pages_unshared',
  'pages_volatile',
  'ksm_zero_pages',
  'full_scan_seconds',
  'ksmd_cpu_percent',
] as const;

export type LiveSeriesName = (typeof LIVE_SERIES)[number];

/** One reading: the wall time (ms since the epoch) and one value per series, null where unknown. */
export interface LivePoint {
  readonly timeMs: number;
  readonly values: ReadonlyArray<number | null>;
}

/** A moment worth a line on the time axis. */
export interface LiveMark {
  readonly timeMs: number;
  /** `settings`: a /sys/kernel/mm/ksm setting changed between two readings (by anyone). */
  readonly kind: 'settings';
  readonly text: string;
}

/** One writable /sys/kernel/mm/ksm file as read now. */
export interface LiveSetting {
  readonly name: string;
  /** The value as shown (advisor_mode as its selected word); null when missing or unreadable. */
  readonly value: string | null;
  readonly meaning: string;
}

/** How long a full scan takes at the settings in force. */
export interface LiveScanTime {
  /** Pages ksmd processes per full scan, and where that figure comes from. */
  readonly pagesPerScan: number | null;
  readonly pagesSource: 'measured' | 'rmap_items' | 'unknown';
  readonly pagesToScan: number | null;
  readonly sleepMillisecs: number | null;
  /** ⌊P / pages_to_scan⌋ + 1: a full scan always ends a batch. */
  readonly batchesPerScan: number | null;
  /** The period each sleep really takes (whole jiffies plus the tick the timer fires on). */
  readonly sleepPerBatchMs: number | null;
  /** ksmd's CPU per page processed, measured over the last full scans (ns). */
  readonly cpuNsPerPage: number | null;
  /** Sleep plus CPU for one full scan at these settings (s); null when it cannot be worked out. */
  readonly expectedSeconds: number | null;
  /** The last full scan as observed between readings (s), to the interval's resolution. */
  readonly measuredSeconds: number | null;
  /** Why no figure, or what to keep in mind (the advisor owns pages_to_scan, ksmd stopped, …). */
  readonly notes: readonly string[];
}

/** One process's KSM state (/proc/PID/ksm_stat); a field is null when this kernel's ksm_stat has no such line. */
export interface ProcessKsm {
  readonly pid: number;
  /** /proc/PID/comm. */
  readonly comm: string;
  /** /proc/PID/cmdline with spaces for NULs; `[comm]` when empty. */
  readonly cmdline: string;
  readonly mergingPages: number | null;
  readonly rmapItems: number | null;
  readonly zeroPages: number | null;
  /** ksm_process_profit, bytes (may be negative: rmap items cost 64 bytes each). */
  readonly profit: number | null;
  /** MMF_VM_MERGE_ANY: prctl(PR_SET_MEMORY_MERGE) is on (ksmkit exec). */
  readonly mergeAny: boolean | null;
  /** At least one VMA is VM_MERGEABLE (madvise or prctl). */
  readonly mergeable: boolean | null;
}

/** A process as the page gets it: its command line cut to 300 characters, control characters as `?`. */
export type LiveProcess = ProcessKsm;

/** What the user running the server can see, and what is hidden from it and why. */
export interface LiveVisibility {
  readonly uid: number | null;
  readonly root: boolean;
  /** Processes whose ksm_stat this user may not read (other users' processes without root). */
  readonly unreadableProcesses: number;
  /** One sentence per thing hidden. */
  readonly hidden: readonly string[];
}

/** Everything but the time series: replaced whole on each tick. */
export interface LiveView {
  readonly timeMs: number;
  readonly kernel: string;
  readonly available: boolean;
  readonly unavailableReason: string | null;
  /** The run file: 0 stopped, 1 merging, 2 unmerging; null when unknown. */
  readonly run: number | null;
  readonly settings: readonly LiveSetting[];
  readonly scanTime: LiveScanTime;
  /** Processes by profit, at most `processLimit` of them. */
  readonly processes: readonly LiveProcess[];
  readonly processesUsingKsm: number;
  readonly processLimit: number;
  readonly visibility: LiveVisibility;
  /** The reading failed (the page keeps the last good one). */
  readonly error: string | null;
}

export interface LiveHello {
  readonly version: number;
  readonly intervalMs: number;
  /** How much history the server keeps (ms). */
  readonly historyMs: number;
  readonly series: readonly LiveSeriesName[];
  readonly history: readonly LivePoint[];
  readonly marks: readonly LiveMark[];
  readonly view: LiveView;
}

export interface LiveTick {
  readonly point: LivePoint;
  /** Marks made by this reading. */
  readonly marks: readonly LiveMark[];
  readonly view: LiveView;
}
