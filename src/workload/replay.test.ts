import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type {
  Backend,
  BackendInfo,
  CountersSnapshot,
  ErrnoName,
  MadviseAdvice,
  OpResult,
  ProcessCounters,
  RegionMapping,
  SysfsWriteResult,
} from '../backend/backend.ts';
import { tagPage } from './content.ts';
import { diffBackends } from './diff.ts';
import { LAYOUT_START_ADDRESS } from './layout.ts';
import { loadWorkload, parseWorkload } from './parse.ts';
import {
  EXIT_CHECK_FAILED,
  EXIT_OK,
  formatFailureLine,
  formatJsonLine,
  formatStartLine,
  formatStepLine,
  type ReplayStart,
  replay,
  runReplay,
  type StepResult,
} from './replay.ts';

const PAGE = 4096;
const MiB = 1024 * 1024;
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

// --- A fake backend: a small but real model --------------------------------------
//
// It stores every page's bytes (so `read` checks mean something), checks that
// regions are 2 MiB aligned and never overlap, and merges at each scan every
// group of identical pages of mergeable private regions (one KSM page per
// group), which is what KSM converges to in a quiet system.

class FakeErrno extends Error {
  constructor(readonly code: ErrnoName) {
    super(code);
  }
}

interface FakeRegion {
  readonly mapping: RegionMapping;
  /** One object for every process that maps a MAP_SHARED region. */
  readonly memory: { bytes: Uint8Array };
  mergeable: boolean;
  locked: boolean;
}

interface FakeProcess {
  memoryMerge: boolean;
  readonly regions: Map<string, FakeRegion>;
}

const DEFAULT_SETTINGS: Readonly<Record<string, number | string>> = {
  run: 0,
  pages_to_scan: 100,
  sleep_millisecs: 20,
  merge_across_nodes: 1,
  use_zero_pages: 0,
  max_page_sharing: 256,
  stable_node_chains_prune_millisecs: 2000,
  smart_scan: 1,
  advisor_mode: 'none',
  advisor_max_cpu: 70,
  advisor_min_pages_to_scan: 500,
  advisor_max_pages_to_scan: 30000,
  advisor_target_scan_time: 200,
};

interface FakeOptions {
  /** Refuse a call (described as in `calls`) with this errno. */
  readonly refuse?: (call: string) => ErrnoName | undefined;
  /** A bug to catch: fork shares private memory instead of copying it. */
  readonly forkSharesPrivateMemory?: boolean;
  /** A bug to catch: zero pages are never merged. */
  readonly skipZeroPages?: boolean;
}

class FakeBackend implements Backend {
  readonly name = 'sim' as const;
  readonly calls: string[] = [];
  closeCount = 0;
  private processes = new Map<string, FakeProcess>();
  private settings: Record<string, number | string> = { ...DEFAULT_SETTINGS };
  private stats = { full_scans: 0, pages_shared: 0, pages_sharing: 0, pages_unshared: 0, pages_scanned: 0 };
  private perProcess = new Map<string, { rmapItems: number; mergingPages: number }>();

  constructor(private readonly options: FakeOptions = {}) {}

  info(): BackendInfo {
    return { backend: 'sim', kernelVersion: '6.18-fake' };
  }

  private call(description: string): OpResult {
    this.calls.push(description);
    const errno = this.options.refuse?.(description);
    return errno === undefined ? { ok: true } : { ok: false, errno };
  }

  private process(name: string): FakeProcess {
    const process = this.processes.get(name);
    if (process === undefined) throw new FakeErrno('ESRCH');
    return process;
  }

  private region(process: string, region: string): FakeRegion {
    const found = this.process(process).regions.get(region);
    if (found === undefined) throw new FakeErrno('EFAULT' as ErrnoName);
    return found;
  }

  peek(process: string, region: string, pageIndex: number): Uint8Array {
    return this.region(process, region).memory.bytes.slice(pageIndex * PAGE, (pageIndex + 1) * PAGE);
  }

