/**
 * /sys/kernel/mm/ksm as files: every attribute Linux 6.18 has, one row each,
 * with the kernel's read format, write parser and errno rules (mm/ksm.c's
 * *_show/*_store functions). Dispatch, the file list and the completeness test
 * all come from this one table.
 */
import { ErrnoError } from '../host/errno.ts';
import type { Ksm } from '../ksm/ksm.ts';
import { type AuditEvent, AuditLog } from '../policy/audit.ts';
import { kstrtobool, kstrtoint, kstrtouint, kstrtoul, type Parsed, sysfsStreq } from './kstrto.ts';

export const KSM_SYSFS_DIR = '/sys/kernel/mm/ksm';

export interface SysfsAttribute {
  readonly name: string;
  /** 0644 writable, 0444 read-only. */
  readonly mode: 0o644 | 0o444;
  /** The kernel function behind it, for readers who know mm/ksm.c. */
  readonly kernel: string;
  /** What the file is, in a few words (for `ksmkit status` and docs). */
  readonly meaning: string;
  show(ksm: Ksm): string;
  /** Parses and applies; throws ErrnoError('E…') as the kernel's store would fail. */
  store?(ksm: Ksm, text: string): void;
}

/** A parse result turned into the value, or the store's errno (EINVAL when the store remaps every error). */
function take<T>(r: Parsed<T>, remapToEinval: boolean): T {
  if (r.ok) return r.value;
  throw new ErrnoError(remapToEinval ? 'EINVAL' : r.errno, 'write');
}

const u = (n: number): string => `${n >>> 0}\n`;
/** `%lu`/`%ld`: a number within 2^53, or an unsigned long kept as a bigint (exact to 2^64 - 1). */
const lu = (n: number | bigint): string => `${n}\n`;

function counter(name: string, meaning: string, value: (ksm: Ksm) => number): SysfsAttribute {
  return { name, mode: 0o444, kernel: `${name}_show`, meaning, show: (ksm) => lu(value(ksm)) };
}

