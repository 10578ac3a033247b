/**
 * Building a twin (twin.ts) from what this host runs, or from memory dumps,
 * with the readers `ksmkit estimate` uses (src/tools/estimate: smaps and
 * pagemap decide which pages ksmd would scan, /proc/PID/mem or the dump gives
 * their bytes, each page hashed to a 64-bit key as it is read).
 *
 * From the host the processes are read `samples` times, `intervalMs` apart
 * (start to start); the last sample is the twin's contents, and the pages that
 * changed between samples give the volatile regions and their rates
 * (volatileRegions). Nothing is written anywhere: KSM may stay off.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { hostname, release } from 'node:os';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LINUX_DEFAULTS } from '../backend/kernel/kernel-backend.ts';
import { selectedWord } from '../backend/kernel/ksm-sysfs.ts';
import { KSM_SYSFS } from '../surface/sysfs.ts';
import { type DumpFormat, layoutDump, scanDump } from '../tools/estimate/dump-source.ts';
import { selectProcesses } from '../tools/estimate/estimate.ts';
import type { PageSink } from '../tools/estimate/page-counter.ts';
import { KPageFlags, planProcess, scanProcess } from '../tools/estimate/proc-source.ts';
import { NO_PROGRESS } from '../tools/estimate/progress.ts';
import { DEFAULT_READ_BYTES, defaultThreads, openReader, type PageReader } from '../tools/estimate/reader.ts';
import { KSM_SYSFS_DIR } from '../tools/estimate/settings.ts';
import type { SysfsSetting } from '../workload/workload.ts';
import { ksmdPid, ksmdSchedstat } from './kernel-run.ts';
import { TWIN_VERSION, type Twin, type TwinProcess, type TwinVma, volatileRegions } from './twin.ts';

const PAGE_BYTES = 4096;

/** The pages of one process (or dump) as read once: addresses ascending, keys (low, high) beside. */
export interface PageSet {
  readonly addresses: Float64Array;
  readonly keys: Uint32Array;
}

/**
 * A PageSink that keeps every page: its address and its fingerprint (twin.ts:
 * its first two bytes, then 48 bits of its XXH64), the all-zero page as (0, 0),
 * the engine's zero contents.
 */
export class PageRecorder implements PageSink {
  private addresses = new Float64Array(1 << 12);
  private keys = new Uint32Array(2 << 12);
  private n = 0;

  count(
    keys: Uint32Array,
    i: number,
    isZero: boolean,
    _frame: number,
    address: number,
    prefix: number,
  ): void {
    if (this.n === this.addresses.length) {
      const a = new Float64Array(this.n * 2);
      a.set(this.addresses);
      this.addresses = a;
      const k = new Uint32Array(this.n * 4);
      k.set(this.keys);
      this.keys = k;
    }
    let lo = keys[2 * i]!;
    // The page's first two bytes lead (fingerprint order is memcmp order
    // there: twin.ts), 48 bits of its XXH64 follow.
    let hi = ((prefix << 16) | (keys[2 * i + 1]! & 0xffff)) >>> 0;
    if (isZero) {
      lo = 0;
      hi = 0;
    } else if (lo === 0 && hi === 0) {
      // A page that is not empty with the empty page's value: keep it apart.
      hi = 1;
    }
    this.addresses[this.n] = address;
    this.keys[2 * this.n] = lo;
    this.keys[2 * this.n + 1] = hi;
    this.n++;
  }

  /** What was recorded, in address order; the recorder starts empty again. */
  take(): PageSet {
    const n = this.n;
    let addresses = this.addresses.slice(0, n);
    let keys = this.keys.slice(0, 2 * n);
    this.n = 0;
    let sorted = true;
    for (let i = 1; i < n && sorted; i++) sorted = addresses[i - 1]! < addresses[i]!;
    if (!sorted) {
      // Reader threads may hand jobs back out of order: put the pages in address order (scan order).
      const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => addresses[a]! - addresses[b]!);
      const a = new Float64Array(n);
      const k = new Uint32Array(2 * n);
      order.forEach((from, to) => {
        a[to] = addresses[from]!;
        k[2 * to] = keys[2 * from]!;
        k[2 * to + 1] = keys[2 * from + 1]!;
      });
      addresses = a;
      keys = k;
    }
    return { addresses, keys };
  }
}

