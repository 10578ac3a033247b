/**
 * The live page's server side: one reading of /sys/kernel/mm/ksm, /proc and
 * ksmd's schedstat per interval, shared by every open page (ten pages cost
 * what one does), the last hour of it kept in a ring, and the readings pushed
 * to the pages as server-sent events, serialised once per reading.
 *
 * Derived figures:
 * - ksmd CPU: Δ schedstat ns over Δ wall time, as a percentage of one CPU;
 * - the last full scan's duration: the time between two readings that saw
 *   full_scans grow, divided by how much it grew (so to the interval's
 *   resolution); a stretch in which ksmd was stopped is not measured;
 * - the time a full scan takes at the settings in force: the pages of the
 *   last full scan (Δ pages_scanned) in batches of pages_to_scan, a sleep after
 *   each (estimate's model: whole jiffies), plus ksmd's measured CPU per page.
 */
import type { ServerResponse } from 'node:http';
import { findKsmdPid, readKsmdCpuNs } from '../../backend/kernel/ksmd-thread.ts';
import { estimateTime } from '../estimate/model.ts';
import { kernelHz } from '../estimate/settings.ts';
import { truncate } from './human.ts';
import {
  LIVE_PROTOCOL_VERSION,
  LIVE_SERIES,
  type LiveHello,
  type LiveMark,
  type LivePoint,
  type LiveProcess,
  type LiveScanTime,
  type LiveSeriesName,
  type LiveSetting,
  type LiveTick,
  type LiveView,
  type LiveVisibility,
} from './live-protocol.ts';
import {
  fileNumber,
  HOST_SOURCES,
  readSnapshot,
  type SnapshotOptions,
  type StatusSnapshot,
  type StatusSources,
} from './snapshot.ts';

export const HOUR_MS = 3_600_000;
export const DEFAULT_PROCESS_LIMIT = 500;
/** A command line is cut here: the table shows the start of it, the page's title attribute the rest. */
const CMDLINE_CHARS = 300;
/** Most marks kept, whatever the window: a setting flipped every reading must not grow the ring. */
const MARK_LIMIT = 1000;

export interface LiveSamplerOptions {
  readonly sources?: StatusSources;
  readonly snapshot?: SnapshotOptions;
  readonly intervalMs: number;
  /** How much history to keep (default an hour). */
  readonly historyMs?: number;
  readonly processLimit?: number;
  /** CONFIG_HZ (default: the running kernel's, as `estimate` reads it). */
  readonly hz?: number;
  /** The uid the readings are made as (default this process's). */
  readonly uid?: number | null;
  /** Reads ksmd's CPU time in ns (default: /proc/<ksmd>/schedstat under the sources' /proc). */
  readonly ksmdCpuNs?: () => number;
  /** Stamps each reading (default: the snapshot's own wall and monotonic clocks); tests step it. */
  readonly clock?: () => { readonly time: number; readonly monotonicMs: number };
}

/** Where the last full scan ended, as seen by a reading. */
interface ScanMark {
  readonly monotonicMs: number;
  readonly pagesScanned: number;
  readonly cpuNs: number | null;
}

interface Previous {
  readonly snapshot: StatusSnapshot;
  readonly cpuNs: number | null;
  readonly settings: ReadonlyMap<string, string | null>;
}

/** A fixed-size ring, oldest first when read. */
export class Ring<T> {
  private readonly items: Array<T | undefined>;
  private next = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`ring capacity ${capacity}`);
    this.items = new Array<T | undefined>(capacity);
  }

  push(item: T): void {
    this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
    this.count = Math.min(this.count + 1, this.capacity);
  }

  get size(): number {
    return this.count;
  }

  toArray(): T[] {
    const out: T[] = [];
    const start = (this.next - this.count + this.capacity) % this.capacity;
    for (let i = 0; i < this.count; i++) out.push(this.items[(start + i) % this.capacity]!);
    return out;
  }
}

