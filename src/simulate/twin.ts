/**
 * The host's twin: the processes of a host (or the guests of memory dumps) as
 * ksmd would meet them, made into a scenario the engine runs like any other.
 *
 * What a twin holds, per process, in the kernel's scan order (mm slot order,
 * then VMA and address order):
 *
 * | field        | what                                                          | source   |
 * |--------------|---------------------------------------------------------------|----------|
 * | vmas         | the VMAs ksmd would scan: start, pages, pages present          | measured |
 * | keys         | per present page its 64-bit fingerprint, (low, high) pairs; (0, 0) is an all-zero page | measured |
 * | regions      | runs of pages rewritten between samples, with their rate       | sampled  |
 *
 * plus the host's memory, NUMA nodes and KSM settings (measured when it was
 * read). Pages not present (never touched, swapped out, the shared zero page)
 * have no rmap item and are not in `keys`: only their count is kept.
 *
 * In the engine each process is one group of one guest whose memory is its
 * present pages in scan order: a page's fingerprint becomes its 64-bit
 * contents (fingerprint mode, host/frames.ts), so two pages merge in the twin
 * exactly when their fingerprints are equal, i.e. (up to a 48-bit hash
 * collision among pages that start alike) when their bytes are.
 *
 * A fingerprint is the page's first two bytes, then 48 bits of its XXH64:
 * the trees then order pages as memcmp does wherever their first two bytes
 * differ. That order matters for time, not for what merges in the end: a
 * page rewritten while it sits in the unstable tree leaves a node whose
 * contents no longer fit its place, and lookups that pass it can miss their
 * match for a pass (found on the kernel with unique rewritten pages beside
 * an image: with fully hashed fingerprints the twin merged 5% of the image a
 * pass later than ksmd did, because hashing mixed the two in one subtree).
 * A saved twin (twin-file.ts) is salted whole, order and all.
 */
import type { SysfsSetting } from '../workload/workload.ts';
import type { Calibration } from './cost.ts';
import {
  type ContentRunModel,
  defaultSampleEveryMs,
  type GroupModel,
  SCENARIO_VERSION,
  type Scenario,
} from './scenario.ts';
import { formatBytes, formatDuration } from './units.ts';

export const TWIN_VERSION = 1;
const PAGE_BYTES = 4096;

/** Where a figure of the twin comes from: what the report writes beside each assumption. */
export type Provenance = 'measured' | 'sampled' | 'modelled';

export interface TwinVma {
  readonly start: number;
  readonly pageCount: number;
  readonly presentPages: number;
  /** The mapping's name in smaps ([heap], a path, '' for anonymous memory), or the dump segment. */
  readonly name: string;
}

/** Pages of a process rewritten between samples: `firstPage` indexes its present pages in scan order. */
export interface TwinRegion {
  readonly firstPage: number;
  readonly pageCount: number;
  /** Pages rewritten per second in the whole region (each write gives a page new contents). */
  readonly writesPerSecond: number;
  /** Every page changed in every interval: the rate is a lower bound (sample closer together to know it). */
  readonly saturated: boolean;
}

export interface TwinProcess {
  /** Its pid on the host it was read from; 0 for a dump. */
  readonly pid: number;
  /** comm, or the dump's file name. */
  readonly name: string;
  readonly command: string;
  /** What orders the mm slots: the process's start time in clock ticks (/proc/PID/stat), or its place on the command line. */
  readonly orderKey: number;
  readonly vmas: readonly TwinVma[];
  /** Per present page, in scan order: keys[2i] low, keys[2i + 1] high 32 bits of its fingerprint. */
  readonly keys: Uint32Array;
  readonly regions: readonly TwinRegion[];
}

