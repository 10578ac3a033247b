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
import type { AuditLog } from '../policy/audit.ts';
import { NO_POLICY, type PolicyConfig } from '../policy/policy.ts';
import { type RandomSource, SplitMix32 } from '../policy/random.ts';
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
  /** A hardening policy (src/policy/policy.ts); default none, Linux 6.18 as it is. */
  readonly policy?: PolicyConfig;
  /** The host's random source (vusion's random frames); default SplitMix32 seeded with `seed`. */
  readonly random?: RandomSource;
  /** Seed of the default random source; default 1. */
  readonly seed?: number;
}

export class SimulatedHost {
  readonly host: Host;
  readonly ksm: Ksm;
  readonly sysfs: KsmSysfs;
  readonly policy: PolicyConfig;
  /** sysfs write attempts under the dormant and fortress policies. */
  readonly auditLog: AuditLog;

  constructor(config: SimulatedHostConfig = {}) {
    this.policy = config.policy ?? NO_POLICY;
    this.host = new Host({
      memoryBytes: config.memoryBytes ?? 1 << 30,
      numaNodes: config.numaNodes ?? 1,
      thp: config.thp ?? 'madvise',
      contentMode: config.contentMode ?? 'bytes',
      clock: config.clock ?? new VirtualClock(),
      policy: this.policy,
      random: config.random ?? new SplitMix32(config.seed ?? 1),
      ...(config.pageCompare === undefined ? {} : { pageCompare: config.pageCompare }),
    });
    this.ksm = new Ksm(this.host, {
      ...(config.checksum === undefined ? {} : { checksum: config.checksum }),
      ...(config.costModel === undefined ? {} : { costModel: config.costModel }),
    });
    this.sysfs = new KsmSysfs(this.ksm);
    this.auditLog = this.sysfs.auditLog;
  }

  /** A sysfs write made by process `pid`: root if its uid is 0; its CAP_SYS_ADMIN decides under dormant. */
  writeSysfsAs(pid: number, name: string, text: string): void {
    const p = this.host.process(pid);
    this.sysfs.write(name, text, { root: p.uid === 0, pid });
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