/** Readings per history window, one more so the window is covered end to end. */
export function historyCapacity(historyMs: number, intervalMs: number): number {
  return Math.ceil(historyMs / intervalMs) + 1;
}

function settingText(f: StatusSnapshot['files'][number]): string | null {
  return f.value === null ? null : String(f.value);
}

function settingsOf(s: StatusSnapshot): Map<string, string | null> {
  return new Map(s.files.filter((f) => f.writable).map((f) => [f.name, settingText(f)]));
}

function processOf(p: StatusSnapshot['processes'][number]): LiveProcess {
  return { ...p, cmdline: truncate(p.cmdline, CMDLINE_CHARS) };
}

/** The settings that changed between two readings, as "name old → new". */
export function settingChanges(
  before: ReadonlyMap<string, string | null>,
  after: ReadonlyMap<string, string | null>,
): string[] {
  const advisorOwnsPagesToScan =
    before.get('advisor_mode') === 'scan-time' && after.get('advisor_mode') === 'scan-time';
  const changes: string[] = [];
  for (const [name, value] of after) {
    const old = before.get(name) ?? null;
    if (old === value) continue;
    // The scan-time advisor rewrites pages_to_scan after every full scan: that is its job, not a change of setting.
    if (name === 'pages_to_scan' && advisorOwnsPagesToScan) continue;
    changes.push(`${name} ${old ?? '?'} → ${value ?? '?'}`);
  }
  return changes;
}

export class LiveSampler {
  readonly intervalMs: number;
  readonly historyMs: number;
  private readonly sources: StatusSources;
  private readonly snapshotOptions: SnapshotOptions;
  private readonly processLimit: number;
  private readonly hz: number;
  private readonly uid: number | null;
  private readonly readCpuNs: () => number;
  private readonly clock: LiveSamplerOptions['clock'];
  private readonly points: Ring<LivePoint>;
  private marks: LiveMark[] = [];
  private previous: Previous | undefined;
  private lastScanEnd: ScanMark | undefined;
  /** ksmd was not running at some reading since lastScanEnd: the next full scan's time is not its own. */
  private interrupted = false;
  private measuredSeconds: number | null = null;
  private measuredPages: number | null = null;
  private cpuNsPerPage: number | null = null;
  private ksmdPid: number | undefined;
  private ksmdError: string | null = null;
  private lastView: LiveView | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly listeners = new Set<(tick: LiveTick) => void>();

  constructor(options: LiveSamplerOptions) {
    if (!(options.intervalMs > 0)) throw new Error(`interval ${options.intervalMs} ms: must be positive`);
    this.intervalMs = options.intervalMs;
    this.historyMs = options.historyMs ?? HOUR_MS;
    this.sources = options.sources ?? HOST_SOURCES;
    this.snapshotOptions = options.snapshot ?? {};
    this.processLimit = options.processLimit ?? DEFAULT_PROCESS_LIMIT;
    this.hz = options.hz ?? kernelHz().hz;
    this.uid = options.uid !== undefined ? options.uid : (process.getuid?.() ?? null);
    this.readCpuNs = options.ksmdCpuNs ?? (() => this.readKsmdCpuFromProc());
    this.clock = options.clock;
    this.points = new Ring(historyCapacity(this.historyMs, this.intervalMs));
  }

  private readKsmdCpuFromProc(): number {
    const procDir = this.sources.procDir;
    if (this.ksmdPid !== undefined) {
      try {
        return readKsmdCpuNs(this.ksmdPid, procDir);
      } catch {
        // ksmd does not go away, but a fixture's may: look it up again.
        this.ksmdPid = undefined;
      }
    }
    this.ksmdPid = findKsmdPid(procDir);
    return readKsmdCpuNs(this.ksmdPid, procDir);
  }

  /** ksmd's CPU time so far (s), read now; null when it cannot be read. */
  ksmdCpuSeconds(): number | null {
    const ns = this.cpuNow();
    return ns === null ? null : ns / 1e9;
  }

