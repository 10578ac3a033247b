/**
 * One simulation run: a scenario's guests on a SimulatedHost in fingerprint
 * mode, ksmd on the virtual clock, the guests' writes and reads in time, and a
 * sample of /sys/kernel/mm/ksm every `sampleEveryMs`.
 *
 * ksmd is driven here batch by batch, as `Ksm.advance()` drives it
 * (ksm_scan_thread: a batch of pages_to_scan, then sleep_millisecs in jiffies,
 * nothing while no mm is registered), so that between two batches the guests'
 * writes can land and the per-batch cost can be completed:
 *
 * - Wake-up. The sleep ends one tick later than `Ksm.advance()` has it, on a
 *   tick boundary, as the kernel's timer wheel does (`ksmdWakeAfterSleepNs`).
 *
 * - Checksum cost. The kernel runs calc_checksum() on every processed visit
 *   of a page that is not a KSM page, and so does the engine's cost model
 *   (Ksm.calcChecksum charges it even when its cache answers): nothing is
 *   added here (src/simulate/checksum-cost.test.ts holds that count).
 *
 * - A busy host (a twin's measured figures, twin.ts): ksmd waits
 *   `ksmdWakeDelayNs` for a CPU after each sleep, and as long again every
 *   `ksmdCpuPerPreemptionNs` of its CPU time in a batch (preempted); neither
 *   is CPU it uses.
 *
 * - Reads. A guest's read is Host.read() of one byte of the page: a read
 *   fault, which leaves a merged page merged, except under vusion, whose trap
 *   copies the page (copy-on-access) until ksmd finds it idle and merges it
 *   again. So reads are neutral (they change no KSM counter) under every
 *   policy but vusion, and under vusion in runs of unique contents.
 *
 * - Steady-state fast-forward. With every guest started and nothing written
 *   or read that could change what is merged, once a whole pass merged and
 *   unmerged nothing and no unmerged page has a twin it could still merge
 *   with (checked over every page table, with the chains' max_page_sharing
 *   room; under trust-domains only twins of the same domain count, as
 *   only they share trees), no later pass can change pages_shared,
 *   pages_sharing, ksm_zero_pages or the rmap items: the saving is final. The
 *   rest of the run is then extrapolated from the last pass (CPU per second,
 *   passes per second) or, with smart_scan on, from the last 9 passes (one
 *   visit and the longest run of skips) once every skippable rmap item has
 *   reached that longest skip; pages_unshared/pages_volatile keep their last values
 *   (smart_scan moves never-matching pages between the two pass by pass).
 *   Samples so made say `extrapolated: true`. `fastForward: false` simulates
 *   every batch.
 */

import { pageChecksumNative } from '../backend/sim/native-checksum.ts';
import { pageCompareNative } from '../backend/sim/native-compare.ts';
import { Rng } from '../fuzz/rng.ts';
import { PAGE_SIZE } from '../host/constants.ts';
import { ErrnoError } from '../host/errno.ts';
import { FRAME_CSUM_VALID, FRAME_KSM } from '../host/frames.ts';
import { PR_SET_MEMORY_MERGE } from '../host/host.ts';
import type { Vma } from '../host/mm.ts';
import { type KsmCounters, SMART_SCAN_CYCLE_PASSES, wakeAfterSleepNs } from '../ksm/ksm.ts';
import { type PolicyConfig, trustDomainKeyOf } from '../policy/policy.ts';
import { trustDomainOf } from '../policy/trust-domains.ts';
import { ksmStatOf } from '../surface/procfs.ts';
import { SimulatedHost } from '../surface/simulated-host.ts';
import type { SysfsSetting } from '../workload/workload.ts';
import type { CompressionSample, ContentCompression } from './compression.ts';
import { ContentSpace, primeChecksum, valueChecksum } from './content.ts';
import { type CostFigures, CountingCostModel } from './cost.ts';
import { type GroupModel, type Scenario, totalGuestPages } from './scenario.ts';

/** One look at /sys/kernel/mm/ksm and the host, at virtual time `tMs`. */
export interface Sample {
  readonly tMs: number;
  readonly full_scans: number;
  readonly pages_shared: number;
  readonly pages_sharing: number;
  readonly pages_unshared: number;
  readonly pages_volatile: number;
  readonly pages_scanned: number;
  readonly pages_skipped: number;
  readonly ksm_zero_pages: number;
  readonly stable_node_chains: number;
  readonly stable_node_dups: number;
  readonly rmap_items: number;
  readonly general_profit: number;
  /** What ksmd uses now (the scan-time advisor changes it). */
  readonly pages_to_scan: number;
  /** ksmd's CPU time since the run started. */
  readonly ksmdCpuMs: number;
  /** ksmd's CPU use since the previous sample, in % of one CPU. */
  readonly ksmdCpuPercent: number;
  /** Guest frames in use plus KSM's rmap items: what the guests cost the host now. */
  readonly memoryInUseBytes: number;
  /** What the started guests would use without KSM. */
  readonly guestMemoryBytes: number;
  readonly guestsStarted: number;
  /** Writes that broke a merged page (COW), since the start. */
  readonly cowBreaks: number;
  readonly guestWrites: number;
  /** The guests' reads of their pages, since the start. */
  readonly guestReads: number;
  readonly extrapolated: boolean;
  /**
   * Kernel runs only: how long ksmd was runnable but waiting for a CPU since
   * the start (/proc/<ksmd>/schedstat run_delay). That is the machine's other
   * load, which the engine's clock does not have: the wall time less this is
   * what ksmd's own pacing took.
   */
  readonly ksmdRunDelayMs?: number;
  /** With a scenario's `compression:`: zram alone and KSM then zram, on the host's pages at this time. */
  readonly compression?: CompressionSample;
}