/**
 * For each page of `last`, in how many of the intervals between consecutive
 * `samples` it changed: it was not there at the start of the interval, or its
 * key differed. Pages are matched by address (both lists ascending).
 */
export function changesPerPage(samples: readonly PageSet[]): Uint8Array {
  const last = samples.at(-1)!;
  const changes = new Uint8Array(last.addresses.length);
  for (let k = 0; k + 1 < samples.length; k++) {
    const before = samples[k]!;
    const after = samples[k + 1]!;
    let b = 0;
    let f = 0;
    for (let a = 0; a < after.addresses.length; a++) {
      const address = after.addresses[a]!;
      while (b < before.addresses.length && before.addresses[b]! < address) b++;
      const changed =
        b >= before.addresses.length ||
        before.addresses[b] !== address ||
        before.keys[2 * b] !== after.keys[2 * a] ||
        before.keys[2 * b + 1] !== after.keys[2 * a + 1];
      if (!changed) continue;
      while (f < last.addresses.length && last.addresses[f]! < address) f++;
      if (f < last.addresses.length && last.addresses[f] === address && changes[f]! < 255) changes[f]!++;
    }
  }
  return changes;
}

export interface HostCaptureOptions {
  readonly pids?: readonly number[];
  readonly all?: boolean;
  readonly match?: RegExp;
  /** mergeable: the VM_MERGEABLE VMAs (what ksmd scans); compatible: every VMA KSM could be told to merge. */
  readonly vmaMode?: 'mergeable' | 'compatible';
  /** How many times the processes are read (at least 1; 2 or more give the volatility). */
  readonly samples: number;
  readonly intervalMs: number;
  /** A line per sample, for the command's progress. */
  readonly onSample?: (index: number, pages: number) => void;
  /** Settings directory (tests); default /sys/kernel/mm/ksm. */
  readonly sysfsDir?: string;
  /** Reader threads (0: this thread); default as estimate. */
  readonly threads?: number;
}

/** A process as one sample read it. */
interface ProcessSample {
  readonly pages: PageSet;
  readonly vmas: readonly { start: number; end: number; name: string }[];
}

interface Tracked {
  readonly pid: number;
  readonly name: string;
  readonly command: string;
  readonly orderKey: number;
  readonly samples: ProcessSample[];
  gone?: string;
}

