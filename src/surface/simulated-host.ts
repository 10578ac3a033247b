/**
 * One simulated machine: the host's memory and processes, KSM attached to it,
 * and its control surface as files. What a tool or a test holds.
 */
import { VirtualClock } from '../host/clock.ts';
import { ErrnoError } from '../host/errno.ts';
import type { ContentMode } from '../host/frames.ts';
import { Host, type ThpMode } from '../host/host.ts';
import type { PageChecksum } from '../host/xxhash64.ts';
import type { CostModel } from '../ksm/cost-model.ts';
import { Ksm } from '../ksm/ksm.ts';
import type { PolicyConfig } from '../policy/policy.ts';
import { type KsmStat, ksmStatOf, readProcFile } from './procfs.ts';
import { KsmSysfs, pathOf } from './sysfs.ts';

export interface SimulatedHostConfig {
  /** Physical memory; default 1 GiB. */
  readonly memoryBytes?: number;
  readonly numaNodes?: number;
  readonly thp?: ThpMode;
  /** 'fingerprint' holds 8 bytes per page instead of 4096 (see host/frames.ts). */
  readonly contentMode?: ContentMode;
  /** The page checksum; default the pure TypeScript XXH64 (the Node backend passes the native one). */
  readonly checksum?: PageChecksum;
  readonly costModel?: CostModel;
  readonly clock?: VirtualClock;
  /** SHIM (branch `attack`): the merging policy; default none. */
  readonly policy?: PolicyConfig;
}

export class SimulatedHost {
  readonly host: Host;
  readonly ksm: Ksm;
  readonly sysfs: KsmSysfs;
  readonly policy: PolicyConfig;

  constructor(config: SimulatedHostConfig = {}) {
    this.policy = config.policy ?? { name: 'none' };
    this.host = new Host({
      memoryBytes: config.memoryBytes ?? 1 << 30,
      numaNodes: config.numaNodes ?? 1,
      thp: config.thp ?? 'madvise',
      contentMode: config.contentMode ?? 'bytes',
      clock: config.clock ?? new VirtualClock(),
    });
    this.ksm = new Ksm(this.host, {
      ...(config.checksum === undefined ? {} : { checksum: config.checksum }),
      ...(config.costModel === undefined ? {} : { costModel: config.costModel }),
      policy: this.policy,
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

  /**
   * SHIM (branch `attack`): a sysfs write by process `pid`. dormant: starting
   * ksmd needs CAP_SYS_ADMIN; fortress: nobody may start it (EPERM). No audit log in the shim.
   */
  writeSysfsAs(pid: number, name: string, text: string): void {
    const process = this.host.process(pid);
    const starts = name === 'run' && text.trim() !== '0' && text.trim() !== '';
    if (starts && this.policy.name === 'fortress') throw new ErrnoError('EPERM', 'write', pathOf(name));
    if (starts && this.policy.name === 'dormant' && !process.capSysAdmin)
      throw new ErrnoError('EPERM', 'write', pathOf(name));
    this.sysfs.write(name, text, { root: process.uid === 0 || process.capSysAdmin });
  }

  /** A sysfs counter as a number. */
  counter(name: string): number {
    return Number(this.sysfs.read(name));
  }
}
