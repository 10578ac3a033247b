/**
 * `ksmkit calibrate`: measures, on this machine's kernel, what ksmd's work
 * costs in CPU time, in the terms of the engine's cost model, and what a COW
 * break costs a guest.
 *
 * ksmd's CPU time is read from /proc/<ksmd>/schedstat (ns on CPU) around
 * single full passes, stepped by the kernel backend (one batch = one pass).
 * The same workloads run on the engine with a counting cost model, which
 * gives for each pass how many pages were visited, memcmp'd and merged; the
 * kernel computes a checksum for every visited page that is not a KSM page.
 * Four passes then give the figures one at a time:
 *
 * | pass                                   | kernel work                         | gives      |
 * |----------------------------------------|-------------------------------------|------------|
 * | S: all pages merged, steady            | visit                               | visitPageNs |
 * | V: all pages rewritten since last pass | visit + checksum                    | checksumNs |
 * | U: unique pages, checksum stable       | visit + checksum + unstable-tree memcmps | compareNs |
 * | M: pages of one content meet           | visit + checksum + memcmps + merges | mergeNs    |
 *
 * The M workload is every page with one content and max_page_sharing above
 * the page count: each page then meets the one KSM page after a single
 * memcmp, so the pass is mostly merges. batchNs comes from ksmd running free
 * with pages_to_scan 10 and sleep_millisecs 1 over merged pages (CPU per
 * batch, wake-up included, less its visits), and
 * cowBreakNs from timing a write to every merged page of a process against
 * the same write once the pages are private. Each figure is the median of
 * `repeat` rounds. Runs only where the kernel backend can (root, KSM, the
 * agent built); the settings are restored on every exit path.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { KernelBackend } from '../backend/kernel/kernel-backend.ts';
import { readKsmNumber, writeKsm } from '../backend/kernel/ksm-sysfs.ts';
import { PAGE_SIZE } from '../host/constants.ts';
import { SimulatedHost } from '../surface/simulated-host.ts';
import { AddressLayout } from '../workload/layout.ts';
import { ContentSpace, valuePage } from './content.ts';
import { type Calibration, type CostFigures, CountingCostModel, SHIPPED_CALIBRATION } from './cost.ts';
import { kernelRunUnavailable, ksmdCpuNs, ksmdPid } from './kernel-run.ts';

export interface CalibrateOptions {
  /** Pages per process (4 processes per workload); default 16384 (64 MiB). */
  readonly pagesPerProcess?: number;
  readonly repeat?: number;
  readonly force?: boolean;
  readonly log?: (line: string) => void;
}

export interface PassMeasure {
  readonly name: 'S' | 'V' | 'U' | 'M';
  readonly cpuNs: number;
  readonly visits: number;
  readonly checksums: number;
  readonly compares: number;
  readonly merges: number;
}

export interface CalibrationRound {
  readonly passes: readonly PassMeasure[];
  readonly batch: { readonly cpuNs: number; readonly batches: number; readonly visits: number };
  readonly cow: { readonly cowMs: number; readonly plainMs: number; readonly pages: number };
}

const PROCESSES = 4;
/** The M workload's pages: all one content. */
const ONE_CONTENT = { kind: 'byte', value: 0x5a } as const;

/** Above the page count: one KSM page takes every mapping, no stable node chain. */
function maxPageSharing(pagesPerProcess: number): number {
  return PROCESSES * pagesPerProcess + 1;
}
const REGION = 'ram';

/** Event counts of the calibration passes, from the engine. */
interface EngineCounts {
  readonly U: PassMeasure;
  readonly V: PassMeasure;
  readonly M: PassMeasure;
  readonly S: PassMeasure;
}