/** Reads the host's processes into a twin. Throws a one-line Error when nothing can be read. */
export async function captureHost(options: HostCaptureOptions): Promise<Twin> {
  if (!(Number.isInteger(options.samples) && options.samples >= 1))
    throw new Error(`samples must be an integer >= 1, got ${options.samples}`);
  const mode = options.vmaMode ?? 'mergeable';
  const explicit = new Set(options.pids ?? []);
  // --match and --all leave out the command's own ancestors (the shell whose command line holds the pattern).
  const ancestors = ancestorPids();
  const pids = selectProcesses({
    ...(options.pids === undefined ? {} : { pids: options.pids }),
    ...(options.all === undefined ? {} : { all: options.all }),
    ...(options.match === undefined ? {} : { match: options.match }),
  }).filter((pid) => pid !== process.pid && (explicit.has(pid) || !ancestors.has(pid)));
  if (pids.length === 0) throw new Error('no process selected (--pid, --all or --match)');
  const notes: string[] = [];
  const tracked = new Map<number, Tracked>();
  for (const pid of pids) {
    const stat = readStat(pid);
    if (stat === undefined) {
      if (explicit.has(pid)) throw new Error(`pid ${pid}: no such process`);
      continue;
    }
    tracked.set(pid, {
      pid,
      name: stat.comm,
      command: commandOf(pid, stat.comm),
      orderKey: stat.startTicks,
      samples: [],
    });
  }
  const recorder = new PageRecorder();
  const ksmd = ksmdScheduling();
  const kpageflags = KPageFlags.open();
  let reader: PageReader | undefined;
  const started = performance.now();
  try {
    for (let s = 0; s < options.samples; s++) {
      if (s > 0) {
        const wait = started + s * options.intervalMs - performance.now();
        if (wait > 0) await sleep(wait);
      }
      let pages = 0;
      for (const t of tracked.values()) {
        if (t.gone !== undefined) continue;
        try {
          const plan = planProcess(t.pid, mode);
          if (reader === undefined) {
            const expected = [...tracked.values()].length * plan.expectedBytes;
            reader = await openReader(
              Math.floor(DEFAULT_READ_BYTES / PAGE_BYTES),
              options.threads ?? defaultThreads(expected),
            );
          }
          const scan = scanProcess(plan, { counter: recorder, reader, kpageflags, progress: NO_PROGRESS });
          const set = recorder.take();
          if (scan.incomplete !== undefined) throw new Error(scan.incomplete);
          t.samples.push({
            pages: set,
            vmas: plan.scan.map((v) => ({ start: v.start, end: v.end, name: v.name })),
          });
          pages += set.addresses.length;
        } catch (e) {
          recorder.take();
          const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'exited' : (e as Error).message;
          if (explicit.has(t.pid) && s === 0) throw new Error(`pid ${t.pid} (${t.command}): ${why}`);
          t.gone = why;
          notes.push(`pid ${t.pid} (${t.name}) left out: ${why} during sample ${s + 1}`);
        }
      }
      options.onSample?.(s, pages);
    }
  } finally {
    reader?.close();
    kpageflags?.close();
  }
  const processes: TwinProcess[] = [];
  let withoutPages = 0;
  for (const t of tracked.values()) {
    if (t.gone !== undefined || t.samples.length === 0) continue;
    const last = t.samples.at(-1)!;
    if (last.pages.addresses.length === 0) {
      withoutPages++;
      continue;
    }
    const changes = changesPerPage(t.samples.map((x) => x.pages));
    const vmas = vmasOf(last);
    const vmaStarts: number[] = [];
    let at = 0;
    for (const v of vmas) {
      if (at > 0) vmaStarts.push(at);
      at += v.presentPages;
    }
    processes.push({
      pid: t.pid,
      name: t.name,
      command: t.command,
      orderKey: t.orderKey,
      vmas,
      keys: last.pages.keys,
      regions: volatileRegions(changes, t.samples.length - 1, options.intervalMs, vmaStarts),
    });
  }
  if (withoutPages > 0)
    notes.push(
      `${withoutPages} selected process${withoutPages === 1 ? ' has' : 'es have'} no present page in a ${mode === 'mergeable' ? 'VM_MERGEABLE' : 'KSM-compatible'} VMA (left out${mode === 'mergeable' ? '; --vmas compatible takes every KSM-compatible VMA' : ''})`,
    );
  // mm slot order: registration order, taken as start order (twin.ts, the mm slot assumption).
  processes.sort((a, b) => a.orderKey - b.orderKey || a.pid - b.pid);
  const pages = processes.reduce((s, p) => s + p.keys.length / 2, 0);
  const { availableBytes, ...host } = thisHost(options.sysfsDir);
  return {
    ...host,
    source: 'host',
    otherUseBytes: Math.max(0, host.memoryBytes - availableBytes - pages * PAGE_BYTES),
    ...ksmd.measure(),
    sampling: { samples: options.samples, intervalMs: options.intervalMs },
    salted: false,
    vmaMode: mode,
    processes,
    notes,
  };
}

function vmasOf(sample: ProcessSample): TwinVma[] {
  const addresses = sample.pages.addresses;
  let i = 0;
  return sample.vmas.map((v) => {
    while (i < addresses.length && addresses[i]! < v.start) i++;
    const from = i;
    while (i < addresses.length && addresses[i]! < v.end) i++;
    return {
      start: v.start,
      pageCount: (v.end - v.start) / PAGE_BYTES,
      presentPages: i - from,
      name: v.name,
    };
  });
}

export interface DumpCaptureOptions {
  readonly format?: DumpFormat;
  readonly sysfsDir?: string;
  readonly threads?: number;
}