export interface Twin {
  readonly version: typeof TWIN_VERSION;
  readonly source: 'host' | 'dumps';
  /** ISO time of the last sample. */
  readonly capturedAt: string;
  readonly hostName: string;
  readonly kernel: string;
  readonly memoryBytes: number;
  /** Memory in use on the host by everything that is not in the twin (MemTotal − MemAvailable − its pages). */
  readonly otherUseBytes: number;
  readonly numaNodes: number;
  /**
   * How long ksmd waits for a CPU once its sleep ends, per wake-up: its
   * /proc/PID/schedstat run_delay per time slice, over the capture when ksmd
   * ran meanwhile, else since boot ('unknown': no ksmd, taken as 0).
   */
  readonly ksmdWakeDelay: {
    readonly ns: number;
    /** ksmd's CPU time per involuntary context switch: a batch that long is preempted once, and waits `ns` again (0: never). */
    readonly cpuPerPreemptionNs: number;
    readonly basis: 'capture' | 'boot' | 'unknown';
  };
  /** /sys/kernel/mm/ksm as it was (writable settings only), or Linux's defaults where there was none. */
  readonly settings: readonly SysfsSetting[];
  readonly settingsSource: 'sysfs' | 'defaults';
  readonly sampling: { readonly samples: number; readonly intervalMs: number };
  /** Fingerprints are XXH64 of the pages (false), or those salted with a secret not kept (true: a saved twin). */
  readonly salted: boolean;
  readonly vmaMode: 'mergeable' | 'compatible';
  readonly processes: readonly TwinProcess[];
  /** What the capture left out or could not read, one line each. */
  readonly notes: readonly string[];
}

export function presentPages(p: TwinProcess): number {
  return p.keys.length / 2;
}

export function twinPages(twin: Twin): number {
  return twin.processes.reduce((sum, p) => sum + presentPages(p), 0);
}

export function twinWritesPerSecond(twin: Twin): number {
  return twin.processes.reduce((sum, p) => sum + p.regions.reduce((s, r) => s + r.writesPerSecond, 0), 0);
}

// ------------------------------------------------------------------ volatility

/** Changed pages closer than this (in present pages) belong to one region. */
export const REGION_GAP_PAGES = 64;

/**
 * Regions and their rates from how often each present page changed: page i
 * changed in `changes[i]` of `intervals` intervals of `intervalMs`. Changed
 * pages of one VMA (`vmaStarts`: the first page index of each VMA after the
 * first) closer than REGION_GAP_PAGES make one region, and the pages between
 * them belong to it (a page that happened not to be hit is as exposed as its
 * neighbours). Within a region each page is taken to be rewritten as a Poisson
 * process of rate λ: the share f of (page, interval) pairs that saw a change
 * is 1 − e^(−λ·Δt), so λ = −ln(1 − f)/Δt. When every page changed in every
 * interval, f = 1 says only that λ is large: the region gets the rate at which
 * a page would be missed once in 2·pages·intervals, marked saturated.
 */
export function volatileRegions(
  changes: Uint8Array,
  intervals: number,
  intervalMs: number,
  vmaStarts: readonly number[] = [],
): TwinRegion[] {
  if (intervals <= 0) return [];
  // A region stays within one VMA: the index of the VMA each changed page is in.
  let vma = 0;
  let regionVma = -1;
  const regions: TwinRegion[] = [];
  const seconds = intervalMs / 1000;
  let first = -1;
  let last = -1;
  let sum = 0;
  const close = () => {
    const pageCount = last - first + 1;
    const trials = pageCount * intervals;
    const saturated = sum >= trials;
    const f = saturated ? 1 - 1 / (2 * trials) : sum / trials;
    const perPage = -Math.log(1 - f) / seconds;
    regions.push({ firstPage: first, pageCount, writesPerSecond: perPage * pageCount, saturated });
  };
  for (let i = 0; i < changes.length; i++) {
    const c = changes[i]!;
    if (c === 0) continue;
    while (vma < vmaStarts.length && vmaStarts[vma]! <= i) vma++;
    if (first >= 0 && (i - last > REGION_GAP_PAGES || vma !== regionVma)) {
      close();
      first = -1;
    }
    if (first < 0) {
      first = i;
      sum = 0;
      regionVma = vma;
    }
    last = i;
    sum += c;
  }
  if (first >= 0) close();
  return regions;
}