/** The calibration workloads on the engine: what each measured pass does, counted. */
export function engineCounts(pagesPerProcess: number): EngineCounts {
  const count = (
    build: (sim: SimulatedHost, content: ContentSpace, pids: number[], base: number[]) => void,
  ) => {
    const cost = new CountingCostModel(SHIPPED_CALIBRATION.figures);
    const sim = new SimulatedHost({
      memoryBytes: (PROCESSES * pagesPerProcess + 8192) * PAGE_SIZE,
      contentMode: 'fingerprint',
      thp: 'never',
      costModel: cost,
    });
    const pids: number[] = [];
    const bases: number[] = [];
    const content = new ContentSpace();
    sim.sysfs.write('max_page_sharing', String(maxPageSharing(pagesPerProcess)));
    build(sim, content, pids, bases);
    sim.sysfs.write('run', '1');
    return { sim, cost, content, pids, bases };
  };
  const pass = (
    run: { sim: SimulatedHost; cost: CountingCostModel },
    name: PassMeasure['name'],
    checksums: 'all' | 'none',
  ): PassMeasure => {
    run.cost.reset();
    const scanned = run.sim.ksm.pagesScanned;
    run.sim.ksm.fullScans(1);
    const processed = run.sim.ksm.pagesScanned - scanned;
    return {
      name,
      cpuNs: 0,
      visits: run.cost.visits,
      checksums: checksums === 'all' ? processed : 0,
      compares: run.cost.compares,
      merges: run.cost.merges,
    };
  };
  const fill =
    (unique: boolean) => (sim: SimulatedHost, content: ContentSpace, pids: number[], bases: number[]) => {
      for (let p = 0; p < PROCESSES; p++) {
        const proc = sim.host.spawn();
        const base = sim.host.mmap(proc.pid, { lengthBytes: pagesPerProcess * PAGE_SIZE });
        for (let i = 0; i < pagesPerProcess; i++) {
          if (unique) content.unique();
          else content.value(ONE_CONTENT, i);
          sim.host.writePageValue(proc.pid, base + i * PAGE_SIZE, content.hi, content.lo);
        }
        sim.host.madvise(proc.pid, base, pagesPerProcess * PAGE_SIZE, 'mergeable');
        pids.push(proc.pid);
        bases.push(base);
      }
    };
  // Unique pages: pass 1 (first look), pass 2 = U, then everything rewritten, pass 3 = V.
  const u = count(fill(true));
  pass(u, 'U', 'all');
  const U = pass(u, 'U', 'all');
  for (let p = 0; p < PROCESSES; p++) {
    for (let i = 0; i < pagesPerProcess; i++) {
      u.content.unique();
      u.sim.host.writePageValue(u.pids[p]!, u.bases[p]! + i * PAGE_SIZE, u.content.hi, u.content.lo);
    }
  }
  const V = pass(u, 'V', 'all');
  // Identical pages: pass 1, pass 2 = M (merges), pass 3 = S (steady).
  const m = count(fill(false));
  pass(m, 'M', 'all');
  const M = pass(m, 'M', 'all');
  const S = pass(m, 'S', 'none');
  return { U, V, M, S };
}