export interface EngineRunOptions {
  readonly figures: CostFigures;
  /** Written after the scenario's `ksm:` settings (advisor_mode last). */
  readonly settings?: readonly SysfsSetting[];
  readonly fastForward?: boolean;
  /**
   * Page contents as 64-bit fingerprints (default: 8 bytes a page, what makes
   * tens of GiB fit) or as bytes (4 KiB a page): the counters are the same.
   */
  readonly contentMode?: 'fingerprint' | 'bytes';
  /** Called at every sample with the fraction of the run's virtual time done. */
  readonly onSample?: (sample: Sample, fraction: number) => void;
  /** Compression figures at every sample (a walk over every frame: extrapolated samples reuse the last). */
  readonly compression?: ContentCompression;
  /** The host's merging policy (default none). */
  readonly policy?: PolicyConfig;
  /**
   * Whether the host's operator turns ksmd on (default true). Under a policy
   * other than none the settings and run=1 are written by an operator process
   * (root, CAP_SYS_ADMIN), which the policy may refuse.
   */
  readonly operatorEnablesKsmd?: boolean;
  /** Called once at the end with the engine as the run left it (doctor's `simulate --explain` reads its pages). */
  readonly onEnd?: (end: EngineEnd) => void;
}

/** The engine at the end of a run, and which process is which group's guest. */
export interface EngineEnd {
  readonly sim: SimulatedHost;
  readonly guests: ReadonlyArray<{ readonly pid: number; readonly group: string }>;
}

/** A guest's /proc/PID/ksm_stat at the end of a run. */
export interface ProcessOutcome {
  /** The guest's name (group name and number). */
  readonly name: string;
  /** The host process the guest is the twin of (twin.ts), if it is one. */
  readonly hostPid?: number;
  readonly ksm_rmap_items: number;
  readonly ksm_merging_pages: number;
  readonly ksm_zero_pages: number;
  readonly ksm_process_profit: number;
}

export interface EngineRun {
  readonly samples: readonly Sample[];
  /** Each guest at the end, in start order (absent where a run could not read them). */
  readonly processes?: readonly ProcessOutcome[];
  /** Settings in force at the start (after the scenario's and the run's). */
  readonly settings: Readonly<Record<string, string>>;
  /** When the steady-state fast-forward took over, if it did. */
  readonly steadyAtMs: number | undefined;
  /** Whether ksmd ran, and the errno when the policy refused to start it. */
  readonly ksmd: { readonly running: boolean; readonly refused?: string };
  /** Events the engine counted, for the summary and the statistics. */
  readonly stats: {
    readonly batches: number;
    readonly visits: number;
    /** Unstable tree steps. */
    readonly compares: number;
    readonly stableCompares: number;
    readonly merges: number;
    readonly checksumsCharged: number;
    readonly hashes: number;
  };
}

/** A sysfs write the engine (as the kernel) refused. */
export class SettingError extends Error {
  override name = 'SettingError';
}

interface Guest {
  readonly group: GroupModel;
  readonly pid: number;
  readonly vma: Vma;
  readonly baseAddress: number;
  /** First page of each content run. */
  readonly runStarts: readonly number[];
  /** Its trust domain (trustDomainOf) under trust-domains; '' under any other policy, where all pages meet. */
  readonly domain: string;
}

/** Accesses to one run of a group's pages, at a rate per started guest. */
interface AccessStream {
  readonly group: GroupModel;
  readonly runIndex: number;
  /** Accesses per second per started guest. */
  readonly ratePerGuest: number;
  /**
   * The accesses cannot change what is merged, so they do not stop the
   * fast-forward. Writes: a run of unique pages rewritten with unique
   * contents (no page of it can ever merge; its writes only keep its pages
   * volatile and cost checksums). Reads: see the file comment.
   */
  readonly neutral: boolean;
  /** A twin's volatile region (twin.ts). */
  readonly twin: boolean;
  /** The fraction of an access carried over to the next interval. */
  carry: number;
}

