/**
 * A scenario on the real kernel, in real time: the same guests (one agent
 * process each, through the kernel backend), the same page contents byte for
 * byte (each page its 64-bit value repeated, as the engine holds it), the same
 * settings, and ksmd left to run on its own pacing while /sys/kernel/mm/ksm is
 * sampled. What the engine's virtual clock is checked against. The guests'
 * writes and reads land between samples; a read is the agent loading the
 * page as a CPU does (no GUP, so a merged page stays merged, as on the engine
 * with no policy).
 *
 * The kernel backend owns the machine's KSM settings (SysfsGuard: one user at
 * a time, everything restored on every exit path) and holds ksmd still while
 * the guests are built (pages_to_scan 0, an hour's sleep); this run then
 * writes the scenario's pacing and run=1 itself and lets ksmd go. Meant for
 * small scenarios: every page crosses a socket, and the run lasts its
 * duration in real time.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { KernelBackend, kernelBackendAvailability } from '../backend/kernel/kernel-backend.ts';
import { readKsm, readKsmNumber, readProcessCounters, writeKsm } from '../backend/kernel/ksm-sysfs.ts';
import { findKsmdPid as ksmdPid, readKsmdSchedstat as ksmdSchedstat } from '../backend/kernel/ksmd-thread.ts';
import { Rng } from '../fuzz/rng.ts';
import { AddressLayout } from '../workload/layout.ts';
import type { SysfsSetting } from '../workload/workload.ts';
import { ContentSpace, valuePage } from './content.ts';
import { type EngineRun, type ProcessOutcome, READ_SEED_SALT, type Sample } from './engine-run.ts';
import type { GroupModel, Scenario } from './scenario.ts';

const PAGE_BYTES = 4096;
const REGION = 'ram';

export {
  findKsmdPid as ksmdPid,
  readKsmdCpuNs as ksmdCpuNs,
  readKsmdSchedstat as ksmdSchedstat,
} from '../backend/kernel/ksmd-thread.ts';

/**
 * The samples on ksmd's own clock: each sample's time less the run delay
 * (time waiting for a CPU) ksmd had until then. On a machine others load, a
 * timer-woken ksmd waits its turn on every wake-up; the engine models a host
 * where it does not.
 */
export function withoutRunDelay(samples: readonly Sample[]): Sample[] {
  return samples.map((s) => ({ ...s, tMs: s.tMs - (s.ksmdRunDelayMs ?? 0) }));
}

export interface KernelRunOptions {
  readonly settings?: readonly SysfsSetting[];
  /** Run even if other processes of the machine are mergeable. */
  readonly force?: boolean;
  readonly onSample?: (sample: Sample, fraction: number) => void;
  /**
   * Called once the guests are built and written, with ksmd off (run=0),
   * before run=1; the guests' writes go on while it runs. What a test uses to
   * build a twin of the guests as an operator would, before turning KSM on.
   */
  readonly beforeKsmd?: (guests: readonly { readonly name: string; readonly pid: number }[]) => Promise<void>;
}

/** Why the kernel run cannot happen here, or undefined when it can. */
export function kernelRunUnavailable(): string | undefined {
  const a = kernelBackendAvailability();
  return a.ok ? undefined : a.reason;
}

interface KernelGuest {
  readonly name: string;
  readonly group: GroupModel;
  readonly runStarts: readonly number[];
}

