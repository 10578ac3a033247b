/**
 * `ksmkit calibrate`: measures, on this machine's kernel, what ksmd's work
 * costs in CPU time, in the terms of the engine's cost model, and what a COW
 * break costs a guest.
 *
 * ksmd's CPU time is read from /proc/<ksmd>/schedstat (ns on CPU) around
 * single full passes, stepped by the kernel backend (one batch = one pass).
 * The same sequence of workloads and passes runs on the engine with a
 * counting cost model, which gives for each pass how many pages were
 * visited, checksummed, compared (unstable and stable tree steps apart) and
 * merged. Five passes then give the figures one at a time:
 *
 * | pass | pages                                              | kernel work                          | gives           |
 * |------|----------------------------------------------------|--------------------------------------|-----------------|
 * | U    | unique, checksums stable, no KSM page anywhere     | visit + checksum + unstable steps    | compareNs       |
 * | V    | the same, all rewritten since the last pass        | visit + checksum                     | checksumNs      |
 * | T    | the same unique pages beside a stable tree of many | U's work + stable steps + KSM visits | stableCompareNs |
 * | S    | pairs of equal pages merged (distinct KSM pages)   | visit                                | visitPageNs     |
 * | M    | pages of one content meet                          | visit + checksum + steps + merges    | mergeNs         |
 *
 * (solved in the order S, V, U, T, M). S visits distinct KSM pages, as a
 * converged host does: one KSM page mapped everywhere stays in cache and
 * would understate a visit. The M workload is every page with one content
 * and max_page_sharing above the page count: each page then meets the one KSM
 * page after a single step, so the pass is mostly merges. batchNs comes from
 * ksmd running free with pages_to_scan 10 and sleep_millisecs 20 over merged
 * pages (CPU per batch, wake-up included, less its visits), and cowBreakNs
 * from timing a write to every merged page of a process against the same
 * write once the pages are private. Each figure is the median of `repeat`
 * rounds. Runs only where the kernel backend can (root, KSM, the agent
 * built); the settings are restored on every exit path.
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
  readonly name: 'S' | 'V' | 'U' | 'T' | 'M';
  readonly cpuNs: number;
  readonly visits: number;
  readonly checksums: number;
  /** Unstable tree steps. */
  readonly compares: number;
  readonly stableCompares: number;
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
/** The T and S workloads' pages: page i of one image in each of two processes. */
const PAIRED = { kind: 'image', image: 'calibrate', offsetPages: 0 } as const;

/** Above the page count: one KSM page takes every mapping, no stable node chain. */
function maxPageSharing(pagesPerProcess: number): number {
  return PROCESSES * pagesPerProcess + 1;
}
const REGION = 'ram';
/** The free run that measures a batch: sleep_millisecs and how long. */
const BATCH_SLEEP_MS = 20;
const BATCH_RUN_MS = 2000;

type PassName = PassMeasure['name'];
type Fill = 'unique' | 'paired' | 'one';

/** What the calibration sequence needs of a backend: the engine counts a pass, the kernel times it. */
interface CalibrationDriver {
  spawn(name: string, fill: Fill): Promise<void>;
  /** Every page of the process written again with contents no page had. */
  rewrite(name: string): Promise<void>;
  exit(name: string): Promise<void>;
  /** One full pass; `name` when it is measured. */
  pass(name?: PassName): Promise<PassMeasure | undefined>;
}

/**
 * The sequence both sides run, in the same order: U and V on unique pages;
 * T on them beside a stable tree of paired pages; S on the pairs alone; M on
 * pages of one content. Returns the measured passes.
 */
async function calibrationSequence(d: CalibrationDriver): Promise<PassMeasure[]> {
  const measured: PassMeasure[] = [];
  const measure = async (name: PassName): Promise<void> => {
    measured.push((await d.pass(name))!);
  };
  const unique = Array.from({ length: PROCESSES }, (_, p) => `u-${p + 1}`);
  for (const name of unique) await d.spawn(name, 'unique');
  await d.pass();
  await measure('U');
  for (const name of unique) await d.rewrite(name);
  await measure('V');
  const paired = ['k-1', 'k-2'];
  for (const name of paired) await d.spawn(name, 'paired');
  // The pairs' first look, then their merge pass; the unique pages are in the unstable tree meanwhile.
  await d.pass();
  await d.pass();
  await measure('T');
  for (const name of unique) await d.exit(name);
  await measure('S');
  for (const name of paired) await d.exit(name);
  const same = Array.from({ length: PROCESSES }, (_, p) => `m-${p + 1}`);
  for (const name of same) await d.spawn(name, 'one');
  await d.pass();
  await measure('M');
  return measured;
}