/** A run's writes: each gives a page unique contents. */
type WriteStream = AccessStream;
/** A run's reads: pages drawn as the writes are, each read once through Host.read(). */
type ReadStream = AccessStream;

const NS_PER_MS = 1e6;
/** Samples of a run whose compression figures are measured (the rest repeat the last). */
const COMPRESSION_MEASUREMENTS = 60;
/** "READ": what makes the reads' random stream another than the writes'. */
export const READ_SEED_SALT = 0x52454144;

/** Runs one scenario once on the engine. Deterministic: the same inputs give the same samples. */
export function runOnEngine(scenario: Scenario, options: EngineRunOptions): EngineRun {
  return new EngineRunner(scenario, options).run();
}

class EngineRunner {
  private readonly sim: SimulatedHost;
  private readonly cost: CountingCostModel;
  private readonly content = new ContentSpace();
  private readonly rng: Rng;
  /** The reads' own draws, from the seed too, so that adding reads to a scenario moves none of its writes. */
  private readonly readRng: Rng;
  private readonly guests: Guest[] = [];
  private readonly guestsByGroup = new Map<GroupModel, Guest[]>();
  private readonly streams: WriteStream[];
  private readonly readStreams: ReadStream[];
  private readonly samples: Sample[] = [];
  private readonly settingsInForce: Record<string, string> = {};
  private guestPages = 0;
  private writes = 0;
  private reads = 0;
  /** Writes of streams that are not neutral: they may merge or unmerge pages. */
  private mergingWrites = 0;
  private checksumsCharged = 0;
  private batches = 0;
  private visits = 0;
  private compares = 0;
  private stableCompares = 0;
  private merges = 0;
  private hashesByEngine = 0;
  private lastSampleCpuNs = 0;
  private lastSampleNs = 0;
  private ksmdRunning = false;
  private ksmdRefused: string | undefined;

  constructor(
    private readonly scenario: Scenario,
    private readonly options: EngineRunOptions,
  ) {
    this.cost = new CountingCostModel(options.figures);
    const pages = totalGuestPages(scenario);
    const frames = Math.ceil(pages * 1.01) + 4096 * scenario.host.numaNodes;
    this.sim = new SimulatedHost({
      memoryBytes: frames * PAGE_SIZE,
      numaNodes: scenario.host.numaNodes,
      contentMode: options.contentMode ?? 'fingerprint',
      thp: 'never',
      checksum: (bytes, offset) => {
        this.hashesByEngine++;
        return pageChecksumNative(bytes, offset);
      },
      pageCompare: pageCompareNative,
      costModel: this.cost,
      ...(options.policy === undefined ? {} : { policy: options.policy }),
    });
    this.rng = new Rng(scenario.seed);
    this.readRng = new Rng(new Rng(scenario.seed).nextU32() ^ READ_SEED_SALT);
    this.streams = scenario.groups.flatMap((group) =>
      group.content.flatMap((run, runIndex) =>
        run.writesPerSecond > 0
          ? [
              {
                group,
                runIndex,
                ratePerGuest: run.writesPerSecond,
                neutral: run.source.kind === 'unique',
                twin: run.source.kind === 'fingerprints',
                carry: 0,
              },
            ]
          : [],
      ),
    );
    // Only vusion's trap makes a read do anything to a present page (faultIn: PTE_TRAP).
    const readsCopy = options.policy?.name === 'vusion';
    this.readStreams = scenario.groups.flatMap((group) =>
      group.content.flatMap((run, runIndex) =>
        run.readsPerSecond > 0
          ? [
              {
                group,
                runIndex,
                ratePerGuest: run.readsPerSecond,
                neutral: !readsCopy || run.source.kind === 'unique',
                twin: run.source.kind === 'fingerprints',
                carry: 0,
              },
            ]
          : [],
      ),
    );
  }