/** Runs the scenario for real; the result has the engine run's shape. */
export async function runOnKernel(scenario: Scenario, options: KernelRunOptions = {}): Promise<EngineRun> {
  const unavailable = kernelRunUnavailable();
  if (unavailable !== undefined) throw new Error(`kernel backend unavailable: ${unavailable}`);
  if (scenario.groups.some((g) => g.startAtMs > 0 || (g.count > 1 && g.startEveryMs > 0))) {
    throw new Error('the kernel run starts every guest at once: staggered starts are for the engine only');
  }
  const backend = new KernelBackend({ force: options.force ?? false });
  const content = new ContentSpace();
  const layout = new AddressLayout();
  const guests: KernelGuest[] = [];
  const samples: Sample[] = [];
  const settingsInForce: Record<string, string> = {};
  let processes: ProcessOutcome[] = [];
  try {
    await backend.start([]);
    const all = [...scenario.ksm, ...(options.settings ?? [])];
    const pacing = new Map<string, string>([
      ['pages_to_scan', '100'],
      ['sleep_millisecs', '20'],
    ]);
    // advisor_mode last, once the guests are built: its pages_to_scan cannot be held at 0, and its
    // context (start time, CPU, EWMA) must start with the run's first pass, as the engine's does.
    let advisorMode: string | undefined;
    for (const s of all) {
      if (s.name === 'pages_to_scan' || s.name === 'sleep_millisecs') {
        pacing.set(s.name, s.value);
        continue;
      }
      if (s.name === 'advisor_mode') {
        advisorMode = s.value;
        continue;
      }
      const r = await backend.setSysfs(s.name, s.value);
      if (!r.ok) throw new Error(`${r.errno}: the kernel refuses ${s.name}=${JSON.stringify(s.value)}`);
    }
    for (const group of scenario.groups) {
      for (let i = 0; i < group.count; i++) guests.push(await buildGuest(backend, layout, content, group, i));
    }
    const readStreams = scenario.groups.flatMap((group) =>
      group.content.flatMap((run, runIndex) =>
        run.readsPerSecond > 0 ? [{ group, runIndex, rate: run.readsPerSecond, carry: 0 }] : [],
      ),
    );
    const streams = scenario.groups.flatMap((group) =>
      group.content.flatMap((run, runIndex) =>
        run.writesPerSecond > 0 ? [{ group, runIndex, rate: run.writesPerSecond, carry: 0 }] : [],
      ),
    );
    let writes = 0;
    let reads = 0;
    const rng = new Rng(scenario.seed);
    const readRng = new Rng(new Rng(scenario.seed).nextU32() ^ READ_SEED_SALT);
    // Accesses are due by the clock, not by loop turns: a turn that took
    // longer (a sample, a twin being read) must not slow the guests down.
    let accessesUntil = performance.now();
    /** The accesses of one stream due over `intervalMs`, each at a guest and page drawn from `draw`. */
    const dueAccesses = async (
      stream: { group: GroupModel; runIndex: number; rate: number; carry: number },
      intervalMs: number,
      draw: Rng,
      access: (guest: KernelGuest, page: number) => Promise<unknown>,
    ): Promise<number> => {
      const due = stream.rate * stream.group.count * (intervalMs / 1000) + stream.carry;
      const n = Math.floor(due);
      stream.carry = due - n;
      const mine = guests.filter((g) => g.group === stream.group);
      const runPages = stream.group.content[stream.runIndex]!.pageCount;
      for (let k = 0; k < n; k++) {
        const g = mine[mine.length === 1 ? 0 : Math.floor(draw.next() * mine.length)]!;
        await access(g, g.runStarts[stream.runIndex]! + Math.floor(draw.next() * runPages));
      }
      return n;
    };
    /** The guests' writes and reads due since the last call. */
    const applyAccesses = async (): Promise<void> => {
      const now = performance.now();
      const intervalMs = now - accessesUntil;
      accessesUntil = now;
      for (const stream of streams)
        writes += await dueAccesses(stream, intervalMs, rng, (g, page) => {
          content.unique();
          return backend.write(g.name, REGION, page, valuePage(content.hi, content.lo));
        });
      for (const stream of readStreams)
        reads += await dueAccesses(stream, intervalMs, readRng, (g, page) =>
          backend.read(g.name, REGION, page, 1),
        );
    };
    if (options.beforeKsmd !== undefined) {
      // ksmd stays off (run=0) while the caller looks at the guests; their writes go on meanwhile.
      let done = false;
      const looking = options
        .beforeKsmd(guests.map((g) => ({ name: g.name, pid: backend.pidOf(g.name) })))
        .finally(() => {
          done = true;
        });
      while (!done) {
        await Promise.race([looking, sleep(scenario.sampleEveryMs)]);
        if (!done) await applyAccesses();
      }
      await looking;
    }
    if (advisorMode !== undefined) {
      const r = writeKsm('advisor_mode', advisorMode);
      if (!r.ok)
        throw new Error(`${r.errno}: the kernel refuses advisor_mode=${JSON.stringify(advisorMode)}`);
    }
    const pid = ksmdPid();
    const { cpuNs: cpuBase, runDelayNs: runDelayBase } = ksmdSchedstat(pid);
    const scannedBase = readKsmNumber('pages_scanned');
    const skippedBase = readKsmNumber('pages_skipped');
    // Go: the scenario's pacing, then run=1 (either write wakes ksmd).
    const advisor = /\[scan-time\]/.test(readKsm('advisor_mode'));
    for (const [name, value] of pacing) {
      if (name === 'pages_to_scan' && advisor) continue;
      const r = writeKsm(name, value);
      if (!r.ok) throw new Error(`${r.errno}: the kernel refuses ${name}=${JSON.stringify(value)}`);
    }
    for (const name of [
      'pages_to_scan',
      'sleep_millisecs',
      'max_page_sharing',
      'use_zero_pages',
      'smart_scan',
    ])
      settingsInForce[name] = readKsm(name);
    settingsInForce.advisor_mode = advisor ? 'scan-time' : 'none';
    const startedAt = performance.now();
    const go = writeKsm('run', '1');
    if (!go.ok) throw new Error(`${go.errno}: cannot write run=1`);

    const guestPages = guests.reduce((sum, g) => sum + g.group.pageCount, 0);
    let lastCpuNs = 0;
    let lastMs = 0;
    let nextMs = 0;
    for (;;) {
      const now = performance.now() - startedAt;
      const tMs = Math.min(now, scenario.durationMs);
      const stat = ksmdSchedstat(pid);
      const cpuNs = stat.cpuNs - cpuBase;
      const c = readCounters();
      const sample: Sample = {
        tMs,
        full_scans: c.full_scans,
        pages_shared: c.pages_shared,
        pages_sharing: c.pages_sharing,
        pages_unshared: c.pages_unshared,
        pages_volatile: c.pages_volatile,
        pages_scanned: c.pages_scanned - scannedBase,
        pages_skipped: c.pages_skipped - skippedBase,
        ksm_zero_pages: c.ksm_zero_pages,
        stable_node_chains: c.stable_node_chains,
        stable_node_dups: c.stable_node_dups,
        rmap_items: c.rmap_items,
        general_profit: c.general_profit,
        pages_to_scan: c.pages_to_scan,
        ksmdCpuMs: cpuNs / 1e6,
        ksmdCpuPercent: now > lastMs ? ((cpuNs - lastCpuNs) / 1e6 / (now - lastMs)) * 100 : 0,
        // What the guests' pages cost: each page, less those merged away, plus the rmap items.
        memoryInUseBytes: (guestPages - c.pages_sharing - c.ksm_zero_pages) * PAGE_BYTES + c.rmap_items * 64,
        guestMemoryBytes: guestPages * PAGE_BYTES,
        guestsStarted: guests.length,
        cowBreaks: 0,
        guestWrites: writes,
        guestReads: reads,
        extrapolated: false,
        ksmdRunDelayMs: (stat.runDelayNs - runDelayBase) / 1e6,
      };
      samples.push(sample);
      options.onSample?.(sample, tMs / scenario.durationMs);
      lastCpuNs = cpuNs;
      lastMs = now;
      if (now >= scenario.durationMs) {
        processes = guests.map((g) => processOutcome(g.name, backend.pidOf(g.name)));
        break;
      }
      nextMs += scenario.sampleEveryMs;
      await applyAccesses();
      const wait = nextMs - (performance.now() - startedAt);
      if (wait > 0) await sleep(Math.min(wait, scenario.durationMs - (performance.now() - startedAt) + 1));
    }
  } finally {
    await backend.close();
  }
  return {
    samples,
    processes,
    settings: settingsInForce,
    steadyAtMs: undefined,
    ksmd: { running: true },
    stats: {
      batches: 0,
      visits: 0,
      compares: 0,
      stableCompares: 0,
      merges: 0,
      checksumsCharged: 0,
      hashes: content.hashes,
    },
  };
}