/** The figures from one round's measures (see the table at the top). */
export function solveFigures(round: CalibrationRound): CostFigures {
  const get = (name: PassMeasure['name']) => round.passes.find((p) => p.name === name)!;
  const S = get('S');
  const V = get('V');
  const U = get('U');
  const M = get('M');
  const visitPageNs = S.cpuNs / S.visits;
  const checksumNs = Math.max(0, (V.cpuNs - V.visits * visitPageNs) / V.checksums);
  const base = (p: PassMeasure): number => p.visits * visitPageNs + p.checksums * checksumNs;
  const compareNs = U.compares > 0 ? Math.max(0, (U.cpuNs - base(U)) / U.compares) : 0;
  const mergeNs = M.merges > 0 ? Math.max(0, (M.cpuNs - base(M) - M.compares * compareNs) / M.merges) : 0;
  const batchNs = Math.max(
    0,
    (round.batch.cpuNs - round.batch.visits * visitPageNs) / Math.max(1, round.batch.batches),
  );
  const cowBreakNs = Math.max(0, ((round.cow.cowMs - round.cow.plainMs) * 1e6) / round.cow.pages);
  return { batchNs, visitPageNs, checksumNs, compareNs, mergeNs, cowBreakNs };
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function rounded(f: CostFigures): CostFigures {
  const r = (n: number): number => Math.round(n);
  return {
    batchNs: r(f.batchNs),
    visitPageNs: r(f.visitPageNs),
    checksumNs: r(f.checksumNs),
    compareNs: r(f.compareNs),
    mergeNs: r(f.mergeNs),
    cowBreakNs: r(f.cowBreakNs),
  };
}

/** Measures the figures on this machine. Throws with a one-line reason where the kernel backend cannot run. */
export async function calibrate(options: CalibrateOptions = {}): Promise<Calibration> {
  const unavailable = kernelRunUnavailable();
  if (unavailable !== undefined) throw new Error(`cannot calibrate here: ${unavailable}`);
  const pages = options.pagesPerProcess ?? 16384;
  const repeat = options.repeat ?? 3;
  const log = options.log ?? (() => undefined);
  const counts = engineCounts(pages);
  const rounds: CalibrationRound[] = [];
  for (let i = 0; i < repeat; i++) {
    log(`round ${i + 1} of ${repeat}: ${PROCESSES} processes of ${pages} pages, four measured passes`);
    const round = await measureRound(pages, counts, options.force ?? false);
    for (const p of round.passes) {
      log(
        `  pass ${p.name}: ${(p.cpuNs / 1e6).toFixed(2)} ms of ksmd CPU for ${p.visits} visits, ` +
          `${p.checksums} checksums, ${p.compares} memcmps, ${p.merges} merges`,
      );
    }
    log(
      `  free run: ${(round.batch.cpuNs / 1e6).toFixed(2)} ms for ${round.batch.batches} batches of ${round.batch.visits} visits; ` +
        `COW: ${round.cow.cowMs.toFixed(1)} ms writing ${round.cow.pages} merged pages, ${round.cow.plainMs.toFixed(1)} ms private`,
    );
    rounds.push(round);
  }
  const solved = rounds.map(solveFigures);
  const pick = (k: keyof CostFigures): number => median(solved.map((f) => f[k]));
  const figures = rounded({
    batchNs: pick('batchNs'),
    visitPageNs: pick('visitPageNs'),
    checksumNs: pick('checksumNs'),
    compareNs: pick('compareNs'),
    mergeNs: pick('mergeNs'),
    cowBreakNs: pick('cowBreakNs'),
  });
  const { release, cpus } = await import('node:os');
  return {
    version: 1,
    figures,
    measuredOn: `Linux ${release()}, ${cpus()[0]?.model.trim() ?? 'unknown CPU'} ×${cpus().length}, ${new Date().toISOString().slice(0, 10)}`,
    method: `ksmkit calibrate (${PROCESSES}×${pages} pages, median of ${repeat} rounds)`,
  };
}

async function measureRound(pages: number, counts: EngineCounts, force: boolean): Promise<CalibrationRound> {
  const backend = new KernelBackend({ force });
  const content = new ContentSpace();
  try {
    await backend.start([['max_page_sharing', String(maxPageSharing(pages))]]);
    const pid = ksmdPid();
    const measurePass = async (engine: PassMeasure, before?: () => Promise<void>): Promise<PassMeasure> => {
      await before?.();
      const cpu0 = ksmdCpuNs(pid);
      await backend.scan(1);
      return { ...engine, cpuNs: ksmdCpuNs(pid) - cpu0 };
    };
    const fill = async (prefix: string, unique: boolean): Promise<string[]> => {
      const layout = new AddressLayout();
      const names: string[] = [];
      for (let p = 0; p < PROCESSES; p++) {
        const name = `${prefix}-${p + 1}`;
        await backend.spawn(name, { memoryMerge: false });
        layout.spawn(name);
        const address = layout.place(name, REGION, pages);
        await backend.mmap(name, { name: REGION, address, pageCount: pages, shared: false, thp: false });
        await write(name, unique);
        await backend.madvise(name, REGION, 'mergeable');
        names.push(name);
      }
      return names;
    };
    const write = async (name: string, unique: boolean): Promise<number> => {
      const bytes = new Uint8Array(pages * PAGE_SIZE);
      for (let i = 0; i < pages; i++) {
        if (unique) content.unique();
        else content.value(ONE_CONTENT, i);
        valuePage(content.hi, content.lo, bytes, i * PAGE_SIZE);
      }
      const started = performance.now();
      const r = await backend.write(name, REGION, 0, bytes);
      if (!r.ok) throw new Error(`${r.errno}: cannot write the calibration pages of ${name}`);
      return performance.now() - started;
    };

    // Unique pages: first look, U, then rewritten, V.
    const unique = await fill('u', true);
    await backend.scan(1);
    const U = await measurePass(counts.U);
    const V = await measurePass(counts.V, async () => {
      for (const name of unique) await write(name, true);
    });
    for (const name of unique) await backend.exit(name);
    // Identical pages: first look, M, S.
    const same = await fill('m', false);
    await backend.scan(1);
    const M = await measurePass(counts.M);
    const S = await measurePass(counts.S);

    // Batches: ksmd free over the merged pages, 10 pages a batch, a jiffy's sleep between.
    const scanned0 = readKsmNumber('pages_scanned');
    const cpu0 = ksmdCpuNs(pid);
    writeKsm('pages_to_scan', '10');
    writeKsm('sleep_millisecs', '1');
    writeKsm('run', '1');
    await sleep(1000);
    writeKsm('sleep_millisecs', '3600000');
    writeKsm('pages_to_scan', '0');
    await sleep(50);
    const batchVisits = readKsmNumber('pages_scanned') - scanned0;
    const batch = { cpuNs: ksmdCpuNs(pid) - cpu0, batches: Math.ceil(batchVisits / 10), visits: batchVisits };

    // COW: every merged page of one process written (breaks), then written again (private).
    const cowMs = await write(same[0]!, true);
    const plainMs = await write(same[0]!, true);
    return { passes: [S, V, U, M], batch, cow: { cowMs, plainMs, pages } };
  } finally {
    await backend.close();
  }
}