/** Page i's contents for a fill, in `content` (hi/lo). */
function fillValue(content: ContentSpace, fill: Fill, i: number): void {
  if (fill === 'unique') content.unique();
  else content.value(fill === 'paired' ? PAIRED : ONE_CONTENT, i);
}

/** The calibration sequence on the engine: what each measured pass does, counted. */
export async function engineCounts(pagesPerProcess: number): Promise<PassMeasure[]> {
  const cost = new CountingCostModel(SHIPPED_CALIBRATION.figures);
  const sim = new SimulatedHost({
    // Four unique processes and the two paired ones live at once.
    memoryBytes: ((PROCESSES + 2) * pagesPerProcess + 8192) * PAGE_SIZE,
    contentMode: 'fingerprint',
    thp: 'never',
    costModel: cost,
  });
  const content = new ContentSpace();
  const procs = new Map<string, { pid: number; base: number }>();
  sim.sysfs.write('max_page_sharing', String(maxPageSharing(pagesPerProcess)));
  sim.sysfs.write('run', '1');
  const write = (name: string, fill: Fill): void => {
    const { pid, base } = procs.get(name)!;
    for (let i = 0; i < pagesPerProcess; i++) {
      fillValue(content, fill, i);
      sim.host.writePageValue(pid, base + i * PAGE_SIZE, content.hi, content.lo);
    }
  };
  return calibrationSequence({
    spawn: async (name, fill) => {
      const proc = sim.host.spawn();
      const base = sim.host.mmap(proc.pid, { lengthBytes: pagesPerProcess * PAGE_SIZE });
      procs.set(name, { pid: proc.pid, base });
      write(name, fill);
      sim.host.madvise(proc.pid, base, pagesPerProcess * PAGE_SIZE, 'mergeable');
    },
    rewrite: async (name) => write(name, 'unique'),
    exit: async (name) => sim.host.exit(procs.get(name)!.pid),
    pass: async (name) => {
      cost.reset();
      sim.ksm.fullScans(1);
      if (name === undefined) return undefined;
      return {
        name,
        cpuNs: 0,
        visits: cost.visits,
        checksums: cost.checksums,
        compares: cost.compares,
        stableCompares: cost.stableCompares,
        merges: cost.merges,
      };
    },
  });
}