  private cpuNow(): number | null {
    try {
      const ns = this.readCpuNs();
      this.ksmdError = null;
      return ns;
    } catch (e) {
      this.ksmdError = (e as Error).message;
      return null;
    }
  }

  /** One reading: the point, the marks it made, the view. Also what the timer does each interval. */
  sample(): LiveTick {
    let snapshot: StatusSnapshot;
    try {
      snapshot = readSnapshot(this.sources, this.snapshotOptions);
      if (this.clock !== undefined) snapshot = { ...snapshot, ...this.clock() };
    } catch (e) {
      return this.failed((e as Error).message);
    }
    const cpuNs = this.cpuNow();
    const settings = settingsOf(snapshot);
    const prev = this.previous;
    const marks: LiveMark[] = [];
    if (prev !== undefined) {
      const changes = settingChanges(prev.settings, settings);
      if (changes.length > 0)
        marks.push({ timeMs: snapshot.time, kind: 'settings', text: changes.join(', ') });
    }
    this.trackFullScans(snapshot, cpuNs);
    const cpuPercent =
      prev === undefined || prev.cpuNs === null || cpuNs === null
        ? null
        : ((cpuNs - prev.cpuNs) / ((snapshot.monotonicMs - prev.snapshot.monotonicMs) * 1e6)) * 100;
    const values = LIVE_SERIES.map((name: LiveSeriesName): number | null => {
      switch (name) {
        case 'full_scan_seconds':
          return this.measuredSeconds;
        case 'ksmd_cpu_percent':
          return cpuPercent === null ? null : Math.max(0, cpuPercent);
        default:
          return fileNumber(snapshot, name);
      }
    });
    const point: LivePoint = { timeMs: snapshot.time, values };
    this.points.push(point);
    this.addMarks(marks, snapshot.time);
    this.previous = { snapshot, cpuNs, settings };
    const view = this.viewOf(snapshot);
    this.lastView = view;
    const tick: LiveTick = { point, marks, view };
    for (const listener of this.listeners) listener(tick);
    return tick;
  }

  private failed(message: string): LiveTick {
    const timeMs = this.clock?.().time ?? Date.now();
    const point: LivePoint = { timeMs, values: LIVE_SERIES.map(() => null) };
    this.points.push(point);
    const view: LiveView = { ...(this.lastView ?? this.emptyView(timeMs)), timeMs, error: message };
    this.lastView = view;
    const tick: LiveTick = { point, marks: [], view };
    for (const listener of this.listeners) listener(tick);
    return tick;
  }

  private emptyView(timeMs: number): LiveView {
    return {
      timeMs,
      kernel: '',
      available: false,
      unavailableReason: null,
      run: null,
      settings: [],
      scanTime: this.scanTimeOf(undefined),
      processes: [],
      processesUsingKsm: 0,
      processLimit: this.processLimit,
      visibility: { uid: this.uid, root: this.uid === 0, unreadableProcesses: 0, hidden: [] },
      error: null,
    };
  }

  private trackFullScans(s: StatusSnapshot, cpuNs: number | null): void {
    const fullScans = fileNumber(s, 'full_scans');
    const pagesScanned = fileNumber(s, 'pages_scanned');
    const prevFullScans =
      this.previous === undefined ? null : fileNumber(this.previous.snapshot, 'full_scans');
    if (fileNumber(s, 'run') !== 1) this.interrupted = true;
    if (fullScans === null || pagesScanned === null || prevFullScans === null || fullScans <= prevFullScans) {
      return;
    }
    const completed = fullScans - prevFullScans;
    const here: ScanMark = { monotonicMs: s.monotonicMs, pagesScanned, cpuNs };
    const from = this.lastScanEnd;
    if (from !== undefined && !this.interrupted) {
      this.measuredSeconds = (here.monotonicMs - from.monotonicMs) / completed / 1000;
      const pages = here.pagesScanned - from.pagesScanned;
      this.measuredPages = pages / completed;
      if (pages > 0 && here.cpuNs !== null && from.cpuNs !== null) {
        this.cpuNsPerPage = (here.cpuNs - from.cpuNs) / pages;
      }
    }
    this.lastScanEnd = here;
    this.interrupted = false;
  }