/**
 * Each dump file a guest (one process registered with KSM, in command-line
 * order) whose memory is the dump's segments in file order. One snapshot: no
 * volatility. The host's memory and settings are this machine's.
 */
export async function captureDumps(
  files: readonly string[],
  options: DumpCaptureOptions = {},
): Promise<Twin> {
  if (files.length === 0) throw new Error('no dump file given');
  const layouts = files.map((f) => layoutDump(f, options.format ?? 'auto'));
  const total = layouts.reduce((s, l) => s + l.segments.reduce((t, g) => t + g.bytes, 0), 0);
  const reader = await openReader(
    Math.floor(DEFAULT_READ_BYTES / PAGE_BYTES),
    options.threads ?? defaultThreads(total),
  );
  const recorder = new PageRecorder();
  const processes: TwinProcess[] = [];
  const notes: string[] = [];
  try {
    layouts.forEach((layout, index) => {
      scanDump(layout, { counter: recorder, reader, progress: NO_PROGRESS, zeroPages: 'present' });
      // Segments keep file order (a guest's physical memory): no sorting by address.
      const { keys } = recorder.take();
      for (const n of layout.notes) notes.push(`${basename(layout.path)}: ${n}`);
      processes.push({
        pid: 0,
        name: basename(layout.path),
        command: layout.path,
        orderKey: index,
        vmas: layout.segments.map((s) => ({
          start: s.address,
          pageCount: s.bytes / PAGE_BYTES,
          presentPages: s.bytes / PAGE_BYTES,
          name: s.file ?? `${layout.kind} segment`,
        })),
        keys,
        regions: [],
      });
    });
  } finally {
    reader.close();
  }
  const { availableBytes: _available, ...host } = thisHost(options.sysfsDir);
  return {
    ...host,
    source: 'dumps',
    otherUseBytes: 0,
    ...ksmdScheduling().measure(),
    sampling: { samples: 1, intervalMs: 0 },
    salted: false,
    vmaMode: 'compatible',
    processes,
    notes,
  };
}

// ------------------------------------------------------------------ the host

/** What a twin says of the machine it was made on, now (and MemAvailable, for the memory others use). */
function thisHost(sysfsDir: string | undefined) {
  const mem = readMeminfo();
  const settings = hostSettings(sysfsDir ?? KSM_SYSFS_DIR);
  return {
    version: TWIN_VERSION,
    capturedAt: new Date().toISOString().slice(0, 19).replace('T', ' '),
    hostName: hostname(),
    kernel: `Linux ${release()}`,
    memoryBytes: mem.totalBytes,
    availableBytes: mem.availableBytes,
    numaNodes: numaNodes(),
    settings: settings.settings,
    settingsSource: settings.source,
  } as const;
}

/** This process's parent, its parent, … up to init. */
function ancestorPids(): Set<number> {
  const out = new Set<number>();
  for (let pid = process.ppid; pid > 1 && !out.has(pid); ) {
    out.add(pid);
    try {
      const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
      pid = Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      break;
    }
  }
  return out;
}

/** comm and start time (clock ticks since boot) from /proc/PID/stat, or undefined when it is gone. */
function readStat(pid: number): { comm: string; startTicks: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const close = text.lastIndexOf(')');
    const fields = text.slice(close + 2).split(' ');
    // Field 22 (starttime) is the 20th after the comm's closing parenthesis.
    return { comm: text.slice(text.indexOf('(') + 1, close), startTicks: Number(fields[19]) };
  } catch {
    return undefined;
  }
}

function commandOf(pid: number, comm: string): string {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0+$/, '').replaceAll('\0', ' ');
    return cmdline === '' ? `[${comm}]` : cmdline;
  } catch {
    return `[${comm}]`;
  }
}

const UNKNOWN_WAIT: Twin['ksmdWakeDelay'] = { ns: 0, cpuPerPreemptionNs: 0, basis: 'unknown' };

/** Time slices that make a wait per slice worth taking. */
const MIN_SLICES = 50;