export const KSM_SYSFS: readonly SysfsAttribute[] = [
  {
    name: 'run',
    mode: 0o644,
    kernel: 'run_store',
    meaning: '0 stop, 1 merge, 2 unmerge all',
    show: (ksm) => lu(ksm.settings.run),
    store(ksm, text) {
      const v = take(kstrtouint(text), true);
      if (v > 2n) throw new ErrnoError('EINVAL', 'write');
      ksm.setRun(Number(v));
    },
  },
  {
    name: 'pages_to_scan',
    mode: 0o644,
    kernel: 'pages_to_scan_store',
    meaning: 'pages per ksmd batch',
    show: (ksm) => u(ksm.settings.pagesToScan),
    store(ksm, text) {
      // The advisor owns pages_to_scan while it is on, checked before parsing.
      if (ksm.settings.advisorMode !== 'none') throw new ErrnoError('EINVAL', 'write');
      ksm.setPagesToScan(Number(take(kstrtouint(text), true)));
    },
  },
  {
    name: 'sleep_millisecs',
    mode: 0o644,
    kernel: 'sleep_millisecs_store',
    meaning: 'ksmd sleep between batches',
    show: (ksm) => u(ksm.settings.sleepMillisecs),
    store: (ksm, text) => ksm.setSleepMillisecs(Number(take(kstrtouint(text), true))),
  },
  {
    name: 'merge_across_nodes',
    mode: 0o644,
    kernel: 'merge_across_nodes_store',
    meaning: 'merge pages of different NUMA nodes',
    show: (ksm) => u(ksm.settings.mergeAcrossNodes),
    store(ksm, text) {
      const v = take(kstrtoul(text), false);
      if (v > 1n) throw new ErrnoError('EINVAL', 'write');
      ksm.setMergeAcrossNodes(Number(v));
    },
  },
  {
    name: 'use_zero_pages',
    mode: 0o644,
    kernel: 'use_zero_pages_store',
    meaning: 'merge empty pages with the zero page',
    show: (ksm) => u(ksm.settings.useZeroPages ? 1 : 0),
    store(ksm, text) {
      ksm.settings.useZeroPages = take(kstrtobool(text), true);
    },
  },
  {
    name: 'max_page_sharing',
    mode: 0o644,
    kernel: 'max_page_sharing_store',
    meaning: 'mappings per KSM page',
    show: (ksm) => u(ksm.settings.maxPageSharing),
    store(ksm, text) {
      const v = take(kstrtoint(text), false);
      if (v < 2n) throw new ErrnoError('EINVAL', 'write');
      ksm.setMaxPageSharing(Number(v));
    },
  },
  {
    name: 'stable_node_chains_prune_millisecs',
    mode: 0o644,
    kernel: 'stable_node_chains_prune_millisecs_store',
    meaning: 'interval of stale dup pruning',
    show: (ksm) => u(ksm.settings.stableNodeChainsPruneMillisecs),
    store(ksm, text) {
      ksm.settings.stableNodeChainsPruneMillisecs = Number(take(kstrtouint(text), true));
    },
  },
  {
    name: 'smart_scan',
    mode: 0o644,
    kernel: 'smart_scan_store',
    meaning: 'skip pages that never merge',
    show: (ksm) => u(ksm.settings.smartScan ? 1 : 0),
    store(ksm, text) {
      ksm.settings.smartScan = take(kstrtobool(text), true);
    },
  },
  {
    name: 'advisor_mode',
    mode: 0o644,
    kernel: 'advisor_mode_store',
    meaning: 'none, or scan-time auto-tuning',
    show: (ksm) => (ksm.settings.advisorMode === 'none' ? '[none] scan-time\n' : 'none [scan-time]\n'),
    store(ksm, text) {
      if (sysfsStreq('scan-time', text)) ksm.setAdvisorMode('scan-time');
      else if (sysfsStreq('none', text)) ksm.setAdvisorMode('none');
      else throw new ErrnoError('EINVAL', 'write');
    },
  },
  {
    name: 'advisor_max_cpu',
    mode: 0o644,
    kernel: 'advisor_max_cpu_store',
    meaning: 'advisor: ksmd CPU cap (%)',
    show: (ksm) => u(ksm.settings.advisorMaxCpu),
    store(ksm, text) {
      // Stored into an unsigned int: the high bits are dropped, no range check.
      ksm.settings.advisorMaxCpu = Number(BigInt.asUintN(32, take(kstrtoul(text), true)));
    },
  },
  {
    name: 'advisor_min_pages_to_scan',
    mode: 0o644,
    kernel: 'advisor_min_pages_to_scan_store',
    meaning: 'advisor: starting pages_to_scan',
    show: (ksm) => lu(ksm.settings.advisorMinPagesToScan),
    store(ksm, text) {
      ksm.settings.advisorMinPagesToScan = take(kstrtoul(text), true);
    },
  },
  {
    name: 'advisor_max_pages_to_scan',
    mode: 0o644,
    kernel: 'advisor_max_pages_to_scan_store',
    meaning: 'advisor: pages_to_scan cap',
    show: (ksm) => lu(ksm.settings.advisorMaxPagesToScan),
    store(ksm, text) {
      ksm.settings.advisorMaxPagesToScan = take(kstrtoul(text), true);
    },
  },
  {
    name: 'advisor_target_scan_time',
    mode: 0o644,
    kernel: 'advisor_target_scan_time_store',
    meaning: 'advisor: target seconds per full scan',
    show: (ksm) => lu(ksm.settings.advisorTargetScanTime),
    store(ksm, text) {
      const v = take(kstrtoul(text), true);
      if (v < 1n) throw new ErrnoError('EINVAL', 'write');
      ksm.settings.advisorTargetScanTime = v;
    },
  },
  counter('pages_scanned', 'pages processed since boot', (k) => k.pagesScanned),
  counter('pages_shared', 'KSM pages in use', (k) => k.pagesShared),
  counter('pages_sharing', 'extra mappings of KSM pages (the saving)', (k) => k.pagesSharing),
  counter('pages_unshared', 'unique pages waiting in the unstable tree', (k) => k.pagesUnshared),
  counter('pages_volatile', 'pages changing too fast to merge', (k) => k.counters().pages_volatile),
  counter('pages_skipped', 'pages smart_scan skipped since boot', (k) => k.pagesSkipped),
  counter('ksm_zero_pages', 'empty pages mapped to the zero page', (k) => k.ksmZeroPages),
  counter('general_profit', 'bytes saved net of metadata', (k) => k.generalProfit()),
  counter('stable_node_chains', 'contents with several KSM copies', (k) => k.stableNodeChains),
  counter('stable_node_dups', 'KSM copies hung off chains', (k) => k.stableNodeDups),
  counter('full_scans', 'completed passes', (k) => k.seqnr),
];

/** advisor_mode reads `[none] scan-time`: the bracketed word. */
export function selectedWord(text: string): string {
  return /\[([^\]]+)\]/.exec(text)?.[1] ?? text;
}

/**
 * A file's text as the backends' counter snapshots hold it: advisor_mode as
 * its bracketed word, an integer as a number where a number holds it exactly,
 * else (an unsigned long beyond 2^53, e.g. 18446744073709551615) as its exact
 * decimal text, never a rounded number.
 */
