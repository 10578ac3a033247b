/**
 * The simulated host behind the `Backend` interface: the same operations the
 * kernel backend performs on real processes, on the engine instead.
 */
import { ErrnoError } from '../../host/errno.ts';
import { PR_SET_MEMORY_MERGE } from '../../host/host.ts';
import { KSM_RUN_MERGE } from '../../ksm/ksm.ts';
import { ksmStatOf } from '../../surface/procfs.ts';
import { SimulatedHost, type SimulatedHostConfig } from '../../surface/simulated-host.ts';
import { KSM_SYSFS, sysfsValue } from '../../surface/sysfs.ts';
import type {
  Backend,
  BackendInfo,
  CountersSnapshot,
  ErrnoName,
  MadviseAdvice,
  OpResult,
  ProcessCounters,
  ProcessIdentitySpec,
  RegionMapping,
  SysfsWriteResult,
} from '../backend.ts';
import { PAGE_SIZE_BYTES } from '../backend.ts';
import { pageChecksumNative } from './native-checksum.ts';
import { pageCompareNative } from './native-compare.ts';

interface SimRegion {
  readonly address: number;
  readonly pageCount: number;
}

interface SimProcess {
  readonly pid: number;
  readonly regions: Map<string, SimRegion>;
}

const OK: OpResult = { ok: true };

/** Runs an engine call, turning an errno into the interface's refusal. */
function attempt(fn: () => void): OpResult {
  try {
    fn();
    return OK;
  } catch (e) {
    if (e instanceof ErrnoError) return { ok: false, errno: e.code as ErrnoName };
    throw e;
  }
}

export class SimBackend implements Backend {
  readonly name = 'sim' as const;
  private simHost: SimulatedHost | null = null;
  private readonly processes = new Map<string, SimProcess>();
  private scannedBase = 0;
  private skippedBase = 0;

  constructor(private readonly config: SimulatedHostConfig = {}) {}

  /** The engine underneath (made by `start`), for tools that want more than the interface gives. */
  get simulated(): SimulatedHost {
    return this.sim;
  }

  private get sim(): SimulatedHost {
    if (this.simHost === null) throw new Error('sim backend: start() first');
    return this.simHost;
  }

  private newHost(): SimulatedHost {
    return new SimulatedHost({
      memoryBytes: 4 * 2 ** 30,
      checksum: pageChecksumNative,
      pageCompare: pageCompareNative,
      ...this.config,
    });
  }

  info(): BackendInfo {
    return { backend: 'sim', kernelVersion: '6.18.44 (simulated)' };
  }

  async start(settings: ReadonlyArray<readonly [string, string]>): Promise<void> {
    this.simHost = this.newHost();
    this.processes.clear();
    for (const [name, value] of settings) {
      const r = await this.setSysfs(name, value);
      if (!r.ok) throw new ErrnoError(r.errno as never, 'write', `/sys/kernel/mm/ksm/${name}`);
    }
    this.scannedBase = this.sim.ksm.pagesScanned;
    this.skippedBase = this.sim.ksm.pagesSkipped;
  }

  async spawn(
    process: string,
    options: { readonly memoryMerge: boolean; readonly identity?: ProcessIdentitySpec },
  ): Promise<OpResult> {
    const p = this.sim.host.spawn({ ...options.identity, comm: process });
    this.processes.set(process, { pid: p.pid, regions: new Map() });
    if (!options.memoryMerge) return OK;
    return attempt(() => this.sim.host.prctl(p.pid, PR_SET_MEMORY_MERGE, 1));
  }

  async mmap(process: string, region: RegionMapping): Promise<OpResult> {
    const p = this.proc(process);
    return attempt(() => {
      this.sim.host.mmap(p.pid, {
        address: region.address,
        lengthBytes: region.pageCount * PAGE_SIZE_BYTES,
        shared: region.shared,
        hugetlb: region.hugetlb === true,
      });
      // The agent gives a hugetlb region no THP advice (madvise would refuse it).
      if (region.hugetlb !== true) {
        this.sim.host.madvise(
          p.pid,
          region.address,
          region.pageCount * PAGE_SIZE_BYTES,
          region.thp ? 'hugepage' : 'nohugepage',
        );
      }
      p.regions.set(region.name, { address: region.address, pageCount: region.pageCount });
    });
  }