/**
 * How long ksmd waits for a CPU after each sleep on this host (twin.ts,
 * ksmdWakeDelay): ksmd's /proc/PID/schedstat run_delay per time slice, and
 * its CPU time per preemption (a batch preempted waits that long again), over
 * the capture when ksmd ran meanwhile (KSM on), else since boot (ksmd's own
 * experience of this host's load), else unknown (no wait). Per time slice,
 * not per wake-up (voluntary context switch): on this machine the slice
 * figure forecast ksmd's pace better (a wake-up also waits for the timer
 * softirq, which run_delay does not see, and the slices of a batch that
 * cond_resched() split make up for it). A probe process at ksmd's nice level
 * was tried too: its waits (a Node timer loop) matched ksmd's worse.
 */
function ksmdScheduling(): { measure: () => Pick<Twin, 'ksmdWakeDelay'> } {
  let pid = -1;
  let first: ReturnType<typeof ksmdSchedstat> | undefined;
  try {
    pid = ksmdPid();
    first = ksmdSchedstat(pid);
  } catch {
    return { measure: () => ({ ksmdWakeDelay: UNKNOWN_WAIT }) };
  }
  return {
    measure: () => {
      let last: ReturnType<typeof ksmdSchedstat>;
      try {
        last = ksmdSchedstat(pid);
      } catch {
        return { ksmdWakeDelay: UNKNOWN_WAIT };
      }
      const wait = (from: typeof first, basis: 'capture' | 'boot') => ({
        ksmdWakeDelay: {
          ns: (last.runDelayNs - from.runDelayNs) / (last.slices - from.slices),
          cpuPerPreemptionNs:
            last.preemptions > from.preemptions
              ? (last.cpuNs - from.cpuNs) / (last.preemptions - from.preemptions)
              : 0,
          basis,
        },
      });
      if (last.slices - first.slices >= MIN_SLICES) return wait(first, 'capture');
      if (last.slices >= MIN_SLICES)
        return wait({ cpuNs: 0, runDelayNs: 0, slices: 0, preemptions: 0 }, 'boot');
      return { ksmdWakeDelay: UNKNOWN_WAIT };
    },
  };
}

function readMeminfo(): { totalBytes: number; availableBytes: number } {
  const text = readFileSync('/proc/meminfo', 'latin1');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
  return { totalBytes: kb('MemTotal') * 1024, availableBytes: kb('MemAvailable') * 1024 };
}

function numaNodes(): number {
  try {
    return Math.max(1, readdirSync('/sys/devices/system/node').filter((e) => /^node\d+$/.test(e)).length);
  } catch {
    return 1;
  }
}

/** Linux 6.18's defaults (the kernel backend's reset), run aside, advisor_mode last. */
const DEFAULT_SETTINGS: readonly SysfsSetting[] = LINUX_DEFAULTS.filter(([name]) => name !== 'run')
  .map(([name, value]) => ({ name, value }))
  .sort((a, b) => Number(a.name === 'advisor_mode') - Number(b.name === 'advisor_mode'));

/**
 * The host's writable KSM settings as they are (those the engine's sysfs
 * table has too, run aside), advisor_mode last; Linux's defaults without KSM.
 */
export function hostSettings(dir: string): { settings: SysfsSetting[]; source: 'sysfs' | 'defaults' } {
  const settings: SysfsSetting[] = [];
  for (const attr of KSM_SYSFS) {
    if (attr.mode !== 0o644 || attr.name === 'run') continue;
    let text: string;
    try {
      text = readFileSync(`${dir}/${attr.name}`, 'latin1').trim();
    } catch {
      continue;
    }
    settings.push({ name: attr.name, value: attr.name === 'advisor_mode' ? selectedWord(text) : text });
  }
  if (settings.length === 0) return { settings: [...DEFAULT_SETTINGS], source: 'defaults' };
  // advisor_mode last: while it is scan-time, pages_to_scan refuses writes (engine-run.ts).
  settings.sort((a, b) => Number(a.name === 'advisor_mode') - Number(b.name === 'advisor_mode'));
  return { settings, source: 'sysfs' };
}