  async start(settings: ReadonlyArray<readonly [string, string]>): Promise<void> {
    this.calls.push(`start ${settings.map(([name, value]) => `${name}=${value}`).join(' ')}`.trim());
    this.processes = new Map();
    this.settings = { ...DEFAULT_SETTINGS };
    this.stats = { full_scans: 0, pages_shared: 0, pages_sharing: 0, pages_unshared: 0, pages_scanned: 0 };
    this.perProcess = new Map();
    for (const [name, value] of settings) {
      const result = this.writeSetting(name, value);
      if (!result.ok) throw new FakeErrno(result.errno);
    }
  }

  async spawn(process: string, options: { readonly memoryMerge: boolean }): Promise<OpResult> {
    const result = this.call(`spawn ${process}${options.memoryMerge ? ' merge-any' : ''}`);
    if (result.ok) this.processes.set(process, { memoryMerge: options.memoryMerge, regions: new Map() });
    return result;
  }

  async mmap(process: string, region: RegionMapping): Promise<OpResult> {
    const result = this.call(
      `mmap ${process}/${region.name} 0x${region.address.toString(16)} ${region.pageCount}${region.shared ? ' shared' : ''}${region.thp ? ' thp' : ''}`,
    );
    if (!result.ok) return result;
    const owner = this.process(process);
    assert.equal(region.address % (2 * MiB), 0, 'regions are 2 MiB aligned');
    for (const other of owner.regions.values()) {
      const { address, pageCount } = other.mapping;
      const apart =
        region.address + region.pageCount * PAGE < address || address + pageCount * PAGE < region.address;
      assert.ok(apart, `${region.name} and ${other.mapping.name} would touch`);
    }
    owner.regions.set(region.name, {
      mapping: region,
      memory: { bytes: new Uint8Array(region.pageCount * PAGE) },
      mergeable: owner.memoryMerge && !region.shared,
      locked: false,
    });
    return result;
  }

  async munmap(process: string, region: string): Promise<OpResult> {
    const result = this.call(`munmap ${process}/${region}`);
    if (result.ok) this.process(process).regions.delete(region);
    return result;
  }

  async write(process: string, region: string, pageIndex: number, bytes: Uint8Array): Promise<OpResult> {
    assert.equal(bytes.length % PAGE, 0);
    const result = this.call(`write ${process}/${region} ${pageIndex}+${bytes.length / PAGE}`);
    if (!result.ok) return result;
    const memory = this.region(process, region).memory.bytes;
    assert.ok(pageIndex * PAGE + bytes.length <= memory.length, 'write inside the region');
    memory.set(bytes, pageIndex * PAGE);
    return result;
  }

  async read(process: string, region: string, pageIndex: number, pageCount: number): Promise<Uint8Array> {
    this.calls.push(`read ${process}/${region} ${pageIndex}+${pageCount}`);
    return this.region(process, region).memory.bytes.slice(pageIndex * PAGE, (pageIndex + pageCount) * PAGE);
  }

  async madvise(process: string, region: string, advice: MadviseAdvice): Promise<OpResult> {
    const result = this.call(`madvise ${process}/${region} ${advice}`);
    if (!result.ok) return result;
    const found = this.region(process, region);
    switch (advice) {
      case 'mergeable':
        found.mergeable = !found.mapping.shared; // KSM ignores shared mappings
        return result;
      case 'unmergeable':
        found.mergeable = false;
        return result;
      case 'dontneed':
        if (found.locked) return { ok: false, errno: 'EINVAL' }; // madvise_dontneed_free_valid_vma: VM_LOCKED
        if (!found.mapping.shared) found.memory.bytes.fill(0); // shmem keeps the data
        return result;
      default:
        return result;
    }
  }

  async mlock(process: string, region: string): Promise<OpResult> {
    const result = this.call(`mlock ${process}/${region}`);
    if (result.ok) this.region(process, region).locked = true;
    return result;
  }

