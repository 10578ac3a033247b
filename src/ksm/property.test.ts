/**
 * Model-based property test: random sequences of mmap, write, fork, exec,
 * exit, madvise, prctl, ksmd scans and sysfs writes on a small host. After
 * every operation:
 *   - every process reads back exactly the bytes it last wrote (merging never
 *     loses or mixes data), checked against a plain model of expected bytes;
 *   - checkInvariants(): frame counts add up, and pages_shared, pages_sharing,
 *     pages_unshared, ksm_zero_pages, chains, dups and every process's
 *     ksm_merging_pages equal a brute-force recount.
 * Operation weights vary per run so rare paths (chains, pruning, unmerge) get
 * their turn. A failure prints fast-check's seed and the shrunk sequence.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PAGE_SIZE } from '../host/constants.ts';
import { ErrnoError } from '../host/errno.ts';
import { PR_SET_MEMORY_MERGE } from '../host/host.ts';
import { SimulatedHost } from '../surface/simulated-host.ts';
import { checkInvariants } from '../testing/invariants.ts';

type Op =
  | { kind: 'mmap'; proc: number; pages: number; thp: boolean }
  | { kind: 'write'; proc: number; region: number; page: number; pattern: number; offset: number }
  | {
      kind: 'madvise';
      proc: number;
      region: number;
      advice: 'mergeable' | 'unmergeable' | 'dontneed';
      from: number;
      count: number;
    }
  | { kind: 'munmap'; proc: number; region: number }
  | { kind: 'prctl'; proc: number; on: boolean }
  | { kind: 'fork'; proc: number }
  | { kind: 'exec'; proc: number }
  | { kind: 'exit'; proc: number }
  | { kind: 'scan'; pages: number }
  | { kind: 'fullScan' }
  | { kind: 'sysfs'; name: string; value: string };

interface ModelRegion {
  address: number;
  pages: number;
  /** Expected contents, page by page. */
  bytes: Uint8Array;
}

interface ModelProc {
  pid: number;
  regions: ModelRegion[];
}

/** A few patterns so that duplicates and zero pages are common. */
function patternByte(pattern: number): number {
  return pattern === 0 ? 0 : (pattern * 37) & 0xff;
}

const opArb = (w: Record<string, number>): fc.Arbitrary<Op> =>
  fc.oneof(
    {
      weight: w.mmap!,
      arbitrary: fc.record({
        kind: fc.constant('mmap' as const),
        proc: fc.nat(5),
        pages: fc.integer({ min: 1, max: 24 }),
        thp: fc.boolean(),
      }),
    },
    {
      weight: w.write!,
      arbitrary: fc.record({
        kind: fc.constant('write' as const),
        proc: fc.nat(5),
        region: fc.nat(5),
        page: fc.nat(40),
        pattern: fc.nat(4),
        offset: fc.oneof(fc.constant(-1), fc.nat(4095)),
      }),
    },
    {
      weight: w.madvise!,
      arbitrary: fc.record({
        kind: fc.constant('madvise' as const),
        proc: fc.nat(5),
        region: fc.nat(5),
        advice: fc.constantFrom(
          'mergeable' as const,
          'mergeable' as const,
          'unmergeable' as const,
          'dontneed' as const,
        ),
        from: fc.nat(20),
        count: fc.integer({ min: 1, max: 24 }),
      }),
    },
    {
      weight: w.munmap!,
      arbitrary: fc.record({ kind: fc.constant('munmap' as const), proc: fc.nat(5), region: fc.nat(5) }),
    },
    {
      weight: w.prctl!,
      arbitrary: fc.record({ kind: fc.constant('prctl' as const), proc: fc.nat(5), on: fc.boolean() }),
    },
    { weight: w.fork!, arbitrary: fc.record({ kind: fc.constant('fork' as const), proc: fc.nat(5) }) },
    { weight: w.exec!, arbitrary: fc.record({ kind: fc.constant('exec' as const), proc: fc.nat(5) }) },
    { weight: w.exit!, arbitrary: fc.record({ kind: fc.constant('exit' as const), proc: fc.nat(5) }) },
    {
      weight: w.scan!,
      arbitrary: fc.record({ kind: fc.constant('scan' as const), pages: fc.integer({ min: 1, max: 60 }) }),
    },
    { weight: w.fullScan!, arbitrary: fc.constant({ kind: 'fullScan' as const }) },
    {
      weight: w.sysfs!,
      arbitrary: fc.oneof(
        fc.record({
          kind: fc.constant('sysfs' as const),
          name: fc.constant('use_zero_pages'),
          value: fc.constantFrom('0', '1'),
        }),
        fc.record({
          kind: fc.constant('sysfs' as const),
          name: fc.constant('max_page_sharing'),
          value: fc.constantFrom('2', '3', '256'),
        }),
        fc.record({
          kind: fc.constant('sysfs' as const),
          name: fc.constant('run'),
          value: fc.constantFrom('0', '1', '1', '2'),
        }),
        fc.record({
          kind: fc.constant('sysfs' as const),
          name: fc.constant('smart_scan'),
          value: fc.constantFrom('0', '1'),
        }),
        fc.record({
          kind: fc.constant('sysfs' as const),
          name: fc.constant('stable_node_chains_prune_millisecs'),
          value: fc.constantFrom('0', '2000'),
        }),
      ),
    },
  );

