/**
 * One simulated machine: the host's memory and processes, KSM attached to it,
 * and its control surface as files. What a tool or a test holds.
 */
import { VirtualClock } from '../host/clock.ts';
import type { ContentMode } from '../host/frames.ts';
import { Host, type ThpMode } from '../host/host.ts';
import type { PageCompare } from '../host/page-compare.ts';
import type { PageChecksum } from '../host/xxhash64.ts';
import type { CostModel } from '../ksm/cost-model.ts';
import { Ksm } from '../ksm/ksm.ts';
import { type KsmStat, ksmStatOf, readProcFile } from './procfs.ts';
import { KsmSysfs } from './sysfs.ts';

export interface SimulatedHostConfig {
  /** Physical memory; default 1 GiB. */
  readonly memoryBytes?: number;
  readonly numaNodes?: number;
  readonly thp?: ThpMode;
  /** 'fingerprint' holds 8 bytes per page instead of 4096 (see host/frames.ts). */
  readonly contentMode?: ContentMode;
  /** The page checksum; default the pure TypeScript XXH64 (the Node backend passes the native one). */
  readonly checksum?: PageChecksum;
  /** The whole-page compare of byte mode; default the pure TypeScript one (the Node backend passes a native one). */
  readonly pageCompare?: PageCompare;
  readonly costModel?: CostModel;
  readonly clock?: VirtualClock;
}

export class SimulatedHost {
  readonly host: Host;
  readonly ksm: Ksm;
  readonly sysfs: KsmSysfs;

  constructor(config: SimulatedHostConfig = {}) {
    this.host = new Host({
      memoryBytes: config.memoryBytes ?? 1 << 30,
      numaNodes: config.numaNodes ?? 1,
      thp: config.thp ?? 'madvise',
      contentMode: config.contentMode ?? 'bytes',
      clock: config.clock ?? new VirtualClock(),
      ...(config.pageCompare === undefined ? {} : { pageCompare: config.pageCompare }),
    });
    this.ksm = new Ksm(this.host, {
      ...(config.checksum === undefined ? {} : { checksum: config.checksum }),
      ...(config.costModel === undefined ? {} : { costModel: config.costModel }),
    });
    this.sysfs = new KsmSysfs(this.ksm);
  }

  /** /proc/PID/ksm_stat (or ksm_merging_pages) as text. */
  readProc(pid: number, file: 'ksm_stat' | 'ksm_merging_pages'): string {
    return readProcFile(this.host, this.ksm, pid, file);
  }

  ksmStat(pid: number): KsmStat {
    return ksmStatOf(this.ksm, this.host.process(pid).mm);
  }

  /** A sysfs counter as a number. */
  counter(name: string): number {
    return Number(this.sysfs.read(name));
  }
}