  async prctl(process: string, memoryMerge: boolean): Promise<OpResult> {
    const result = this.call(`prctl ${process} ${memoryMerge}`);
    if (!result.ok) return result;
    const found = this.process(process);
    found.memoryMerge = memoryMerge;
    if (memoryMerge) for (const region of found.regions.values()) region.mergeable ||= !region.mapping.shared;
    return result;
  }

  async fork(process: string, child: string): Promise<OpResult> {
    const result = this.call(`fork ${process} ${child}`);
    if (!result.ok) return result;
    const parent = this.process(process);
    const regions = new Map<string, FakeRegion>();
    for (const [name, region] of parent.regions) {
      const sharesMemory = region.mapping.shared || this.options.forkSharesPrivateMemory === true;
      const memory = sharesMemory ? region.memory : { bytes: region.memory.bytes.slice() };
      regions.set(name, { ...region, memory, locked: false }); // mlock is not inherited
    }
    this.processes.set(child, { memoryMerge: parent.memoryMerge, regions });
    return result;
  }

  async exit(process: string): Promise<OpResult> {
    const result = this.call(`exit ${process}`);
    if (result.ok) {
      this.process(process);
      this.processes.delete(process);
      this.perProcess.delete(process);
    }
    return result;
  }

  async setSysfs(name: string, value: string): Promise<SysfsWriteResult> {
    const refused = this.call(`set ${name}=${value}`);
    return refused.ok ? this.writeSetting(name, value) : refused;
  }

  private writeSetting(name: string, value: string): SysfsWriteResult {
    if (!(name in DEFAULT_SETTINGS)) return { ok: false, errno: 'EACCES' };
    if (name === 'advisor_mode') {
      if (value !== 'none' && value !== 'scan-time') return { ok: false, errno: 'EINVAL' };
      if (value !== this.settings.advisor_mode) {
        this.settings.pages_to_scan =
          value === 'none' ? 100 : (this.settings.advisor_min_pages_to_scan ?? 500);
      }
      this.settings.advisor_mode = value;
      return { ok: true };
    }
    if (!/^\d+$/.test(value)) return { ok: false, errno: 'EINVAL' };
    const number = Number(value);
    if (name === 'run' && number > 2) return { ok: false, errno: 'EINVAL' };
    if (name === 'max_page_sharing' && number < 2) return { ok: false, errno: 'EINVAL' };
    if (name === 'pages_to_scan' && this.settings.advisor_mode === 'scan-time')
      return { ok: false, errno: 'EINVAL' };
    if (name === 'run' && number === 2 && this.settings.run !== 2) {
      this.stats = { ...this.stats, full_scans: 0, pages_shared: 0, pages_sharing: 0, pages_unshared: 0 };
      this.perProcess = new Map();
    }
    this.settings[name] = number;
    return { ok: true };
  }

  async scan(passes: number): Promise<void> {
    this.calls.push(`scan ${passes}`);
    if (this.settings.run === 0) this.settings.run = 1;
    const groups = new Map<string, string[]>();
    const items = new Map<string, number>();
    for (const [name, process] of this.processes) {
      items.set(name, 0);
      for (const region of process.regions.values()) {
        if (!region.mergeable) continue;
        for (let page = 0; page < region.mapping.pageCount; page++) {
          const bytes = region.memory.bytes.subarray(page * PAGE, (page + 1) * PAGE);
          items.set(name, (items.get(name) ?? 0) + 1);
          if (this.options.skipZeroPages === true && bytes.every((value) => value === 0)) continue;
          const key = Buffer.from(bytes).toString('base64');
          groups.set(key, [...(groups.get(key) ?? []), name]);
        }
      }
    }
    const merging = new Map<string, number>();
    let shared = 0;
    let sharing = 0;
    let unshared = 0;
    for (const owners of groups.values()) {
      if (owners.length === 1) {
        unshared++;
        continue;
      }
      shared++;
      sharing += owners.length - 1;
      for (const owner of owners) merging.set(owner, (merging.get(owner) ?? 0) + 1);
    }
    let totalItems = 0;
    this.perProcess = new Map();
    for (const [name, count] of items) {
      totalItems += count;
      this.perProcess.set(name, { rmapItems: count, mergingPages: merging.get(name) ?? 0 });
    }
    this.stats = {
      full_scans: this.stats.full_scans + passes,
      pages_shared: shared,
      pages_sharing: sharing,
      pages_unshared: unshared,
      pages_scanned: this.stats.pages_scanned + passes * totalItems,
    };
  }

