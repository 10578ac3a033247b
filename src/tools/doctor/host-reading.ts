/**
 * Gathers a `HostReading` on this machine: the KSM settings (through status's
 * snapshot), what ksmd did over a short window (its CPU from
 * /proc/<ksmd>/schedstat, pages_scanned, /proc/vmstat thp_split_page), the
 * pages it has to visit (every VM_MERGEABLE VMA's anonymous pages), NUMA
 * nodes, and a tuning daemon if one runs (ksmtuned with /etc/ksmtuned.conf,
 * or `ksmkit tune`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { parseVmstatCounter } from '../../bench/proc.ts';
import { ksmdCpuNs, ksmdPid } from '../../simulate/kernel-run.ts';
import { parseSmaps } from '../estimate/proc-source.ts';
import { fileNumber, HOST_SOURCES, readSnapshot, type StatusSnapshot } from '../status/snapshot.ts';
import {
  type HostReading,
  type HostSettings,
  ksmtunedDecision,
  parseKsmtunedConf,
  type TunerInfo,
} from './host.ts';

export const KSMTUNED_CONF = '/etc/ksmtuned.conf';

/** Files whose absence makes some check impossible (older kernels). */
const NEEDED_FILES = [
  'run',
  'pages_to_scan',
  'sleep_millisecs',
  'pages_scanned',
  'smart_scan',
  'advisor_mode',
];

/** One process of /proc: its pid, comm and command line (read once, shared by selection and tuner detection). */
export interface ProcEntry {
  readonly pid: number;
  readonly comm: string;
  /** NULs as spaces; '' for a kernel thread. */
  readonly cmdline: string;
}

export function listProcesses(procDir = '/proc'): ProcEntry[] {
  const out: ProcEntry[] = [];
  for (const e of readdirSync(procDir)) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const comm = readFileSync(`${procDir}/${e}/comm`, 'latin1').trimEnd();
      const cmdline = readFileSync(`${procDir}/${e}/cmdline`, 'latin1')
        .replace(/\0+$/, '')
        .replaceAll('\0', ' ');
      out.push({ pid: Number(e), comm, cmdline });
    } catch {
      // Gone meanwhile.
    }
  }
  return out.sort((a, b) => a.pid - b.pid);
}

function settingsOf(s: StatusSnapshot): HostSettings {
  const word = s.files.find((f) => f.name === 'advisor_mode')?.value;
  return {
    run: fileNumber(s, 'run'),
    pagesToScan: fileNumber(s, 'pages_to_scan'),
    sleepMillisecs: fileNumber(s, 'sleep_millisecs'),
    advisorMode: typeof word === 'string' ? word : null,
    advisorTargetScanTime: fileNumber(s, 'advisor_target_scan_time'),
    useZeroPages: fileNumber(s, 'use_zero_pages'),
    smartScan: fileNumber(s, 'smart_scan'),
    mergeAcrossNodes: fileNumber(s, 'merge_across_nodes'),
    maxPageSharing: fileNumber(s, 'max_page_sharing'),
  };
}

function meminfoKb(text: string, field: string): number {
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text)?.[1] ?? 0);
}

function vmRssKb(pid: number): number {
  try {
    return meminfoKb(readFileSync(`/proc/${pid}/status`, 'latin1'), 'VmRSS');
  } catch {
    return 0;
  }
}

const KSMKIT_TUNE = /(^|[\s/])(ksmkit|main\.[jt]s)\s+tune(\s|$)/;

/** The tuning daemons among the processes, in pid order: ksmtuned, and `ksmkit tune`. */
export function findTuners(processes: readonly ProcEntry[], confPath = KSMTUNED_CONF): TunerInfo[] {
  const tuners: TunerInfo[] = [];
  for (const p of processes) {
    if (p.comm === 'ksmtuned' || /(^|[\s/])ksmtuned(\s|$)/.test(p.cmdline)) {
      let text = '';
      try {
        text = readFileSync(confPath, 'latin1');
      } catch {
        // No file: ksmtuned runs on its defaults.
      }
      const config = parseKsmtunedConf(text);
      const meminfo = readFileSync('/proc/meminfo', 'latin1');
      const committedKb = processes
        .filter((q) => /^\S*qemu-system.*-enable-kvm/.test(q.cmdline))
        .reduce((sum, q) => sum + vmRssKb(q.pid), 0);
      const decision = ksmtunedDecision(
        config,
        {
          totalKb: meminfoKb(meminfo, 'MemTotal'),
          freeKb: meminfoKb(meminfo, 'MemFree'),
          buffersKb: meminfoKb(meminfo, 'Buffers'),
          cachedKb: meminfoKb(meminfo, 'Cached'),
        },
        committedKb,
      );
      tuners.push({
        pid: p.pid,
        name: 'ksmtuned',
        command: p.cmdline,
        configPath: confPath,
        config,
        decision,
      });
    } else if (KSMKIT_TUNE.test(p.cmdline))
      tuners.push({ pid: p.pid, name: 'ksmkit tune', command: p.cmdline });
  }
  return tuners;
}