  run(): EngineRun {
    this.applySettings();
    const ksm = this.sim.ksm;
    const clock = this.sim.host.clock;
    const endNs = this.scenario.durationMs * NS_PER_MS;
    const sampleNs = this.scenario.sampleEveryMs * NS_PER_MS;
    const starts = this.startSchedule();
    let startIndex = 0;
    let nextSampleNs = 0;
    let wakeAtNs = Number.POSITIVE_INFINITY;
    let lastWriteNs = 0;
    let steadyAtMs: number | undefined;
    const fastForward = this.options.fastForward ?? this.scenario.fastForward;
    const wakeDelayNs = this.scenario.host.ksmdWakeDelayNs ?? 0;
    // Pass bookkeeping for the steady state.
    let passSignature = '';
    let lastPass = { ns: 0, cpuNs: 0, scanned: 0, skipped: 0, passes: 0 };
    // The last SMART_SCAN_CYCLE_PASSES pass ends, newest last (the start of the
    // run first): a settled smart scan repeats its work every that many passes,
    // so the extrapolation averages them.
    const passEnds = [{ ns: 0, cpuNs: 0, scanned: 0, skipped: 0, seqnr: 0 }];
    let settledAtSeqnr = -1;
    let writesAtPassEnd = 0;
    let lastStartNs = 0;

    for (;;) {
      const nextStartNs = startIndex < starts.length ? starts[startIndex]!.atNs : Number.POSITIVE_INFINITY;
      const nextNs = Math.min(wakeAtNs, nextStartNs, nextSampleNs, endNs);
      clock.advanceTo(nextNs);
      const now = clock.nowNs;
      if ((this.streams.length > 0 || this.readStreams.length > 0) && now > lastWriteNs) {
        this.applyWrites((now - lastWriteNs) / 1e9);
        this.applyReads((now - lastWriteNs) / 1e9);
        lastWriteNs = now;
      }
      while (startIndex < starts.length && starts[startIndex]!.atNs <= now) {
        const s = starts[startIndex++]!;
        this.startGuest(s.group, s.index);
        lastStartNs = now;
        // An mm registering into an empty list wakes ksmd (__ksm_enter).
        if (wakeAtNs === Number.POSITIVE_INFINITY && ksm.settings.run & 1) wakeAtNs = now;
      }
      while (nextSampleNs <= now && nextSampleNs <= endNs) {
        this.record(nextSampleNs, false);
        nextSampleNs =
          nextSampleNs + sampleNs > endNs && nextSampleNs < endNs ? endNs : nextSampleNs + sampleNs;
      }
      if (nextSampleNs > endNs && now >= endNs) break;
      if (wakeAtNs > now) continue;

      const seqBefore = ksm.seqnr;
      this.batch();
      wakeAtNs =
        wakeAfterSleepNs(clock.nowNs, ksm.settings.sleepMillisecs) +
        (ksm.settings.sleepMillisecs > 0 ? wakeDelayNs : 0);
      if (ksm.seqnr === seqBefore) continue;

      // A pass ended in this batch.
      const signature = [
        ksm.pagesShared,
        ksm.pagesSharing,
        ksm.ksmZeroPages,
        ksm.rmapItems,
        ksm.stableNodeChains,
        ksm.stableNodeDups,
      ].join(',');
      const passEnd = passEnds.at(-1)!;
      const windowStart = passEnds[0]!;
      const window = ksm.settings.smartScan ? windowStart : passEnd;
      lastPass = {
        ns: clock.nowNs - window.ns,
        cpuNs: ksm.ksmdCpuNs - window.cpuNs,
        scanned: ksm.pagesScanned - window.scanned,
        skipped: ksm.pagesSkipped - window.skipped,
        passes: ksm.seqnr - window.seqnr,
      };
      const quiet =
        startIndex === starts.length &&
        this.streams.every((s) => s.neutral) &&
        this.readStreams.every((s) => s.neutral) &&
        this.mergingWrites === writesAtPassEnd &&
        passEnd.ns >= lastStartNs &&
        signature === passSignature;
      passSignature = signature;
      passEnds.push({
        ns: clock.nowNs,
        cpuNs: ksm.ksmdCpuNs,
        scanned: ksm.pagesScanned,
        skipped: ksm.pagesSkipped,
        seqnr: ksm.seqnr,
      });
      if (passEnds.length > SMART_SCAN_CYCLE_PASSES) passEnds.shift();
      writesAtPassEnd = this.mergingWrites;
      // With smart_scan on, a pass right after merging visits far more pages than
      // the passes that follow once skipping has built up: extrapolating from it
      // overstated ksmd's CPU (82 s instead of 49 s on multi-tenant). So the
      // extrapolation waits until skipping has settled and then averages a
      // whole cycle of passes made after that.
      const mayStop = fastForward && quiet && lastPass.ns > 0 && this.nothingLeftToMerge();
      if (!mayStop || !ksm.smartScanSettled()) settledAtSeqnr = -1;
      else if (settledAtSeqnr < 0) settledAtSeqnr = ksm.seqnr;
      const cycleBehind =
        !ksm.settings.smartScan ||
        (settledAtSeqnr >= 0 &&
          windowStart.seqnr >= settledAtSeqnr &&
          lastPass.passes >= SMART_SCAN_CYCLE_PASSES);
      if (mayStop && cycleBehind) {
        steadyAtMs = clock.nowNs / NS_PER_MS;
        this.extrapolate(nextSampleNs, endNs, sampleNs, lastPass);
        break;
      }
    }
    this.options.onEnd?.({
      sim: this.sim,
      guests: this.guests.map((g) => ({ pid: g.pid, group: g.group.name })),
    });
    return {
      samples: this.samples,
      processes: this.guests.map((g) => this.outcome(g)),
      settings: this.settingsInForce,
      steadyAtMs,
      ksmd:
        this.ksmdRefused === undefined
          ? { running: this.ksmdRunning }
          : { running: false, refused: this.ksmdRefused },
      stats: {
        batches: this.batches,
        visits: this.visits,
        compares: this.compares,
        stableCompares: this.stableCompares,
        merges: this.merges,
        checksumsCharged: this.checksumsCharged,
        hashes: this.content.hashes + this.hashesByEngine,
      },
    };
  }