  async counters(): Promise<CountersSnapshot> {
    let totalItems = 0;
    const processes: Record<string, ProcessCounters> = {};
    for (const [name, process] of this.processes) {
      const { rmapItems, mergingPages } = this.perProcess.get(name) ?? { rmapItems: 0, mergingPages: 0 };
      totalItems += rmapItems;
      processes[name] = {
        ksm_rmap_items: rmapItems,
        ksm_zero_pages: 0,
        ksm_merging_pages: mergingPages,
        ksm_process_profit: mergingPages * PAGE - rmapItems * 64,
        ksm_merge_any: process.memoryMerge,
        ksm_mergeable: [...process.regions.values()].some((region) => region.mergeable),
      };
    }
    const { pages_shared, pages_sharing, pages_unshared } = this.stats;
    const volatile = Math.max(0, totalItems - pages_shared - pages_sharing - pages_unshared);
    return {
      ksm: {
        ...this.settings,
        ...this.stats,
        pages_volatile: volatile,
        pages_skipped: 0,
        stable_node_chains: 0,
        stable_node_dups: 0,
        ksm_zero_pages: 0,
        general_profit: pages_sharing * PAGE - totalItems * 64,
      },
      processes,
    };
  }

  async close(): Promise<void> {
    this.closeCount++;
  }
}

function workloadOf(text: string) {
  return parseWorkload(text, 'inline.yaml', { baseDir: FIXTURES });
}

async function collect(iterable: AsyncIterable<StepResult>): Promise<StepResult[]> {
  const results: StepResult[] = [];
  for await (const result of iterable) results.push(result);
  return results;
}

// --- the tests ----------------------------------------------------------------------

describe('replay: setup', () => {
  test('spawns in order, maps each region at its layout address, fills it in page order, then madvise and mlock', async () => {
    const workload = workloadOf(`version: 1
name: setup
ksm: { max_page_sharing: 10, smart_scan: 0 }
processes:
  - name: a
    memory_merge: true
    regions:
      - { name: r, pages: 5, mergeable: true, mlock: true, thp: true, content: [{ pages: 3, image: i }, { pages: 2, zero: true }] }
      - { name: s, pages: 600, shared: true, content: [{ pages: 600, byte: 1 }] }
  - name: b
    regions:
      - { name: r, pages: 1, content: [{ pages: 1, unique: true }] }
steps: []
`);
    const backend = new FakeBackend();
    const outcome = await runReplay(workload, backend, { writeChunkPages: 2 });
    assert.deepEqual(backend.calls, [
      'start',
      'set max_page_sharing=10',
      'set smart_scan=0',
      'spawn a merge-any',
      `mmap a/r 0x${LAYOUT_START_ADDRESS.toString(16)} 5 thp`,
      'write a/r 0+2',
      'write a/r 2+1',
      'write a/r 3+2',
      'madvise a/r mergeable',
      'mlock a/r',
      `mmap a/s 0x${(LAYOUT_START_ADDRESS + 4 * MiB).toString(16)} 600 shared`,
      ...Array.from({ length: 300 }, (_, index) => `write a/s ${index * 2}+2`),
      'spawn b',
      `mmap b/r 0x${LAYOUT_START_ADDRESS.toString(16)} 1`,
      'write b/r 0+1',
    ]);
    assert.deepEqual(backend.peek('a', 'r', 2), tagPage('i/2'));
    assert.deepEqual(backend.peek('b', 'r', 0), tagPage('unique/b/r/0/0'));
    assert.equal(outcome.start.settings.max_page_sharing, 10);
    assert.equal(outcome.start.setup, undefined);
    assert.deepEqual(outcome.results, []);
    assert.equal(outcome.exitStatus, EXIT_OK);
    assert.equal(backend.closeCount, 1);
  });

  test('a refused setup call is listed in the start event and the run goes on', async () => {
    const workload = workloadOf(`version: 1
name: setup
processes:
  - name: a
    regions: [{ name: r, pages: 1, mlock: true, content: [{ pages: 1, byte: 3 }] }]
steps:
  - read: { process: a, region: r, page: 0 }
`);
    const backend = new FakeBackend({ refuse: (call) => (call.startsWith('mlock') ? 'EPERM' : undefined) });
    let start: ReplayStart | undefined;
    const results = await collect(replay(workload, backend, { onStart: (event) => (start = event) }));
    assert.deepEqual(start?.setup, [{ op: 'mlock', process: 'a', region: 'r', errno: 'EPERM' }]);
    assert.equal(results.length, 1);
    assert.equal(results[0]?.ok, true);
    assert.equal(results[0]?.failures, undefined);
    assert.match(formatStartLine(start!), /\n {5}setup: mlock a\/r: EPERM$/);
  });
});