async function buildGuest(
  backend: KernelBackend,
  layout: AddressLayout,
  content: ContentSpace,
  group: GroupModel,
  index: number,
): Promise<KernelGuest> {
  const name = `${group.name}-${index + 1}`;
  const spawned = await backend.spawn(name, { memoryMerge: group.merge === 'prctl' });
  if (!spawned.ok) throw new Error(`${spawned.errno}: cannot start ${name}`);
  layout.spawn(name);
  const address = layout.place(name, REGION, group.pageCount);
  const mapped = await backend.mmap(name, {
    name: REGION,
    address,
    pageCount: group.pageCount,
    shared: false,
    thp: false,
  });
  if (!mapped.ok) throw new Error(`${mapped.errno}: cannot map ${group.pageCount} pages in ${name}`);
  const bytes = new Uint8Array(group.pageCount * PAGE_BYTES);
  const runStarts: number[] = [];
  let page = 0;
  for (const run of group.content) {
    runStarts.push(page);
    for (let i = 0; i < run.pageCount; i++, page++) {
      content.value(run.source, i);
      valuePage(content.hi, content.lo, bytes, page * PAGE_BYTES);
    }
  }
  const written = await backend.write(name, REGION, 0, bytes);
  if (!written.ok) throw new Error(`${written.errno}: cannot fill ${name}`);
  if (group.merge === 'madvise') {
    const advised = await backend.madvise(name, REGION, 'mergeable');
    if (!advised.ok) throw new Error(`${advised.errno}: madvise(MADV_MERGEABLE) refused in ${name}`);
  }
  return { name, group, runStarts };
}

/** A guest's /proc/PID/ksm_stat now (all zero when it is gone). */
function processOutcome(name: string, pid: number): ProcessOutcome {
  const c = readProcessCounters(pid);
  const n = (key: string): number => Number(c?.[key] ?? 0);
  return {
    name,
    hostPid: pid,
    ksm_rmap_items: n('ksm_rmap_items'),
    ksm_merging_pages: n('ksm_merging_pages'),
    ksm_zero_pages: n('ksm_zero_pages'),
    ksm_process_profit: n('ksm_process_profit'),
  };
}

const COUNTER_FILES = [
  'full_scans',
  'pages_shared',
  'pages_sharing',
  'pages_unshared',
  'pages_volatile',
  'pages_scanned',
  'pages_skipped',
  'ksm_zero_pages',
  'stable_node_chains',
  'stable_node_dups',
  'general_profit',
  'pages_to_scan',
] as const;

type KernelCounters = Record<(typeof COUNTER_FILES)[number] | 'rmap_items', number>;

function readCounters(): KernelCounters {
  const out = { rmap_items: 0 } as KernelCounters;
  for (const name of COUNTER_FILES) out[name] = readKsmNumber(name);
  out.rmap_items = out.pages_shared + out.pages_sharing + out.pages_unshared + out.pages_volatile;
  return out;
}