  private outcome(guest: Guest): ProcessOutcome {
    const stat = ksmStatOf(this.sim.ksm, this.sim.host.process(guest.pid).mm);
    return {
      name: this.sim.host.process(guest.pid).comm,
      ...(guest.group.hostPid === undefined ? {} : { hostPid: guest.group.hostPid }),
      ksm_rmap_items: stat.ksm_rmap_items,
      ksm_merging_pages: stat.ksm_merging_pages,
      ksm_zero_pages: stat.ksm_zero_pages,
      ksm_process_profit: stat.ksm_process_profit,
    };
  }

  // ---------------------------------------------------------------- settings

  private applySettings(): void {
    const all = [...this.scenario.ksm, ...(this.options.settings ?? [])];
    // advisor_mode last: while it is scan-time, pages_to_scan refuses writes (EINVAL).
    const ordered = [
      ...all.filter((s) => s.name !== 'advisor_mode' && s.name !== 'run'),
      ...all.filter((s) => s.name === 'advisor_mode'),
    ];
    // Under a policy the operator writes as a process the policy can judge (and audit).
    const policy = this.options.policy?.name ?? 'none';
    const operator = policy === 'none' ? undefined : this.sim.host.spawn({ comm: 'ksmctl' }).pid;
    const write = (name: string, value: string) =>
      operator === undefined
        ? this.sim.sysfs.write(name, value)
        : this.sim.writeSysfsAs(operator, name, value);
    for (const { name, value } of ordered) {
      try {
        write(name, value);
      } catch (e) {
        if (e instanceof ErrnoError)
          throw new SettingError(`${e.code}: the kernel refuses ${name}=${JSON.stringify(value)}`);
        throw e;
      }
    }
    for (const name of [
      'pages_to_scan',
      'sleep_millisecs',
      'max_page_sharing',
      'merge_across_nodes',
      'use_zero_pages',
      'smart_scan',
      'advisor_mode',
      'advisor_max_cpu',
      'advisor_target_scan_time',
    ]) {
      const text = this.sim.sysfs.read(name).trim();
      this.settingsInForce[name] = name === 'advisor_mode' ? (/\[([^\]]+)\]/.exec(text)?.[1] ?? text) : text;
    }
    if (this.options.operatorEnablesKsmd === false) return;
    try {
      write('run', '1');
      this.ksmdRunning = true;
    } catch (e) {
      // A policy that forbids ksmd (fortress) leaves it off: the run shows what that costs.
      if (!(e instanceof ErrnoError) || operator === undefined) throw e;
      this.ksmdRefused = e.code;
    }
  }

  // ---------------------------------------------------------------- guests

  private startSchedule(): { atNs: number; group: GroupModel; index: number }[] {
    const out: { atNs: number; group: GroupModel; index: number }[] = [];
    for (const group of this.scenario.groups) {
      for (let i = 0; i < group.count; i++)
        out.push({ atNs: (group.startAtMs + i * group.startEveryMs) * NS_PER_MS, group, index: i });
    }
    // Stable: same time keeps file order.
    return out.sort((a, b) => a.atNs - b.atNs);
  }

  private startGuest(group: GroupModel, index: number): void {
    const host = this.sim.host;
    const nid = this.guests.length % this.scenario.host.numaNodes;
    const t = group.tenant;
    const p = host.spawn({
      comm: `${group.name}-${index + 1}`,
      nid,
      ...(t === undefined ? {} : { uid: t.uid, cgroup: t.cgroup, label: t.label, capSysAdmin: false }),
    });
    if (group.merge === 'prctl') host.prctl(p.pid, PR_SET_MEMORY_MERGE, 1);
    const lengthBytes = group.pageCount * PAGE_SIZE;
    const base = host.mmap(p.pid, { lengthBytes });
    const vma = p.mm.findVma(base / PAGE_SIZE)!;
    const frames = host.frames;
    const content = this.content;
    const runStarts: number[] = [];
    let page = 0;
    for (const run of group.content) {
      runStarts.push(page);
      for (let i = 0; i < run.pageCount; i++, page++) {
        const recurring = content.value(run.source, i);
        host.writePageValue(p.pid, base + page * PAGE_SIZE, content.hi, content.lo);
        primeChecksum(frames, vma.pte[page]! - 1, content.checksum(recurring));
      }
    }
    if (group.merge === 'madvise') host.madvise(p.pid, base, lengthBytes, 'mergeable');
    const policy = this.options.policy;
    const domain =
      policy?.name === 'trust-domains' ? trustDomainOf(p.mm.owner, trustDomainKeyOf(policy)) : '';
    const guest: Guest = { group, pid: p.pid, vma, baseAddress: base, runStarts, domain };
    this.guests.push(guest);
    const list = this.guestsByGroup.get(group) ?? [];
    list.push(guest);
    this.guestsByGroup.set(group, list);
    this.guestPages += group.pageCount;
  }

  /** The writes due over `seconds` of guest time: each one gives a page of the run contents of its own. */
  private applyWrites(seconds: number): void {
    const host = this.sim.host;
    const frames = host.frames;
    for (const stream of this.streams) {
      const n = this.dueAccesses(stream, seconds, this.rng, (guest, page) => {
        this.content.unique();
        host.writePageValue(
          guest.pid,
          guest.baseAddress + page * PAGE_SIZE,
          this.content.hi,
          this.content.lo,
        );
        // A neutral page's checksum is needed only if ksmd visits it before the next write: left to the
        // engine. So is a twin's (its regions are rewritten for as long as the run lasts, so they stop
        // the fast-forward anyway, and hashing thousands of writes a second would cost more than ksmd's visits).
        if (!stream.neutral && !stream.twin)
          primeChecksum(frames, guest.vma.pte[page]! - 1, this.content.checksum(false));
      });
      this.writes += n;
      if (!stream.neutral) this.mergingWrites += n;
    }
  }

  /** The reads due over `seconds` of guest time: one byte of each drawn page, through the read fault path. */
  private applyReads(seconds: number): void {
    const host = this.sim.host;
    for (const stream of this.readStreams) {
      this.reads += this.dueAccesses(stream, seconds, this.readRng, (guest, page) => {
        host.read(guest.pid, guest.baseAddress + page * PAGE_SIZE, 1);
      });
    }
  }

  /**
   * The accesses of `stream` due over `seconds` (the fraction left over is
   * carried to the next call), each at a guest and page of the run drawn from
   * `rng`; returns how many were made.
   */
  private dueAccesses(
    stream: AccessStream,
    seconds: number,
    rng: Rng,
    access: (guest: Guest, page: number) => void,
  ): number {
    const guests = this.guestsByGroup.get(stream.group);
    if (guests === undefined || guests.length === 0) return 0;
    const due = stream.ratePerGuest * guests.length * seconds + stream.carry;
    const n = Math.floor(due);
    stream.carry = due - n;
    const runPages = stream.group.content[stream.runIndex]!.pageCount;
    for (let k = 0; k < n; k++) {
      const guest = guests[guests.length === 1 ? 0 : Math.floor(rng.next() * guests.length)]!;
      access(guest, guest.runStarts[stream.runIndex]! + Math.floor(rng.next() * runPages));
    }
    return n;
  }

  // ---------------------------------------------------------------- ksmd

  private batch(): void {
    const ksm = this.sim.ksm;
    const cost = this.cost;
    const cpuBeforeNs = ksm.ksmdCpuNs;
    cost.reset();
    ksm.scanPages(ksm.settings.pagesToScan);
    this.batches += cost.batches;
    this.visits += cost.visits;
    this.compares += cost.compares;
    this.stableCompares += cost.stableCompares;
    this.merges += cost.merges;
    this.checksumsCharged += cost.checksums;
    const host = this.scenario.host;
    const perPreemptionNs = host.ksmdCpuPerPreemptionNs ?? 0;
    const waitNs = host.ksmdWakeDelayNs ?? 0;
    if (perPreemptionNs > 0 && waitNs > 0)
      this.sim.host.clock.advanceNs(((ksm.ksmdCpuNs - cpuBeforeNs) / perPreemptionNs) * waitNs);
  }

  /**
   * Whether no page that is not merged could still merge: no two unmerged
   * pages with one content, none whose content a KSM page with room (fewer
   * than max_page_sharing mappings) has, and no empty one while use_zero_pages
   * is on. Checksums narrow the search (equal contents have equal checksums);
   * pages whose checksums meet are then compared. Under trust-domains each
   * domain is looked at alone: its pages meet only its own trees, so a page
   * whose only twins are in other domains can never merge (and a KSM page is
   * mapped by one domain only).
   */
  private nothingLeftToMerge(): boolean {
    const byDomain = new Map<string, Guest[]>();
    for (const guest of this.guests) {
      const list = byDomain.get(guest.domain);
      if (list === undefined) byDomain.set(guest.domain, [guest]);
      else list.push(guest);
    }
    for (const guests of byDomain.values()) if (!this.nothingLeftToMergeAmong(guests)) return false;
    return true;
  }

  /** nothingLeftToMerge() for pages that may all meet in one set of trees. */
  private nothingLeftToMergeAmong(guests: readonly Guest[]): boolean {
    const frames = this.sim.host.frames;
    const flags = frames.flags;
    const sums = frames.checksum;
    const mapcount = frames.mapcount;
    const settings = this.sim.ksm.settings;
    const maxSharing = settings.maxPageSharing;
    const zeroSum = valueChecksum(0, 0);
    let unmerged: Uint32Array = new Uint32Array(1 << 16);
    let withRoom: Uint32Array = new Uint32Array(1 << 12);
    let u = 0;
    let r = 0;
    // Runs of unique contents (rewritten, if at all, with unique contents) hold no page that could merge;
    // under zero-pages-only neither does any run but zeroes.
    const zeroOnly = this.options.policy?.name === 'zero-pages-only';
    const each = (visit: (frame: number, merged: boolean) => void): void => {
      for (const guest of guests) {
        const pte = guest.vma.pte;
        const runs = guest.group.content;
        for (let r = 0; r < runs.length; r++) {
          const kind = runs[r]!.source.kind;
          if (kind === 'unique' || (zeroOnly && kind !== 'zero')) continue;
          const from = guest.runStarts[r]!;
          const to = from + runs[r]!.pageCount;
          for (let i = from; i < to; i++) {
            const entry = pte[i]!;
            if (entry <= 0) continue;
            const frame = entry - 1;
            if (flags[frame]! & FRAME_KSM) {
              if (mapcount[frame]! < maxSharing) visit(frame, true);
            } else {
              visit(frame, false);
            }
          }
        }
      }
    };
    let unknown = false;
    each((frame, merged) => {
      if (merged) {
        if (r === withRoom.length) withRoom = grow(withRoom);
        withRoom[r++] = sums[frame]!;
        return;
      }
      if (!(flags[frame]! & FRAME_CSUM_VALID)) unknown = true;
      if (u === unmerged.length) unmerged = grow(unmerged);
      unmerged[u++] = sums[frame]!;
    });
    if (unknown) return false;
    const a = unmerged.subarray(0, u).sort();
    const b = withRoom.subarray(0, r).sort();
    if (settings.useZeroPages && binarySearch(a, zeroSum)) {
      // An empty page that use_zero_pages would map the zero page instead of.
      let empty = false;
      each((frame, merged) => {
        if (!merged && sums[frame] === zeroSum && frames.isZero(frame)) empty = true;
      });
      if (empty) return false;
    }
    // Checksums that meet: two unmerged pages, or an unmerged page and a KSM page with room.
    const meeting = new Set<number>();
    for (let i = 1; i < u; i++) if (a[i] === a[i - 1]) meeting.add(a[i]!);
    for (let i = 0, j = 0; i < u && j < r; ) {
      if (a[i]! === b[j]!) {
        meeting.add(a[i]!);
        i++;
      } else if (a[i]! < b[j]!) {
        i++;
      } else {
        j++;
      }
    }
    if (meeting.size === 0) return true;
    const groups = new Map<number, { unmerged: number[]; merged: number[] }>();
    each((frame, merged) => {
      const sum = sums[frame]!;
      if (!meeting.has(sum)) return;
      const g = groups.get(sum) ?? { unmerged: [], merged: [] };
      groups.set(sum, g);
      if (merged) {
        if (!g.merged.includes(frame)) g.merged.push(frame);
      } else {
        g.unmerged.push(frame);
      }
    });
    for (const g of groups.values()) {
      for (let i = 0; i < g.unmerged.length; i++) {
        const f = g.unmerged[i]!;
        for (let j = i + 1; j < g.unmerged.length; j++) if (frames.equal(f, g.unmerged[j]!)) return false;
        for (const k of g.merged) if (frames.equal(f, k)) return false;
      }
    }
    return true;
  }

  // ---------------------------------------------------------------- samples

  private record(atNs: number, extrapolated: boolean): void {
    const ksm = this.sim.ksm;
    const c = ksm.counters();
    this.pushSample(atNs, c, {
      fullScans: c.full_scans,
      pagesScanned: c.pages_scanned,
      pagesSkipped: c.pages_skipped,
      cpuNs: ksm.ksmdCpuNs,
      guestWrites: this.writes,
      guestReads: this.reads,
      extrapolated,
      progress: atNs / (this.scenario.durationMs * NS_PER_MS),
    });
  }

  /** One sample: the counters that do not move, and those that do (measured, or extrapolated). */
  private pushSample(
    atNs: number,
    c: KsmCounters,
    moving: {
      readonly fullScans: number;
      readonly pagesScanned: number;
      readonly pagesSkipped: number;
      readonly cpuNs: number;
      readonly guestWrites: number;
      readonly guestReads: number;
      readonly extrapolated: boolean;
      readonly progress: number;
    },
  ): void {
    const dtNs = atNs - this.lastSampleNs;
    const sample: Sample = {
      tMs: atNs / NS_PER_MS,
      full_scans: moving.fullScans,
      pages_shared: c.pages_shared,
      pages_sharing: c.pages_sharing,
      pages_unshared: c.pages_unshared,
      pages_volatile: c.pages_volatile,
      pages_scanned: moving.pagesScanned,
      pages_skipped: moving.pagesSkipped,
      ksm_zero_pages: c.ksm_zero_pages,
      stable_node_chains: c.stable_node_chains,
      stable_node_dups: c.stable_node_dups,
      rmap_items: c.rmap_items,
      general_profit: c.general_profit,
      pages_to_scan: this.sim.ksm.settings.pagesToScan,
      ksmdCpuMs: moving.cpuNs / NS_PER_MS,
      ksmdCpuPercent: dtNs > 0 ? ((moving.cpuNs - this.lastSampleCpuNs) / dtNs) * 100 : 0,
      memoryInUseBytes: this.sim.host.frames.usedFrames * PAGE_SIZE + c.rmap_items * 64,
      guestMemoryBytes: this.guestPages * PAGE_SIZE,
      guestsStarted: this.guests.length,
      cowBreaks: this.sim.host.vmstat.cow_ksm,
      guestWrites: moving.guestWrites,
      guestReads: moving.guestReads,
      extrapolated: moving.extrapolated,
      ...this.compressionAt(atNs, c, moving.extrapolated),
    };
    this.lastSampleCpuNs = moving.cpuNs;
    this.lastSampleNs = atNs;
    this.samples.push(sample);
    this.options.onSample?.(sample, moving.progress);
  }

  /**
   * The compression figures of a sample: measured on the frames (a walk over
   * all of them: at most COMPRESSION_MEASUREMENTS times a run, and at its
   * end), else the last ones, as for extrapolated samples where nothing moves.
   */
  private compressionAt(
    atNs: number,
    c: KsmCounters,
    extrapolated: boolean,
  ): { compression?: CompressionSample } {
    const compression = this.options.compression;
    if (compression === undefined) return {};
    const last = this.samples.at(-1)?.compression;
    const every = Math.ceil(
      this.scenario.durationMs / this.scenario.sampleEveryMs / COMPRESSION_MEASUREMENTS,
    );
    const due = this.samples.length % every === 0 || atNs >= this.scenario.durationMs * NS_PER_MS;
    if (last !== undefined && (extrapolated || !due)) return { compression: last };
    return { compression: compression.measureHost(this.sim.host.frames, c.ksm_zero_pages, c.general_profit) };
  }

  /** Fills the remaining samples from the last pass's rates (see the file comment). */
  private extrapolate(
    fromNs: number,
    endNs: number,
    sampleNs: number,
    pass: { ns: number; cpuNs: number; scanned: number; skipped: number; passes: number },
  ): void {
    const ksm = this.sim.ksm;
    const clock = this.sim.host.clock;
    const nowNs = clock.nowNs;
    const cpuRate = pass.cpuNs / pass.ns;
    const start = {
      full_scans: ksm.seqnr,
      pages_scanned: ksm.pagesScanned,
      pages_skipped: ksm.pagesSkipped,
      cpuNs: ksm.ksmdCpuNs,
    };
    const c = ksm.counters();
    const perNs = (streams: readonly AccessStream[]): number =>
      streams.reduce(
        (sum, s) => sum + (s.ratePerGuest * (this.guestsByGroup.get(s.group)?.length ?? 0)) / 1e9,
        0,
      );
    const writesPerNs = perNs(this.streams);
    const readsPerNs = perNs(this.readStreams);
    for (let atNs = fromNs; atNs <= endNs; ) {
      const elapsed = Math.max(0, atNs - nowNs);
      this.pushSample(atNs, c, {
        fullScans: start.full_scans + Math.floor((elapsed / pass.ns) * pass.passes),
        pagesScanned: Math.round(start.pages_scanned + (elapsed / pass.ns) * pass.scanned),
        pagesSkipped: Math.round(start.pages_skipped + (elapsed / pass.ns) * pass.skipped),
        cpuNs: start.cpuNs + elapsed * cpuRate,
        guestWrites: Math.round(this.writes + elapsed * writesPerNs),
        guestReads: Math.round(this.reads + elapsed * readsPerNs),
        extrapolated: true,
        progress: atNs / endNs,
      });
      if (atNs === endNs) break;
      atNs = Math.min(atNs + sampleNs, endNs);
    }
  }
}

/**
 * When ksmd wakes from `sleep_millisecs` begun at `nowNs`: schedule_timeout()
 * arms a timer for jiffies + n, and the timer wheel rounds every expiry up by
 * one tick of its level so that no timer fires early (kernel/time/timer.c,
 * calc_index), so the timer fires on the (n + 1)th tick boundary from now.
 * Measured on 6.18.44 (HZ 250): sleep_millisecs 20 gives a 24 ms period, 1 gives
 * 8 ms. 0 does not sleep at all.
 */
export { wakeAfterSleepNs as ksmdWakeAfterSleepNs };

function binarySearch(sorted: Uint32Array, value: number): boolean {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo < sorted.length && sorted[lo] === value;
}

function grow(a: Uint32Array): Uint32Array {
  const b = new Uint32Array(a.length * 2);
  b.set(a);
  return b;
}