describe('replay: steps', () => {
  test('the two-guests fixture runs: one result per step, every expect and read holds', async () => {
    const workload = await loadWorkload(join(FIXTURES, 'two-guests.yaml'));
    const backend = new FakeBackend();
    const outcome = await runReplay(workload, backend);
    assert.deepEqual(
      outcome.results.map((result) => [result.step, result.op, result.ok, result.failures?.length ?? 0]),
      workload.steps.map((step, index) => [index + 1, step.op, true, 0]),
    );
    assert.equal(outcome.exitStatus, EXIT_OK);
    const afterFirstScan = outcome.results[0]!;
    assert.equal(afterFirstScan.ksm.full_scans, 2);
    assert.equal(afterFirstScan.ksm.pages_shared, 5);
    assert.deepEqual(Object.keys(afterFirstScan.processes), ['guest-1', 'guest-2']);
    assert.deepEqual(Object.keys(outcome.results[4]!.processes), ['guest-1', 'guest-2', 'helper']);
    assert.deepEqual(Object.keys(outcome.results[11]!.processes), ['guest-1', 'guest-2']);
    // The helper's region was placed after the region it inherited from guest-1.
    assert.ok(
      backend.calls.includes(`mmap helper/scratch 0x${(LAYOUT_START_ADDRESS + 4 * MiB).toString(16)} 2`),
    );
    assert.deepEqual(
      backend.calls.filter((call) => call.startsWith('set ')),
      [
        'set use_zero_pages=0',
        'set max_page_sharing=256',
        'set smart_scan=1',
        'set pages_to_scan=1000',
        'set sleep_millisecs=50',
      ],
    );
  });

  test('expect reports every counter that does not hold, and the exit status becomes 1', async () => {
    const workload = workloadOf(`version: 1
name: expect
processes:
  - name: a
    regions: [{ name: r, pages: 4, mergeable: true, content: [{ pages: 4, byte: 5 }] }]
steps:
  - scan: 1
  - expect: { pages_shared: 1, pages_sharing: 2, full_scans: 1, a.ksm_merging_pages: 3, a.ksm_merge_any: yes, advisor_mode: scan-time }
  - scan: 1
`);
    const outcome = await runReplay(workload, new FakeBackend());
    const expectStep = outcome.results[1]!;
    assert.equal(expectStep.ok, true);
    assert.deepEqual(expectStep.failures, [
      { kind: 'expect', step: 2, counter: 'pages_sharing', expected: 2, actual: 3 },
      { kind: 'expect', step: 2, counter: 'a.ksm_merging_pages', expected: 3, actual: 4 },
      { kind: 'expect', step: 2, counter: 'a.ksm_merge_any', expected: true, actual: false },
      { kind: 'expect', step: 2, counter: 'advisor_mode', expected: 'scan-time', actual: 'none' },
    ]);
    assert.equal(outcome.results.length, 3, 'the run goes on after a failed expect');
    assert.equal(outcome.exitStatus, EXIT_CHECK_FAILED);
    assert.equal(
      formatFailureLine(expectStep.failures![0]!),
      '     step 2: expect pages_sharing: expected 2, got 3',
    );
  });

  test('a call the backend refuses reports its errno; the run goes on and the exit status stays 0', async () => {
    const workload = workloadOf(`version: 1
name: errno
processes:
  - name: a
    regions: [{ name: r, pages: 2, mlock: true, content: [{ pages: 2, byte: 5 }] }]
steps:
  - set: { pages_to_scan: abc }
  - set: { run: 3, sleep_millisecs: 30, max_page_sharing: 1 }
  - madvise: { process: a, region: r, advice: dontneed }
  - read: { process: a, region: r, page: 0, pages: 2 }
  - set: { advisor_mode: scan-time }
  - set: { pages_to_scan: 10 }
  - expect: { sleep_millisecs: 30, pages_to_scan: 500 }
`);
    const outcome = await runReplay(workload, new FakeBackend());
    assert.deepEqual(
      outcome.results.map((result) => [result.op, result.ok, result.errno ?? null]),
      [
        ['set', false, 'EINVAL'],
        ['set', false, 'EINVAL'],
        ['madvise', false, 'EINVAL'],
        ['read', true, null],
        ['set', true, null],
        ['set', false, 'EINVAL'],
        ['expect', true, null],
      ],
    );
    assert.equal(outcome.exitStatus, EXIT_OK);
    assert.match(formatStepLine(outcome.results[0]!), /^ {3}1 set {6}EINVAL {4}full_scans=0 pages_shared=0 /);
  });

  test('an errno thrown by the backend (no such process) is reported like a refused call', async () => {
    const workload = workloadOf(`version: 1
name: thrown
processes: [{ name: a, regions: [{ name: r, pages: 1, content: [{ pages: 1, zero: true }] }] }]
steps:
  - read: { process: a, region: r, page: 0 }
`);
    const backend = new FakeBackend({ refuse: (call) => (call.startsWith('spawn') ? 'ENOMEM' : undefined) });
    const outcome = await runReplay(workload, backend);
    assert.deepEqual(outcome.start.setup, [{ op: 'spawn', process: 'a', errno: 'ENOMEM' }]);
    assert.deepEqual([outcome.results[0]?.ok, outcome.results[0]?.errno], [false, 'ESRCH']);
  });

  test('read checks the bytes last written: writes, fork copies, DONTNEED zeroes private pages', async () => {
    const workload = workloadOf(`version: 1
name: reads
processes:
  - name: a
    regions: [{ name: r, pages: 3, content: [{ pages: 3, image: img }] }]
steps:
  - write: { process: a, region: r, page: 1, content: { byte: 9 } }
  - fork: { process: a, child: b }
  - write: { process: b, region: r, page: 0, pages: 2, content: [{ pages: 1, unique: true }, { pages: 1, tag: t }] }
  - read: { process: a, region: r, page: 0, pages: 3 }
  - read: { process: b, region: r, page: 0, pages: 3 }
  - madvise: { process: b, region: r, advice: dontneed }
  - read: { process: b, region: r, page: 0, pages: 3 }
  - read: { process: a, region: r, page: 0, pages: 3 }
`);
    const backend = new FakeBackend();
    const outcome = await runReplay(workload, backend);
    assert.deepEqual(
      outcome.results.map((result) => result.failures),
      outcome.results.map(() => undefined),
    );
    assert.equal(outcome.exitStatus, EXIT_OK);
  });

  test('read catches a backend whose fork shares private memory', async () => {
    const workload = workloadOf(`version: 1
name: reads
processes:
  - name: a
    regions: [{ name: r, pages: 3, content: [{ pages: 2, image: img }, { pages: 1, byte: 1 }] }]
steps:
  - fork: { process: a, child: b }
  - write: { process: b, region: r, page: 1, pages: 2, content: { byte: 9 } }
  - read: { process: a, region: r, page: 0, pages: 3 }
`);
    const outcome = await runReplay(workload, new FakeBackend({ forkSharesPrivateMemory: true }));
    assert.deepEqual(outcome.results[2]?.failures, [
      {
        kind: 'read',
        step: 3,
        process: 'a',
        region: 'r',
        page: 1,
        expected: 'tag img/1 (image img)',
        actual: 'byte 9',
      },
      { kind: 'read', step: 3, process: 'a', region: 'r', page: 2, expected: 'byte 1', actual: 'byte 9' },
    ]);
    assert.equal(outcome.exitStatus, EXIT_CHECK_FAILED);
    assert.equal(
      formatFailureLine(outcome.results[2]!.failures![0]!),
      '     step 3: read a/r page 1: expected tag img/1 (image img), got byte 9',
    );
  });

  test('a shared region is one memory for parent and child, and DONTNEED keeps its data', async () => {
    const workload = workloadOf(`version: 1
name: shared
processes:
  - name: a
    regions: [{ name: s, pages: 2, shared: true, content: [{ pages: 2, byte: 4 }] }]
steps:
  - fork: { process: a, child: b }
  - write: { process: b, region: s, page: 0, content: { byte: 8 } }
  - read: { process: a, region: s, page: 0, pages: 2 }
  - madvise: { process: a, region: s, advice: dontneed }
  - read: { process: b, region: s, page: 0, pages: 2 }
`);
    const backend = new FakeBackend();
    const outcome = await runReplay(workload, backend);
    assert.equal(outcome.exitStatus, EXIT_OK);
    assert.deepEqual(backend.peek('a', 's', 0), new Uint8Array(PAGE).fill(8));
  });

  test('unique content written by a step uses the step number as G, an mmap step too', async () => {
    const workload = workloadOf(`version: 1
name: unique
processes: [{ name: a, regions: [{ name: r, pages: 3, content: [{ pages: 3, unique: true }] }] }]
steps:
  - scan: 1
  - write: { process: a, region: r, page: 1, content: { unique: true } }
  - mmap: { process: a, region: { name: m, pages: 2, content: [{ pages: 1, zero: true }, { pages: 1, unique: true }] } }
  - read: { process: a, region: r, page: 0, pages: 3 }
  - read: { process: a, region: m, page: 0, pages: 2 }
`);
    const backend = new FakeBackend();
    const outcome = await runReplay(workload, backend);
    assert.equal(outcome.exitStatus, EXIT_OK);
    assert.deepEqual(backend.peek('a', 'r', 0), tagPage('unique/a/r/0/0'));
    assert.deepEqual(backend.peek('a', 'r', 1), tagPage('unique/a/r/1/2'));
    assert.deepEqual(backend.peek('a', 'm', 1), tagPage('unique/a/m/1/3'));
  });

  test('the backend is closed when the consumer stops early', async () => {
    const workload = workloadOf(`version: 1
name: early
processes: [{ name: a }]
steps: [{ scan: 1 }, { scan: 1 }, { scan: 1 }]
`);
    const backend = new FakeBackend();
    for await (const result of replay(workload, backend)) {
      assert.equal(result.step, 1);
      break;
    }
    assert.equal(backend.closeCount, 1);
    assert.deepEqual(
      backend.calls.filter((call) => call.startsWith('scan')),
      ['scan 1'],
    );
  });
});

