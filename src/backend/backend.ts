/**
 * One interface for the simulated host and the real kernel. `replay`, `diff`,
 * the fuzzer and every later tool are written against it, never against one
 * backend, so that "the same workload gives the same counters" is checkable.
 *
 * Page contents cross this interface as bytes (a multiple of 4096): how they
 * are built from a workload's content specs is the workload layer's business,
 * so both backends are guaranteed to receive identical bytes.
 */

export const PAGE_SIZE_BYTES = 4096;

export type MadviseAdvice = 'mergeable' | 'unmergeable' | 'hugepage' | 'nohugepage' | 'dontneed';

/** Errno names a backend may report for a refused operation (the kernel's own). */
export type ErrnoName =
  | 'EINVAL'
  | 'EBUSY'
  | 'ENOMEM'
  | 'EPERM'
  | 'ESRCH'
  | 'EAGAIN'
  | 'EACCES'
  | 'ERANGE'
  | 'EINTR'
  | 'EFAULT'
  | 'EEXIST'
  | 'ENOENT';

/** How a region is mapped; contents are written separately with `write`. */
export interface RegionMapping {
  /** Unique within the process. */
  readonly name: string;
  /** Virtual start address, 2 MiB aligned; chosen by the caller (see layout.ts) so both backends use the same one. */
  readonly address: number;
  readonly pageCount: number;
  /** MAP_SHARED|MAP_ANONYMOUS instead of MAP_PRIVATE|MAP_ANONYMOUS. */
  readonly shared: boolean;
  /** true: MADV_HUGEPAGE right after mmap, false: MADV_NOHUGEPAGE. */
  readonly thp: boolean;
  /** MAP_HUGETLB (the default huge page size; needs pages reserved in vm.nr_hugepages): KSM never scans it. */
  readonly hugetlb?: boolean;
}

/**
 * Who a workload process runs as (the simulated host's hardening policies
 * read it); absent fields keep root's: uid 0, cgroup '/', no label, and
 * CAP_SYS_ADMIN when the uid is 0.
 */
export interface ProcessIdentitySpec {
  readonly uid?: number;
  readonly cgroup?: string;
  readonly label?: string;
  readonly capSysAdmin?: boolean;
}

/** A sysfs write's outcome: the kernel's errno name when refused. */
export type SysfsWriteResult = { readonly ok: true } | { readonly ok: false; readonly errno: ErrnoName };

/** Same for any other operation the kernel may refuse (madvise, prctl, mlock...). */
export type OpResult = SysfsWriteResult;

/**
 * Every counter file of /sys/kernel/mm/ksm by its file name. Values are the
 * parsed numbers, except advisor_mode (the selected word, "none" or "scan-time").
 * pages_scanned and pages_skipped are reported as the change since `start`.
 */
export type KsmCounters = Readonly<Record<string, number | string>>;

/** /proc/PID/ksm_stat fields plus ksm_merging_pages; yes/no lines as booleans. */
export type ProcessCounters = Readonly<Record<string, number | boolean>>;

export interface CountersSnapshot {
  readonly ksm: KsmCounters;
  /** Every live process of the workload, by its workload name. */
  readonly processes: Readonly<Record<string, ProcessCounters>>;
}

export interface BackendInfo {
  readonly backend: 'sim' | 'kernel';
  /** `uname -r` for the kernel backend; the modelled version for the simulator. */
  readonly kernelVersion: string;
}

export interface Backend {
  readonly name: 'sim' | 'kernel';
  info(): BackendInfo;
  /**
   * Clean state (run=2 then run=0, full_scans 0), then the given sysfs settings
   * written in order. Settings not named keep Linux 6.18's defaults.
   */
  start(settings: ReadonlyArray<readonly [string, string]>): Promise<void>;
  /** A new process; `memoryMerge` is prctl(PR_SET_MEMORY_MERGE, 1) at start. */
  spawn(
    process: string,
    options: { readonly memoryMerge: boolean; readonly identity?: ProcessIdentitySpec },
  ): Promise<OpResult>;
  mmap(process: string, region: RegionMapping): Promise<OpResult>;
  munmap(process: string, region: string): Promise<OpResult>;
  /** Writes whole pages from `pageIndex`; `bytes.length` is a multiple of 4096. */
  write(process: string, region: string, pageIndex: number, bytes: Uint8Array): Promise<OpResult>;
  /** Reads `pageCount` whole pages from `pageIndex`. */
  read(process: string, region: string, pageIndex: number, pageCount: number): Promise<Uint8Array>;
  madvise(process: string, region: string, advice: MadviseAdvice): Promise<OpResult>;
  mlock(process: string, region: string): Promise<OpResult>;
  prctl(process: string, memoryMerge: boolean): Promise<OpResult>;
  /** A real fork: the child shares the parent's pages copy-on-write and its regions by name. */
  fork(process: string, child: string): Promise<OpResult>;
  exit(process: string): Promise<OpResult>;
  /** `as`: the workload process that writes (default: the tool itself, as root). */
  setSysfs(name: string, value: string, options?: { readonly as?: string }): Promise<SysfsWriteResult>;
  /** Lets ksmd complete exactly `passes` full scans (full_scans grows by that much), run set to 1 as needed. */
  scan(passes: number): Promise<void>;
  counters(): Promise<CountersSnapshot>;
  /** Ends every process and restores every setting changed; safe to call twice. */
  close(): Promise<void>;
}