  private addMarks(marks: readonly LiveMark[], nowMs: number): void {
    const oldest = nowMs - this.historyMs;
    if (marks.length === 0 && (this.marks[0]?.timeMs ?? nowMs) >= oldest) return;
    this.marks = [...this.marks, ...marks].filter((m) => m.timeMs >= oldest).slice(-MARK_LIMIT);
  }

  private scanTimeOf(s: StatusSnapshot | undefined): LiveScanTime {
    const notes: string[] = [];
    const pagesToScan = s === undefined ? null : fileNumber(s, 'pages_to_scan');
    const sleepMillisecs = s === undefined ? null : fileNumber(s, 'sleep_millisecs');
    let pagesPerScan: number | null = null;
    let pagesSource: LiveScanTime['pagesSource'] = 'unknown';
    const rmapItems = s?.processes.flatMap((p) => (p.rmapItems === null ? [] : [p.rmapItems]));
    if (this.measuredPages !== null) {
      pagesPerScan = Math.round(this.measuredPages);
      pagesSource = 'measured';
    } else if (rmapItems !== undefined && rmapItems.length > 0) {
      pagesPerScan = rmapItems.reduce((sum, n) => sum + n, 0);
      pagesSource = 'rmap_items';
      notes.push(
        'pages per full scan from the processes’ rmap items until a full scan has been watched' +
          ((s?.unreadable ?? 0) > 0 ? ' (a lower bound: other users’ processes are hidden)' : ''),
      );
    }
    if (s !== undefined) {
      const run = fileNumber(s, 'run');
      if (run === 0) notes.push('ksmd is stopped (run = 0): no full scan happens');
      if (run === 2) notes.push('run = 2: ksmd unmerges everything and scans nothing');
      if (s.files.find((f) => f.name === 'advisor_mode')?.value === 'scan-time') {
        const target = fileNumber(s, 'advisor_target_scan_time');
        notes.push(
          `the advisor (advisor_mode scan-time) sets pages_to_scan after each full scan, aiming at ` +
            `${target ?? '?'} s a full scan`,
        );
      }
      if (pagesToScan === 0) notes.push('pages_to_scan = 0: ksmd wakes but never completes a full scan');
    }
    if (this.measuredSeconds === null) {
      notes.push('no full scan measured yet: that takes two full_scans increments while the server watches');
    }
    let batchesPerScan: number | null = null;
    let sleepPerBatchMs: number | null = null;
    let expectedSeconds: number | null = null;
    if (pagesPerScan !== null && pagesToScan !== null && pagesToScan > 0 && sleepMillisecs !== null) {
      const t = estimateTime({
        pagesPerPass: pagesPerScan,
        zeroPageMerges: 0,
        anythingMerges: false,
        pagesToScan,
        sleepMillisecs,
        hz: this.hz,
      });
      batchesPerScan = t.batchesPerPass;
      sleepPerBatchMs = t.sleepPerBatchMs;
      const cpuSeconds = this.cpuNsPerPage === null ? 0 : (pagesPerScan * this.cpuNsPerPage) / 1e9;
      if (this.cpuNsPerPage === null)
        notes.push('ksmd’s own CPU time is not in the figure until it is measured');
      expectedSeconds = t.passSeconds + cpuSeconds;
    }
    return {
      pagesPerScan,
      pagesSource,
      pagesToScan,
      sleepMillisecs,
      batchesPerScan,
      sleepPerBatchMs,
      cpuNsPerPage: this.cpuNsPerPage,
      expectedSeconds,
      measuredSeconds: this.measuredSeconds,
      notes,
    };
  }