describe('output lines', () => {
  test('--json prints the start event, then one object per step in the documented key order', async () => {
    const workload = workloadOf(`version: 1
name: json
processes: [{ name: a, regions: [{ name: r, pages: 2, mergeable: true, content: [{ pages: 2, byte: 1 }] }] }]
steps:
  - scan: 2
  - set: { run: 9 }
  - expect: { pages_sharing: 7 }
`);
    const lines: string[] = [];
    const results = await collect(
      replay(workload, new FakeBackend(), { onStart: (start) => lines.push(formatJsonLine(start)) }),
    );
    lines.push(...results.map(formatJsonLine));
    const [start, scan, set, expect] = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(Object.keys(start!), ['event', 'workload', 'backend', 'kernelVersion', 'settings']);
    assert.equal(start!.event, 'start');
    assert.deepEqual(Object.keys(scan!), ['step', 'op', 'ok', 'ksm', 'processes']);
    assert.deepEqual((scan!.processes as Record<string, unknown>).a, {
      ksm_rmap_items: 2,
      ksm_zero_pages: 0,
      ksm_merging_pages: 2,
      ksm_process_profit: 2 * PAGE - 2 * 64,
      ksm_merge_any: false,
      ksm_mergeable: true,
    });
    assert.deepEqual(Object.keys(set!), ['step', 'op', 'ok', 'errno', 'ksm', 'processes']);
    assert.deepEqual([set!.ok, set!.errno], [false, 'EINVAL']);
    assert.deepEqual(expect!.failures, [
      { kind: 'expect', step: 3, counter: 'pages_sharing', expected: 7, actual: 1 },
    ]);
    assert.equal(
      formatStepLine(results[2]!),
      '   3 expect   FAILED(1 check) full_scans=2 pages_shared=1 pages_sharing=1 pages_unshared=0 pages_volatile=0 ksm_zero_pages=0 general_profit=3968',
    );
  });
});

