/**
 * A small DSL for scenario tests that read like the kernel selftests they
 * port: processes map and fill regions, ksmd runs full scans, and
 * expectations name sysfs files and ksm_stat fields.
 *
 *   const t = scenario();
 *   const a = t.process('A');
 *   const r = a.mmap(10).fill(0x2a).madvise('mergeable');
 *   t.ksmd.start();                       // run = 1, then 2 full scans, like ksm_start()
 *   t.expectSysfs({ pages_shared: 1, pages_sharing: 9 });
 *
 * Every step runs checkInvariants() unless the scenario was made with
 * `{ invariants: false }` (large scans).
 */
import assert from 'node:assert/strict';
import { PAGE_SIZE } from '../host/constants.ts';
import type { MadviseAdvice, SpawnOptions } from '../host/host.ts';
import { PR_GET_MEMORY_MERGE, PR_SET_MEMORY_MERGE } from '../host/host.ts';
import type { Process } from '../host/mm.ts';
import type { KsmEvent } from '../ksm/events.ts';
import type { KsmStat } from '../surface/procfs.ts';
import { SimulatedHost, type SimulatedHostConfig } from '../surface/simulated-host.ts';
import { checkInvariants } from './invariants.ts';

export interface ScenarioOptions extends SimulatedHostConfig {
  readonly invariants?: boolean;
}

export function scenario(options: ScenarioOptions = {}): Scenario {
  return new Scenario(options);
}

export class Scenario {
  readonly sim: SimulatedHost;
  readonly events: KsmEvent[] = [];
  private readonly checking: boolean;
  private readonly procs = new Map<string, ProcessHandle>();

  constructor(options: ScenarioOptions) {
    this.sim = new SimulatedHost({ memoryBytes: 256 * 2 ** 20, ...options });
    this.checking = options.invariants ?? true;
  }

  get host() {
    return this.sim.host;
  }

  get ksm() {
    return this.sim.ksm;
  }

  /** Records every KSM event from now on into `events`. */
  trace(): this {
    this.sim.ksm.onEvent((e) => this.events.push(e));
    return this;
  }

  /** A new process; `options` set its node and identity (uid, cgroup, label, capSysAdmin) as Host.spawn does. */
  process(name: string, options: Omit<SpawnOptions, 'comm'> = {}): ProcessHandle {
    const p = this.sim.host.spawn({ comm: name, ...options });
    const handle = new ProcessHandle(this, p);
    this.procs.set(name, handle);
    return handle;
  }

  adopt(name: string, p: Process): ProcessHandle {
    const handle = new ProcessHandle(this, p);
    this.procs.set(name, handle);
    return handle;
  }

  readonly ksmd = {
    /** ksm_start() of the selftests: run = 1, then wait for 2 more full scans. */
    start: (): void => {
      this.write('run', '1');
      this.ksmd.fullScans(2);
    },
    /** ksm_stop(): run = 2. */
    stop: (): void => {
      this.write('run', '2');
    },
    fullScans: (n: number): void => {
      const done = this.sim.ksm.fullScans(n);
      assert.equal(
        done,
        n,
        `ksmd completed ${done} of ${n} full scans (run=${this.sim.ksm.settings.run}, mms registered: ${this.sim.ksm.registeredMms().length})`,
      );
      this.verify();
    },
    scanPages: (n: number): number => {
      const done = this.sim.ksm.scanPages(n);
      this.verify();
      return done;
    },
    advance: (ms: number): void => {
      this.sim.ksm.advance(ms);
      this.verify();
    },
  };

  write(name: string, value: string): this {
    this.sim.sysfs.write(name, value);
    this.verify();
    return this;
  }

  /** The errno code a sysfs write fails with (asserts that it fails). */
  writeError(name: string, value: string): string {
    try {
      this.sim.sysfs.write(name, value);
    } catch (e) {
      return (e as { code: string }).code;
    }
    assert.fail(`writing ${JSON.stringify(value)} to ${name} succeeded`);
  }

  read(name: string): number {
    return this.sim.counter(name);
  }

  expectSysfs(expected: Record<string, number>): void {
    const actual: Record<string, number> = {};
    for (const k of Object.keys(expected)) actual[k] = this.sim.counter(k);
    assert.deepEqual(actual, expected);
  }

  verify(): void {
    if (this.checking) checkInvariants(this.sim);
  }
}

export class ProcessHandle {
  constructor(
    readonly t: Scenario,
    readonly proc: Process,
  ) {}

  get pid(): number {
    return this.proc.pid;
  }

