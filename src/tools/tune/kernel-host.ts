/**
 * The real host as a `TunerHost`: /proc/meminfo, the guests' RSS (the
 * processes ksmtuned counts: command line matching `^qemu-system.*-enable-kvm`,
 * RSS as `ps -o rsz` reports it, VmRSS of /proc/PID/status), ksmd's CPU time
 * (/proc/PID/schedstat) and /sys/kernel/mm/ksm. Both roots are injectable
 * (tests, and the ksmtuned oracle's private mount namespace).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errnoNameOf } from '../../backend/kernel/ksm-sysfs.ts';
import { findKsmdPid, readKsmdCpuNs } from '../../backend/kernel/ksmd-thread.ts';
import { KSM_SYSFS_DIR } from '../../surface/sysfs.ts';
import type { KsmSettingsChange, KsmState, MemInfoKb, TunerInputs } from '../../tuner/inputs.ts';
import type { TunerHost } from '../../tuner/loop.ts';

export interface KernelHostSources {
  readonly procDir: string;
  readonly ksmDir: string;
}

export const KERNEL_HOST_SOURCES: KernelHostSources = { procDir: '/proc', ksmDir: KSM_SYSFS_DIR };

/** ksmtuned's pattern (`pgrep -f '^qemu-system.*-enable-kvm'`), matched against the command line joined by spaces. */
export const QEMU_KVM_PATTERN = /^qemu-system.*-enable-kvm/;

const MEMINFO_KEYS = ['MemTotal', 'MemFree', 'MemAvailable', 'Buffers', 'Cached', 'SwapFree'] as const;

export function parseMeminfo(text: string, path = '/proc/meminfo'): MemInfoKb {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s+(\d+)(?: kB)?$/.exec(line.trim());
    if (m !== null) out[m[1]!] = Number(m[2]);
  }
  const missing = MEMINFO_KEYS.filter((k) => out[k] === undefined && k !== 'SwapFree');
  if (missing.length > 0) throw new Error(`${path}: no ${missing.join(', ')} line`);
  return {
    MemTotal: out.MemTotal!,
    MemFree: out.MemFree!,
    MemAvailable: out.MemAvailable!,
    Buffers: out.Buffers!,
    Cached: out.Cached!,
    SwapFree: out.SwapFree ?? 0,
  };
}

/** kB of RSS of every process whose command line matches `pattern`, as `ps -o rsz` sums them. */
export function committedMemoryKb(procDir: string, pattern: RegExp = QEMU_KVM_PATTERN): number {
  let sum = 0;
  for (const entry of readdirSync(procDir)) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(join(procDir, entry, 'cmdline'), 'latin1')
        .replace(/\0$/, '')
        .replaceAll('\0', ' ');
      if (!pattern.test(cmdline)) continue;
      // VmRSS, as procps 4's `ps -o rsz` reads it. /proc/PID/stat's rss field is lower by tens of kB per
      // process on 6.18 (68-92 kB measured): do_task_stat() (fs/proc/array.c) reads get_mm_rss(), the per-CPU
      // counters' approximation, while task_mem() (fs/proc/task_mmu.c) sums them (get_mm_counter_sum()).
      const status = readFileSync(join(procDir, entry, 'status'), 'latin1');
      const rss = /^VmRSS:\s+(\d+) kB$/m.exec(status);
      if (rss !== null) sum += Number(rss[1]);
    } catch {
      // Gone meanwhile: ps would not have listed it either.
    }
  }
  return sum;
}

export class KernelTunerHost implements TunerHost {
  private ksmdPid: number | undefined;
  private readonly startedAt = performance.now();

  constructor(readonly sources: KernelHostSources = KERNEL_HOST_SOURCES) {
    try {
      this.ksmdPid = findKsmdPid(sources.procDir);
    } catch {
      // No ksmd in this /proc (another pid namespace, a test directory): its CPU reads as 0.
      this.ksmdPid = undefined;
    }
  }

  observe(): TunerInputs {
    const { procDir } = this.sources;
    return {
      nowMs: performance.now() - this.startedAt,
      meminfo: parseMeminfo(readFileSync(join(procDir, 'meminfo'), 'latin1'), join(procDir, 'meminfo')),
      committedKb: committedMemoryKb(procDir),
      ksm: this.readKsm(),
      ksmdCpuNs: this.ksmdCpuNs(),
    };
  }

  private ksmdCpuNs(): number {
    if (this.ksmdPid === undefined) return 0;
    try {
      return readKsmdCpuNs(this.ksmdPid, this.sources.procDir);
    } catch {
      this.ksmdPid = undefined;
      return 0;
    }
  }

  private readKsm(): KsmState {
    const num = (name: string): number => {
      const text = this.read(name);
      const n = Number(text);
      if (!Number.isSafeInteger(n))
        throw new Error(`${join(this.sources.ksmDir, name)}: not an integer: ${text}`);
      return n;
    };
    let advisor = 'none';
    try {
      advisor = selected(this.read('advisor_mode'));
    } catch {
      // A kernel before 6.8 has no advisor: its mode is none.
    }
    return {
      run: num('run'),
      pages_to_scan: num('pages_to_scan'),
      sleep_millisecs: num('sleep_millisecs'),
      advisor_mode: advisor,
      full_scans: num('full_scans'),
      pages_scanned: num('pages_scanned'),
      pages_shared: num('pages_shared'),
      pages_sharing: num('pages_sharing'),
    };
  }

  private read(name: string): string {
    return readFileSync(join(this.sources.ksmDir, name), 'latin1').trim();
  }

  readSetting(name: keyof KsmSettingsChange): string {
    const text = this.read(name);
    return name === 'advisor_mode' ? selected(text) : text;
  }

  writeSetting(name: keyof KsmSettingsChange, value: string): { ok: true } | { ok: false; errno: string } {
    try {
      writeFileSync(join(this.sources.ksmDir, name), value, { encoding: 'latin1', flag: 'w' });
      return { ok: true };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (errnoNameOf(code) === undefined && code !== 'ENOENT') throw e;
      return { ok: false, errno: code ?? 'EIO' };
    }
  }
}

function selected(text: string): string {
  return /\[([^\]]+)\]/.exec(text)?.[1] ?? text;
}