function numaNodes(): number {
  try {
    return readdirSync('/sys/devices/system/node').filter((e) => /^node\d+$/.test(e)).length || 1;
  } catch {
    return 1;
  }
}

/** Present anonymous pages of the VM_MERGEABLE VMAs of every process that uses KSM. */
function pagesToVisit(s: StatusSnapshot): number {
  let kb = 0;
  for (const p of s.processes) {
    if (p.mergeable !== true && p.mergeAny !== true) continue;
    try {
      for (const v of parseSmaps(readFileSync(`/proc/${p.pid}/smaps`, 'latin1'))) {
        if (v.vmFlags.includes('mg')) kb += v.anonymousKb;
      }
    } catch {
      // Gone, or not ours to read: its rmap items are the best guess.
      kb += (p.rmapItems ?? 0) * 4;
    }
  }
  return kb / 4;
}

interface WindowStart {
  readonly monotonicMs: number;
  readonly ksmdPid: number | null;
  readonly ksmdCpuNs: number | null;
  readonly pagesScanned: number | null;
  readonly thpSplits: number | null;
}

function thpSplits(): number | null {
  try {
    return parseVmstatCounter(readFileSync('/proc/vmstat', 'latin1'), 'thp_split_page');
  } catch {
    return null;
  }
}

function ksmdCpu(pid: number | null): number | null {
  if (pid === null) return null;
  try {
    return ksmdCpuNs(pid);
  } catch {
    return null;
  }
}

/** A measuring window over ksmd: open it, do the slow reading, close it. */
export class HostWindow {
  private constructor(private readonly start: WindowStart) {}

  static open(): HostWindow {
    let pid: number | null = null;
    try {
      pid = ksmdPid();
    } catch {
      // No ksmd: no KSM, the snapshot says so.
    }
    const s = readSnapshot(HOST_SOURCES);
    return new HostWindow({
      monotonicMs: performance.now(),
      ksmdPid: pid,
      ksmdCpuNs: ksmdCpu(pid),
      pagesScanned: fileNumber(s, 'pages_scanned'),
      thpSplits: thpSplits(),
    });
  }

  /** Milliseconds since the window opened. */
  elapsedMs(): number {
    return performance.now() - this.start.monotonicMs;
  }

  /** Closes the window and reads the rest; `processes` serves the tuner detection. */
  close(processes: readonly ProcEntry[]): HostReading {
    const windowSeconds = this.elapsedMs() / 1000;
    const s = readSnapshot(HOST_SOURCES);
    const cpuNow = ksmdCpu(this.start.ksmdPid);
    const scannedNow = fileNumber(s, 'pages_scanned');
    const splitsNow = thpSplits();
    const delta = (a: number | null, b: number | null): number | null =>
      a === null || b === null ? null : b - a;
    const cpuNs = delta(this.start.ksmdCpuNs, cpuNow);
    return {
      available: s.available,
      ...(s.unavailableReason === undefined ? {} : { unavailableReason: s.unavailableReason }),
      kernel: s.kernel,
      settings: settingsOf(s),
      missingFiles: s.available
        ? NEEDED_FILES.filter((n) => s.files.find((f) => f.name === n)?.state !== 'ok')
        : [],
      numaNodes: numaNodes(),
      pagesToVisit: s.available ? pagesToVisit(s) : 0,
      windowSeconds,
      ksmdCpuPercent: cpuNs === null || windowSeconds <= 0 ? null : (cpuNs / 1e9 / windowSeconds) * 100,
      pagesScannedInWindow: delta(this.start.pagesScanned, scannedNow),
      thpSplitsInWindow: delta(this.start.thpSplits, splitsNow),
      tuners: findTuners(processes),
    };
  }
}