  private visibilityOf(s: StatusSnapshot): LiveVisibility {
    const hidden: string[] = [];
    if (s.unreadable > 0) {
      hidden.push(
        `${s.unreadable} process${s.unreadable === 1 ? '' : 'es'} not shown: reading another user's ` +
          '/proc/PID/ksm_stat needs root, so the process table and the rmap-item count are partial',
      );
    }
    if (this.ksmdError !== null) hidden.push(`ksmd CPU: ${this.ksmdError}`);
    for (const f of s.files) {
      if (f.state === 'unreadable') hidden.push(`${s.ksmDir}/${f.name}: ${f.error ?? 'unreadable'}`);
    }
    return { uid: this.uid, root: this.uid === 0, unreadableProcesses: s.unreadable, hidden };
  }

  private viewOf(s: StatusSnapshot): LiveView {
    const settings: LiveSetting[] = s.files
      .filter((f) => f.writable)
      .map((f) => ({ name: f.name, value: settingText(f), meaning: f.meaning }));
    return {
      timeMs: s.time,
      kernel: s.kernel,
      available: s.available,
      unavailableReason: s.unavailableReason ?? null,
      run: fileNumber(s, 'run'),
      settings,
      scanTime: this.scanTimeOf(s),
      processes: s.processes.slice(0, this.processLimit).map(processOf),
      processesUsingKsm: s.processes.length,
      processLimit: this.processLimit,
      visibility: this.visibilityOf(s),
      error: null,
    };
  }

  /** What a page gets when it connects: the history, the marks, the current view. */
  hello(): LiveHello {
    return {
      version: LIVE_PROTOCOL_VERSION,
      intervalMs: this.intervalMs,
      historyMs: this.historyMs,
      series: LIVE_SERIES,
      history: this.points.toArray(),
      marks: this.marks,
      view: this.lastView ?? this.sample().view,
    };
  }

  onTick(listener: (tick: LiveTick) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A reading now, then one every interval until stop(). */
  start(): void {
    if (this.timer !== undefined) return;
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** Pages connected to /events; above it a new one gets 503 (the server's memory stays bounded). */
export const DEFAULT_MAX_CLIENTS = 256;
/** A page that has not taken this much of what was sent is dropped (it reconnects and gets a fresh hello). */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

function sseEvent(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** The open pages: each reading is serialised once and written to all of them. */
export class LiveEvents {
  private readonly clients = new Set<ServerResponse>();
  private readonly unsubscribe: () => void;
  /** Pages dropped for not keeping up, since start. */
  dropped = 0;

  constructor(
    private readonly sampler: LiveSampler,
    private readonly maxClients = DEFAULT_MAX_CLIENTS,
  ) {
    // Encoded once: every page is sent the same bytes.
    this.unsubscribe = sampler.onTick((tick) => this.broadcast(Buffer.from(sseEvent('tick', tick))));
  }

  get size(): number {
    return this.clients.size;
  }

  /** Takes over the response; false (and a 503 sent) when the server has as many pages as it serves. */
  add(res: ServerResponse): boolean {
    if (this.clients.size >= this.maxClients) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '10' });
      res.end(`too many open pages (${this.maxClients}): close one and reload\n`);
      return false;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: ${Math.max(1000, this.sampler.intervalMs)}\n\n`);
    res.write(sseEvent('hello', this.sampler.hello()));
    this.clients.add(res);
    res.on('close', () => this.clients.delete(res));
    return true;
  }

  private broadcast(message: Buffer): void {
    for (const res of this.clients) {
      if (res.writableLength > MAX_BUFFERED_BYTES) {
        this.dropped++;
        this.clients.delete(res);
        res.destroy();
        continue;
      }
      res.write(message);
    }
  }

  close(): void {
    this.unsubscribe();
    for (const res of this.clients) res.end();
    this.clients.clear();
  }
}