  async munmap(process: string, region: string): Promise<OpResult> {
    const p = this.proc(process);
    const r = this.region(p, region);
    return attempt(() => {
      this.sim.host.munmap(p.pid, r.address, r.pageCount * PAGE_SIZE_BYTES);
      p.regions.delete(region);
    });
  }

  async write(process: string, region: string, pageIndex: number, bytes: Uint8Array): Promise<OpResult> {
    const p = this.proc(process);
    const r = this.region(p, region);
    return attempt(() => this.sim.host.write(p.pid, r.address + pageIndex * PAGE_SIZE_BYTES, bytes));
  }

  async read(process: string, region: string, pageIndex: number, pageCount: number): Promise<Uint8Array> {
    const p = this.proc(process);
    const r = this.region(p, region);
    return this.sim.host.read(p.pid, r.address + pageIndex * PAGE_SIZE_BYTES, pageCount * PAGE_SIZE_BYTES);
  }

  async madvise(process: string, region: string, advice: MadviseAdvice): Promise<OpResult> {
    const p = this.proc(process);
    const r = this.region(p, region);
    return attempt(() => this.sim.host.madvise(p.pid, r.address, r.pageCount * PAGE_SIZE_BYTES, advice));
  }

  async mlock(process: string, region: string): Promise<OpResult> {
    const p = this.proc(process);
    const r = this.region(p, region);
    return attempt(() => this.sim.host.mlock(p.pid, r.address, r.pageCount * PAGE_SIZE_BYTES));
  }

  async prctl(process: string, memoryMerge: boolean): Promise<OpResult> {
    const p = this.proc(process);
    return attempt(() => this.sim.host.prctl(p.pid, PR_SET_MEMORY_MERGE, memoryMerge ? 1 : 0));
  }

  async fork(process: string, child: string): Promise<OpResult> {
    const p = this.proc(process);
    const c = this.sim.host.fork(p.pid);
    c.comm = child;
    this.processes.set(child, { pid: c.pid, regions: new Map(p.regions) });
    return OK;
  }

  async exit(process: string): Promise<OpResult> {
    const p = this.proc(process);
    this.sim.host.exit(p.pid);
    this.processes.delete(process);
    return OK;
  }

  async setSysfs(
    name: string,
    value: string,
    options: { readonly as?: string } = {},
  ): Promise<SysfsWriteResult> {
    const writer = options.as;
    if (writer === undefined) return attempt(() => this.sim.sysfs.write(name, value));
    return attempt(() => this.sim.writeSysfsAs(this.proc(writer).pid, name, value));
  }

  /**
   * Exactly `passes` full scans, as the kernel backend steps the real ksmd:
   * run is set to 1 if needed, and when no mm is registered ksmd does not run
   * at all, so full_scans does not move (the kernel backend mirrors that).
   */
  async scan(passes: number): Promise<void> {
    if (!(this.sim.ksm.settings.run & KSM_RUN_MERGE)) this.sim.sysfs.write('run', '1');
    this.sim.ksm.fullScans(passes);
  }

  async counters(): Promise<CountersSnapshot> {
    const ksm: Record<string, number | string> = {};
    for (const attr of KSM_SYSFS) {
      ksm[attr.name] = sysfsValue(attr.name, attr.show(this.sim.ksm));
    }
    ksm.pages_scanned = (ksm.pages_scanned as number) - this.scannedBase;
    ksm.pages_skipped = (ksm.pages_skipped as number) - this.skippedBase;
    const processes: Record<string, ProcessCounters> = {};
    for (const [name, p] of this.processes) {
      processes[name] = { ...ksmStatOf(this.sim.ksm, this.sim.host.process(p.pid).mm) };
    }
    return { ksm, processes };
  }

  async close(): Promise<void> {
    this.processes.clear();
  }

  private proc(name: string): SimProcess {
    const p = this.processes.get(name);
    if (p === undefined) throw new Error(`sim backend: no process named ${JSON.stringify(name)}`);
    return p;
  }

  private region(p: SimProcess, name: string): SimRegion {
    const r = p.regions.get(name);
    if (r === undefined) throw new Error(`sim backend: no region named ${JSON.stringify(name)}`);
    return r;
  }
}