  mmap(pages: number, options: { address?: number; shared?: boolean; thp?: boolean } = {}): RegionHandle {
    const address = this.t.host.mmap(this.pid, {
      lengthBytes: pages * PAGE_SIZE,
      ...(options.address === undefined ? {} : { address: options.address }),
      ...(options.shared === undefined ? {} : { shared: options.shared }),
    });
    const region = new RegionHandle(this, address, pages);
    if (options.thp !== undefined) region.madvise(options.thp ? 'hugepage' : 'nohugepage');
    return region;
  }

  prctl(enable: boolean): this {
    this.t.host.prctl(this.pid, PR_SET_MEMORY_MERGE, enable ? 1 : 0);
    this.t.verify();
    return this;
  }

  prctlGet(): number {
    return this.t.host.prctl(this.pid, PR_GET_MEMORY_MERGE, 0);
  }

  fork(name: string): ProcessHandle {
    const child = this.t.host.fork(this.pid);
    this.t.verify();
    return this.t.adopt(name, child);
  }

  exec(): this {
    this.t.host.exec(this.pid);
    this.t.verify();
    return this;
  }

  exit(): void {
    this.t.host.exit(this.pid);
    this.t.verify();
  }

  stat(): KsmStat {
    return this.t.sim.ksmStat(this.pid);
  }

  expectStat(expected: Partial<Record<keyof KsmStat, number | boolean>>): void {
    const stat = this.stat();
    const actual: Record<string, number | boolean> = {};
    for (const k of Object.keys(expected) as (keyof KsmStat)[]) actual[k] = stat[k];
    assert.deepEqual(actual, expected);
  }

  /** A region this process inherited by fork (same address). */
  region(from: RegionHandle): RegionHandle {
    return new RegionHandle(this, from.address, from.pages);
  }
}

export class RegionHandle {
  constructor(
    readonly owner: ProcessHandle,
    readonly address: number,
    readonly pages: number,
  ) {}

  private get host() {
    return this.owner.t.host;
  }

  pageAddress(page: number): number {
    return this.address + page * PAGE_SIZE;
  }

  /** Fills every page (or pages [from, from+count)) with one byte, or with a byte chosen per page. */
  fill(value: number | ((page: number) => number), from = 0, count = this.pages - from): this {
    const buf = new Uint8Array(PAGE_SIZE);
    for (let p = from; p < from + count; p++) {
      buf.fill(typeof value === 'number' ? value : value(p));
      this.host.write(this.owner.pid, this.pageAddress(p), buf);
    }
    this.owner.t.verify();
    return this;
  }

  /** Writes bytes at an offset inside a page (a user store: COW on shared or KSM pages). */
  write(page: number, bytes: Uint8Array | number[], offset = 0): this {
    this.host.write(this.owner.pid, this.pageAddress(page) + offset, Uint8Array.from(bytes));
    this.owner.t.verify();
    return this;
  }

  read(page: number, count = 1): Uint8Array {
    return this.host.read(this.owner.pid, this.pageAddress(page), count * PAGE_SIZE);
  }

  madvise(advice: MadviseAdvice, from = 0, count = this.pages - from): this {
    this.host.madvise(this.owner.pid, this.pageAddress(from), count * PAGE_SIZE, advice);
    this.owner.t.verify();
    return this;
  }

  mlock(): this {
    this.host.mlock(this.owner.pid, this.address, this.pages * PAGE_SIZE);
    this.owner.t.verify();
    return this;
  }

  mprotect(prot: { read: boolean; write: boolean }): this {
    this.host.mprotect(this.owner.pid, this.address, this.pages * PAGE_SIZE, prot);
    this.owner.t.verify();
    return this;
  }

  munmap(): void {
    this.host.munmap(this.owner.pid, this.address, this.pages * PAGE_SIZE);
    this.owner.t.verify();
  }

  /** The frames the pages map now (0 for none/zero page): what /proc/self/pagemap would show. */
  frames(): number[] {
    const mm = this.owner.proc.mm;
    const out: number[] = [];
    for (let p = 0; p < this.pages; p++) {
      const vpn = this.pageAddress(p) / PAGE_SIZE;
      const vma = mm.findVma(vpn);
      out.push(vma === undefined ? 0 : this.host.frameAt(vma, vpn));
    }
    return out;
  }

  /** range_maps_duplicates() of ksm_functional_tests: two pages of the range on one frame. */
  mapsDuplicates(): boolean {
    const seen = new Set<number>();
    for (const f of this.frames()) {
      if (f === 0) continue;
      if (seen.has(f)) return true;
      seen.add(f);
    }
    return false;
  }
}