// ------------------------------------------------------------------ the twin as a scenario

export interface TwinScenarioOptions {
  readonly calibration: Calibration;
  /** The settings the runs use instead of the host's (`--set`, a test): the default duration follows them. */
  readonly settings?: readonly SysfsSetting[];
  /** Virtual time to simulate; default: long enough for a few full passes at the twin's settings. */
  readonly durationMs?: number;
}

/** The twin as a scenario: one group per process, in mm slot order, with the assumptions and where each comes from. */
export function twinScenario(twin: Twin, options: TwinScenarioOptions): Scenario {
  const groups = twin.processes.filter((p) => presentPages(p) > 0).map(twinGroup);
  if (groups.length === 0)
    throw new Error('the twin has no page ksmd would scan (no mergeable VMA with present pages)');
  const pages = twinPages(twin);
  const durationMs = options.durationMs ?? twinDefaultDurationMs(twin, options.settings ?? []);
  const title =
    twin.source === 'host'
      ? `twin of ${twin.hostName}: ${groups.length} processes, ${formatBytes(pages * PAGE_BYTES)} ksmd would scan`
      : `twin of ${groups.length} memory dumps, ${formatBytes(pages * PAGE_BYTES)}`;
  return {
    version: SCENARIO_VERSION,
    name: 'twin',
    title,
    description: `Captured ${twin.capturedAt} on ${twin.hostName} (${twin.kernel}).`,
    host: {
      memoryBytes: twin.memoryBytes,
      reservedBytes: Math.min(twin.otherUseBytes, Math.max(0, twin.memoryBytes - PAGE_BYTES)),
      numaNodes: twin.numaNodes,
      ksmdWakeDelayNs: twin.ksmdWakeDelay.ns,
      ksmdCpuPerPreemptionNs: twin.ksmdWakeDelay.cpuPerPreemptionNs,
    },
    ksm: twin.settings,
    durationMs,
    sampleEveryMs: defaultSampleEveryMs(durationMs),
    seed: 1,
    fastForward: true,
    groups,
    assumptions: twinAssumptions(twin, options.calibration).map((a) => `${a.source}: ${a.text}`),
    fileName: `twin of ${twin.hostName}`,
  };
}

function twinGroup(p: TwinProcess): GroupModel {
  const pageCount = presentPages(p);
  const content: ContentRunModel[] = [];
  const fixed = (from: number, to: number, writesPerSecond: number) => {
    if (to > from)
      content.push({
        pageCount: to - from,
        source: { kind: 'fingerprints', keys: p.keys, offsetPages: from },
        writesPerSecond,
        readsPerSecond: 0,
      });
  };
  let at = 0;
  for (const r of p.regions) {
    fixed(at, r.firstPage, 0);
    fixed(r.firstPage, r.firstPage + r.pageCount, r.writesPerSecond);
    at = r.firstPage + r.pageCount;
  }
  fixed(at, pageCount, 0);
  return {
    name: groupName(p),
    count: 1,
    pageCount,
    startAtMs: 0,
    startEveryMs: 0,
    merge: 'madvise',
    content,
    ...(p.pid > 0 ? { hostPid: p.pid } : {}),
  };
}

/** A group name of [A-Za-z0-9._-]: the process's comm and pid (a dump's file name). */
export function groupName(p: TwinProcess): string {
  const base = p.name.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 32) || 'process';
  return p.pid > 0 ? `${base}.${p.pid}` : base;
}