export function sysfsValue(name: string, text: string): number | string {
  const trimmed = text.trim();
  if (name === 'advisor_mode') return selectedWord(trimmed);
  if (/^-?\d+$/.test(trimmed)) {
    const n = Number(trimmed);
    if (Number.isSafeInteger(n)) return n;
  }
  return trimmed;
}

const BY_NAME = new Map(KSM_SYSFS.map((a) => [a.name, a]));

export function sysfsAttribute(name: string): SysfsAttribute | undefined {
  return BY_NAME.get(name);
}

/** Who performs a write: non-root writers get EACCES at open, as on the real host. */
export interface Credentials {
  readonly root: boolean;
  /** The writing process (for the policies' privilege check and audit log): its comm, uid and capability. */
  readonly pid?: number;
}

const ROOT: Credentials = { root: true };

/** The writer as the policies see it. */
interface Writer {
  readonly pid: number | null;
  readonly comm: string;
  readonly uid: number;
  readonly capSysAdmin: boolean;
}

/** A run value with the MERGE bit (kstrtouint, as run_store parses it): the write that starts ksmd. */
function startsMerging(text: string): boolean {
  const r = kstrtouint(text);
  return r.ok && r.value <= 2n && (r.value & 1n) === 1n;
}

/** The directory, file by file. Paths may be given as file names or full paths. */
export class KsmSysfs {
  constructor(
    private readonly ksm: Ksm,
    /** Every write attempt under the dormant and fortress policies. */
    readonly auditLog: AuditLog = new AuditLog(),
  ) {}

  list(): string[] {
    return KSM_SYSFS.map((a) => a.name);
  }

  read(nameOrPath: string): string {
    return this.attribute(nameOrPath, 'open').show(this.ksm);
  }

  /** Writes `text` as `echo -n text > file` would; throws the kernel's errno. */
  write(nameOrPath: string, text: string, credentials: Credentials = ROOT): void {
    const attr = this.attribute(nameOrPath, 'open');
    const policy = this.ksm.host.policy.name;
    if (policy !== 'dormant' && policy !== 'fortress') {
      this.store(attr, text, credentials);
      return;
    }
    const writer = this.writer(credentials);
    const oldValue = attr.show(this.ksm).replace(/\n$/, '');
    const audit = (result: AuditEvent['result']): void =>
      this.auditLog.append({
        timeNs: this.ksm.host.clock.nowNs,
        pid: writer.pid,
        comm: writer.comm,
        uid: writer.uid,
        file: attr.name,
        oldValue,
        newValue: text.replace(/\n$/, ''),
        result,
      });
    try {
      // Checked after open and parsing, as a store function checks a capability: bad text is still EINVAL.
      if (attr.store !== undefined && credentials.root && attr.name === 'run' && startsMerging(text)) {
        if (policy === 'fortress' || !writer.capSysAdmin)
          throw new ErrnoError('EPERM', 'write', pathOf(attr.name));
      }
      this.store(attr, text, credentials);
    } catch (e) {
      if (e instanceof ErrnoError) audit(e.code);
      throw e;
    }
    audit('ok');
  }

  private writer(credentials: Credentials): Writer {
    if (credentials.pid === undefined) {
      return { pid: null, comm: '-', uid: credentials.root ? 0 : 65534, capSysAdmin: credentials.root };
    }
    const p = this.ksm.host.process(credentials.pid);
    return { pid: p.pid, comm: p.comm, uid: p.uid, capSysAdmin: p.capSysAdmin };
  }

  private store(attr: SysfsAttribute, text: string, credentials: Credentials): void {
    // sysfs refuses a write open of a 0444 attribute even to root (observed on 6.18.44).
    if (attr.store === undefined || !credentials.root)
      throw new ErrnoError('EACCES', 'open', pathOf(attr.name));
    // sysfs_kf_write() returns 0 for a zero-byte write before any store function sees it.
    if (text.length === 0) return;
    try {
      attr.store(this.ksm, text);
    } catch (e) {
      if (e instanceof ErrnoError) throw new ErrnoError(e.code, 'write', pathOf(attr.name));
      throw e;
    }
  }

  private attribute(nameOrPath: string, syscall: string): SysfsAttribute {
    const name = nameOrPath.startsWith(`${KSM_SYSFS_DIR}/`)
      ? nameOrPath.slice(KSM_SYSFS_DIR.length + 1)
      : nameOrPath;
    const attr = BY_NAME.get(name);
    if (attr === undefined) throw new ErrnoError('ENOENT', syscall, pathOf(name));
    return attr;
  }
}

export function pathOf(name: string): string {
  return `${KSM_SYSFS_DIR}/${name}`;
}