const weightsArb = fc.record({
  mmap: fc.integer({ min: 1, max: 4 }),
  write: fc.integer({ min: 2, max: 10 }),
  madvise: fc.integer({ min: 1, max: 5 }),
  munmap: fc.integer({ min: 0, max: 2 }),
  prctl: fc.integer({ min: 0, max: 2 }),
  fork: fc.integer({ min: 0, max: 3 }),
  exec: fc.integer({ min: 0, max: 1 }),
  exit: fc.integer({ min: 0, max: 2 }),
  scan: fc.integer({ min: 1, max: 5 }),
  fullScan: fc.integer({ min: 1, max: 6 }),
  sysfs: fc.integer({ min: 0, max: 3 }),
});

export const stats = { ops: 0, merged: 0, zero: 0, chains: 0, runs: 0 };

function run(ops: Op[]): void {
  stats.runs++;
  const sim = new SimulatedHost({ memoryBytes: 64 * 2 ** 20 });
  const host = sim.host;
  sim.sysfs.write('run', '1');
  const procs: ModelProc[] = [];
  const spawn = (): ModelProc => {
    const p = { pid: host.spawn().pid, regions: [] as ModelRegion[] };
    procs.push(p);
    return p;
  };
  // Two processes start with a mergeable region of repeated patterns, so that merging is the common case.
  for (let k = 0; k < 2; k++) {
    const p = spawn();
    const pages = 16;
    const address = host.mmap(p.pid, { lengthBytes: pages * PAGE_SIZE });
    const bytes = new Uint8Array(pages * PAGE_SIZE);
    for (let i = 0; i < pages; i++) bytes.fill(patternByte(i % 4), i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
    host.write(p.pid, address, bytes);
    host.madvise(p.pid, address, pages * PAGE_SIZE, 'mergeable');
    p.regions.push({ address, pages, bytes });
  }
  const pick = <T>(list: T[], i: number): T | undefined =>
    list.length === 0 ? undefined : list[i % list.length];
  for (const op of ops) {
    const p =
      op.kind === 'scan' || op.kind === 'fullScan' || op.kind === 'sysfs' ? undefined : pick(procs, op.proc);
    switch (op.kind) {
      case 'mmap': {
        if (p === undefined) break;
        const address = host.mmap(p.pid, { lengthBytes: op.pages * PAGE_SIZE });
        host.madvise(p.pid, address, op.pages * PAGE_SIZE, op.thp ? 'hugepage' : 'nohugepage');
        p.regions.push({ address, pages: op.pages, bytes: new Uint8Array(op.pages * PAGE_SIZE) });
        break;
      }
      case 'write': {
        const r = p === undefined ? undefined : pick(p.regions, op.region);
        if (p === undefined || r === undefined) break;
        const page = op.page % r.pages;
        const at = page * PAGE_SIZE;
        if (op.offset < 0) {
          const bytes = new Uint8Array(PAGE_SIZE).fill(patternByte(op.pattern));
          host.write(p.pid, r.address + at, bytes);
          r.bytes.set(bytes, at);
        } else {
          const b = (op.pattern * 59 + 1) & 0xff;
          host.write(p.pid, r.address + at + op.offset, Uint8Array.of(b));
          r.bytes[at + op.offset] = b;
        }
        break;
      }
      case 'madvise': {
        const r = p === undefined ? undefined : pick(p.regions, op.region);
        if (p === undefined || r === undefined) break;
        const from = op.from % r.pages;
        const count = Math.min(op.count, r.pages - from);
        host.madvise(p.pid, r.address + from * PAGE_SIZE, count * PAGE_SIZE, op.advice);
        if (op.advice === 'dontneed') r.bytes.fill(0, from * PAGE_SIZE, (from + count) * PAGE_SIZE);
        break;
      }
      case 'munmap': {
        const r = p === undefined ? undefined : pick(p.regions, op.region);
        if (p === undefined || r === undefined) break;
        host.munmap(p.pid, r.address, r.pages * PAGE_SIZE);
        p.regions.splice(p.regions.indexOf(r), 1);
        break;
      }
      case 'prctl':
        if (p !== undefined) host.prctl(p.pid, PR_SET_MEMORY_MERGE, op.on ? 1 : 0);
        break;
      case 'fork': {
        if (p === undefined || procs.length >= 6) break;
        const child = host.fork(p.pid);
        procs.push({
          pid: child.pid,
          regions: p.regions.map((r) => ({ address: r.address, pages: r.pages, bytes: r.bytes.slice() })),
        });
        break;
      }
      case 'exec':
        if (p === undefined) break;
        host.exec(p.pid);
        p.regions = [];
        break;
      case 'exit':
        if (p === undefined) break;
        host.exit(p.pid);
        procs.splice(procs.indexOf(p), 1);
        break;
      case 'scan':
        sim.ksm.scanPages(op.pages);
        break;
      case 'fullScan':
        sim.ksm.fullScans(1);
        break;
      case 'sysfs':
        try {
          sim.sysfs.write(op.name, op.value);
        } catch (e) {
          // EBUSY is the kernel's answer to max_page_sharing while pages are shared: part of the model.
          if (!(e instanceof ErrnoError && e.code === 'EBUSY')) throw e;
        }
        break;
    }
    stats.ops++;
    stats.merged += sim.ksm.pagesSharing > 0 ? 1 : 0;
    stats.zero += sim.ksm.ksmZeroPages > 0 ? 1 : 0;
    stats.chains += sim.ksm.stableNodeChains > 0 ? 1 : 0;
    checkInvariants(sim);
    for (const proc of procs) {
      for (const r of proc.regions) {
        const actual = host.peek(proc.pid, r.address, r.pages * PAGE_SIZE);
        if (!Buffer.from(actual).equals(Buffer.from(r.bytes))) {
          assert.fail(
            `process ${proc.pid} region ${r.address.toString(16)} reads back other bytes after ${JSON.stringify(op)}`,
          );
        }
      }
    }
  }
}

test('random operation sequences keep data and counters consistent', () => {
  fc.assert(
    fc.property(
      weightsArb.chain((w) => fc.array(opArb(w), { minLength: 10, maxLength: 120, size: 'max' })),
      (ops) => run(ops),
    ),
    { numRuns: Number(process.env.KSMKIT_PROPERTY_RUNS ?? 150) },
  );
  if (process.env.KSMKIT_PROPERTY_STATS) console.log(JSON.stringify(stats));
});