function settingOf(settings: readonly SysfsSetting[], name: string, fallback: number): number {
  const s = [...settings].reverse().find((x) => x.name === name);
  const n = s === undefined ? Number.NaN : Number(s.value);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

const MAX_DEFAULT_DURATION_MS = 24 * 3600_000;

/**
 * Long enough to see the saving settle at the twin's own pacing: six full
 * passes (a merge needs two visits, chains and zero pages a third, and
 * volatile regions a few more to show their steady share), at least a minute.
 */
export function twinDefaultDurationMs(twin: Twin, runSettings: readonly SysfsSetting[]): number {
  const settings = [...twin.settings, ...runSettings];
  const pages = twinPages(twin);
  const perBatch = settingOf(settings, 'pages_to_scan', 100);
  const sleepMs = settingOf(settings, 'sleep_millisecs', 20);
  const passMs = Math.ceil(pages / perBatch) * (sleepMs + 4);
  // At most a day: a host whose ksmd is held still (pages_to_scan 0, an hour's sleep) would ask for years.
  const ms = Math.min(MAX_DEFAULT_DURATION_MS, Math.max(60_000, 6 * passMs));
  // Whole minutes read better in the summary.
  return Math.ceil(ms / 60_000) * 60_000;
}

export interface TwinAssumption {
  readonly source: Provenance;
  readonly text: string;
}

/** Every assumption the twin's run rests on, with where it comes from. */
export function twinAssumptions(twin: Twin, calibration: Calibration): TwinAssumption[] {
  const pages = twinPages(twin);
  const vmas = twin.processes.reduce((s, p) => s + p.vmas.length, 0);
  const notPresent = twin.processes.reduce(
    (s, p) => s + p.vmas.reduce((v, m) => v + m.pageCount - m.presentPages, 0),
    0,
  );
  const zero = twin.processes.reduce((s, p) => s + countZero(p.keys), 0);
  const regions = twin.processes.reduce((s, p) => s + p.regions.length, 0);
  const volatilePages = twin.processes.reduce(
    (s, p) => s + p.regions.reduce((v, r) => v + r.pageCount, 0),
    0,
  );
  const saturated = twin.processes.reduce((s, p) => s + p.regions.filter((r) => r.saturated).length, 0);
  const out: TwinAssumption[] = [];
  out.push({
    source: 'measured',
    text:
      twin.source === 'host'
        ? `Pages: ${pages} present pages (${formatBytes(pages * PAGE_BYTES)}, ${zero} of them all zeroes) in ${vmas} ${twin.vmaMode === 'mergeable' ? 'VM_MERGEABLE' : 'KSM-compatible'} VMAs of ${twin.processes.length} processes, read through /proc/PID/pagemap and /proc/PID/mem at ${twin.capturedAt}; ${notPresent} pages of those VMAs were not present (never touched, swapped out, or the shared zero page) and have no rmap item.`
        : `Pages: ${pages} pages (${formatBytes(pages * PAGE_BYTES)}, ${zero} of them all zeroes) of ${twin.processes.length} memory dumps, each dump one guest (one process registered with KSM).`,
  });
  out.push({
    source: 'measured',
    text: twin.salted
      ? 'Contents: each page is a 64-bit fingerprint salted with a secret that was not kept; two pages merge in the twin exactly when their fingerprints are equal. Salting loses memcmp’s order in the trees: where rewritten pages sit in the unstable tree beside mergeable ones, some merges may come a pass later than on the host.'
      : 'Contents: each page is a 64-bit fingerprint, its first two bytes (so the trees keep memcmp’s order where those differ) then 48 bits of its XXH64; two pages merge in the twin exactly when their fingerprints are equal (a false match among n pages that start alike has a chance of about n²/2⁴⁹).',
  });
  out.push({
    source: 'measured',
    text: `Host: ${formatBytes(twin.memoryBytes)} of memory (MemTotal), ${formatBytes(twin.otherUseBytes)} of it in use by what is not in the twin, ${twin.numaNodes} NUMA node${twin.numaNodes === 1 ? '' : 's'}, ${twin.hostName}, ${twin.kernel}.`,
  });
  out.push({
    source: twin.settingsSource === 'sysfs' ? 'measured' : 'modelled',
    text: `KSM settings ${twin.settingsSource === 'sysfs' ? 'read from /sys/kernel/mm/ksm' : '(no /sys/kernel/mm/ksm: Linux 6.18’s defaults)'}: ${twin.settings
      .filter((s) => s.name !== 'run')
      .map((s) => `${s.name}=${s.value}`)
      .join(', ')}; --set overrides them per run.`,
  });
  out.push({
    source: calibration.origin === 'built in' ? 'modelled' : 'measured',
    text:
      calibration.origin === 'built in'
        ? `ksmd’s CPU cost per batch, page, checksum, memcmp and merge: the shipped figures (${calibration.measuredOn}); \`ksmkit calibrate\` measures this machine’s.`
        : `ksmd’s CPU cost per batch, page, checksum, memcmp and merge: measured by ksmkit calibrate (${calibration.measuredOn}, ${calibration.origin ?? ''}).`,
  });
  const delay = twin.ksmdWakeDelay;
  out.push(
    delay.basis === 'unknown'
      ? {
          source: 'modelled',
          text: 'ksmd’s wait for a CPU after each sleep: none (not measured here; on a busy host it makes every batch later).',
        }
      : {
          source: 'measured',
          text: `ksmd’s wait for a CPU after each sleep: ${(delay.ns / 1e6).toFixed(2)} ms (ksmd’s /proc/PID/schedstat run_delay per time slice ${delay.basis === 'capture' ? 'while the twin was read' : 'since boot: ksmd did not run while the twin was read'}; the host’s load may differ when KSM runs); each batch starts that much after the tick its sleep ends on${delay.cpuPerPreemptionNs > 0 ? `, and waits as long again every ${(delay.cpuPerPreemptionNs / 1e6).toFixed(2)} ms of its CPU time (preempted: its CPU time per involuntary context switch)` : ''}.`,
        },
  );
  if (twin.sampling.samples >= 2) {
    out.push({
      source: 'sampled',
      text: `Volatility: ${twin.sampling.samples} samples ${formatDuration(twin.sampling.intervalMs)} apart; ${regions} regions (${volatilePages} pages) were rewritten between samples, ${Math.round(twinWritesPerSecond(twin))} pages a second in all${saturated > 0 ? `; in ${saturated} of them every page changed in every interval, so their rate is a lower bound (sample closer together to know it)` : ''}.`,
    });
    out.push({
      source: 'modelled',
      text: `Writes: in a region each page is rewritten at random times at the region’s rate (a Poisson process), each write giving it contents no other page has; pages outside the regions keep their contents.`,
    });
  } else {
    out.push({
      source: 'modelled',
      text: `Volatility: ${twin.source === 'dumps' ? 'a dump is one snapshot, so ' : 'one sample only, so '}no page is taken to be rewritten: the saving is what the contents allow, pages_volatile only the first visits.`,
    });
  }
  out.push({
    source: 'modelled',
    text:
      twin.source === 'host'
        ? 'mm slot order: ksmd scans the processes in the order they registered with KSM (their first madvise(MADV_MERGEABLE) or prctl(PR_SET_MEMORY_MERGE)), taken as their start order (/proc/PID/stat starttime), from the head of the list (as after a full scan or run=2: __ksm_enter adds a new mm slot just behind the cursor); with --vmas compatible, as if each process were told to merge in that order. Within a process, VMAs and pages in address order.'
        : 'mm slot order: the dumps’ order on the command line, each one a single VMA in address order.',
  });
  out.push({
    source: 'modelled',
    text: 'Pages not present are left out (ksmd’s walk skips them); pages one frame maps into several processes (after fork) are taken as separate pages; transparent huge pages as 4 KiB pages (ksmd splits a huge page it merges); no process starts, exits or faults in new memory during the run; reads change nothing (no merging policy).',
  });
  if (twin.source === 'host')
    out.push({
      source: 'modelled',
      text: 'Start: nothing merged (a host with KSM on is taken as if run=2 then run=1: the twin starts from unmerged pages).',
    });
  for (const n of twin.notes) out.push({ source: 'measured', text: n });
  return out;
}

function countZero(keys: Uint32Array): number {
  let n = 0;
  for (let i = 0; i < keys.length; i += 2) if (keys[i] === 0 && keys[i + 1] === 0) n++;
  return n;
}