describe('diff of two backends', () => {
  test('reports every counter that differs after each step', async () => {
    const workload = workloadOf(`version: 1
name: diff
processes:
  - name: a
    regions: [{ name: r, pages: 4, mergeable: true, content: [{ pages: 2, zero: true }, { pages: 2, byte: 3 }] }]
steps:
  - scan: 1
  - write: { process: a, region: r, page: 0, content: { byte: 3 } }
`);
    const { diff, sim, kernel } = await diffBackends(workload, {
      sim: new FakeBackend(),
      kernel: new FakeBackend({ skipZeroPages: true }),
    });
    assert.equal(sim.exitStatus, EXIT_OK);
    assert.equal(kernel.exitStatus, EXIT_OK);
    assert.deepEqual(diff.differences, [
      { step: 1, counter: 'pages_shared', sim: 2, kernel: 1 },
      { step: 1, counter: 'pages_sharing', sim: 2, kernel: 1 },
      { step: 1, counter: 'pages_volatile', sim: 0, kernel: 2 },
      { step: 1, counter: 'general_profit', sim: 2 * PAGE - 4 * 64, kernel: PAGE - 4 * 64 },
      { step: 1, counter: 'a.ksm_merging_pages', sim: 4, kernel: 2 },
      { step: 1, counter: 'a.ksm_process_profit', sim: 4 * PAGE - 4 * 64, kernel: 2 * PAGE - 4 * 64 },
      // Counters change only at the next scan: the difference persists after the write.
      { step: 2, counter: 'pages_shared', sim: 2, kernel: 1 },
      { step: 2, counter: 'pages_sharing', sim: 2, kernel: 1 },
      { step: 2, counter: 'pages_volatile', sim: 0, kernel: 2 },
      { step: 2, counter: 'general_profit', sim: 2 * PAGE - 4 * 64, kernel: PAGE - 4 * 64 },
      { step: 2, counter: 'a.ksm_merging_pages', sim: 4, kernel: 2 },
      { step: 2, counter: 'a.ksm_process_profit', sim: 4 * PAGE - 4 * 64, kernel: 2 * PAGE - 4 * 64 },
    ]);
    assert.deepEqual(diff.uncompared, []);
  });
});