/** The figures from one round's measures (see the table at the top). */
export function solveFigures(round: CalibrationRound): CostFigures {
  const get = (name: PassName): PassMeasure => {
    const p = round.passes.find((x) => x.name === name);
    if (p === undefined) throw new Error(`calibration round without pass ${name}`);
    return p;
  };
  const S = get('S');
  const V = get('V');
  const U = get('U');
  const T = get('T');
  const M = get('M');
  const visitPageNs = S.cpuNs / S.visits;
  const checksumNs = Math.max(0, (V.cpuNs - V.visits * visitPageNs) / V.checksums);
  const base = (p: PassMeasure): number => p.visits * visitPageNs + p.checksums * checksumNs;
  const compareNs = U.compares > 0 ? Math.max(0, (U.cpuNs - base(U)) / U.compares) : 0;
  const stableCompareNs =
    T.stableCompares > 0 ? Math.max(0, (T.cpuNs - base(T) - T.compares * compareNs) / T.stableCompares) : 0;
  const steps = (p: PassMeasure): number => p.compares * compareNs + p.stableCompares * stableCompareNs;
  const mergeNs = M.merges > 0 ? Math.max(0, (M.cpuNs - base(M) - steps(M)) / M.merges) : 0;
  const batchNs = Math.max(
    0,
    (round.batch.cpuNs - round.batch.visits * visitPageNs) / Math.max(1, round.batch.batches),
  );
  const cowBreakNs = Math.max(0, ((round.cow.cowMs - round.cow.plainMs) * 1e6) / round.cow.pages);
  return { batchNs, visitPageNs, checksumNs, compareNs, stableCompareNs, mergeNs, cowBreakNs };
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
    stableCompareNs: r(f.stableCompareNs),
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
  const counts = await engineCounts(pages);
  const rounds: CalibrationRound[] = [];
  for (let i = 0; i < repeat; i++) {
    log(`round ${i + 1} of ${repeat}: ${PROCESSES} processes of ${pages} pages, five measured passes`);
    const round = await measureRound(pages, counts, options.force ?? false);
    for (const p of round.passes) {
      log(
        `  pass ${p.name}: ${(p.cpuNs / 1e6).toFixed(2)} ms of ksmd CPU for ${p.visits} visits, ` +
          `${p.checksums} checksums, ${p.compares} unstable and ${p.stableCompares} stable tree steps, ${p.merges} merges`,
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
    stableCompareNs: pick('stableCompareNs'),
    mergeNs: pick('mergeNs'),
    cowBreakNs: pick('cowBreakNs'),
  });
  const { release, cpus } = await import('node:os');
  return {
    version: 2,
    figures,
    measuredOn: `Linux ${release()}, ${cpus()[0]?.model.trim() ?? 'unknown CPU'} ×${cpus().length}, ${new Date().toISOString().slice(0, 10)}`,
    method: `ksmkit calibrate (${PROCESSES}×${pages} pages, median of ${repeat} rounds)`,
  };
}

async function measureRound(
  pages: number,
  counts: readonly PassMeasure[],
  force: boolean,
): Promise<CalibrationRound> {
  const backend = new KernelBackend({ force });
  const content = new ContentSpace();
  const layout = new AddressLayout();
  try {
    await backend.start([['max_page_sharing', String(maxPageSharing(pages))]]);
    const pid = ksmdPid();
    const write = async (name: string, fill: Fill): Promise<number> => {
      const bytes = new Uint8Array(pages * PAGE_SIZE);
      for (let i = 0; i < pages; i++) {
        fillValue(content, fill, i);
        valuePage(content.hi, content.lo, bytes, i * PAGE_SIZE);
      }
      const started = performance.now();
      const r = await backend.write(name, REGION, 0, bytes);
      if (!r.ok) throw new Error(`${r.errno}: cannot write the calibration pages of ${name}`);
      return performance.now() - started;
    };
    const passes = await calibrationSequence({
      spawn: async (name, fill) => {
        await backend.spawn(name, { memoryMerge: false });
        layout.spawn(name);
        const address = layout.place(name, REGION, pages);
        await backend.mmap(name, { name: REGION, address, pageCount: pages, shared: false, thp: false });
        await write(name, fill);
        await backend.madvise(name, REGION, 'mergeable');
      },
      rewrite: async (name) => {
        await write(name, 'unique');
      },
      exit: async (name) => {
        await backend.exit(name);
      },
      pass: async (name) => {
        const cpu0 = ksmdCpuNs(pid);
        await backend.scan(1);
        if (name === undefined) return undefined;
        const engine = counts.find((p) => p.name === name)!;
        return { ...engine, cpuNs: ksmdCpuNs(pid) - cpu0 };
      },
    });

    // Batches: ksmd free over the merged pages, 10 pages a batch, at the default 20 ms sleep: what a
    // batch costs after a sleep in which other work ran (a 1 ms sleep measured a third of it, warm).
    const scanned0 = readKsmNumber('pages_scanned');
    const cpu0 = ksmdCpuNs(pid);
    writeKsm('pages_to_scan', '10');
    writeKsm('sleep_millisecs', String(BATCH_SLEEP_MS));
    writeKsm('run', '1');
    await sleep(BATCH_RUN_MS);
    writeKsm('sleep_millisecs', '3600000');
    writeKsm('pages_to_scan', '0');
    await sleep(50);
    const batchVisits = readKsmNumber('pages_scanned') - scanned0;
    const batch = { cpuNs: ksmdCpuNs(pid) - cpu0, batches: Math.ceil(batchVisits / 10), visits: batchVisits };

    // COW: every merged page of one process written (breaks), then written again (private).
    const cowMs = await write('m-1', 'unique');
    const plainMs = await write('m-1', 'unique');
    return { passes, batch, cow: { cowMs, plainMs, pages } };
  } finally {
    await backend.close();
  }
}
