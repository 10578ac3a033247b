/**
 * The ksmd kernel thread seen from /proc: its pid (comm "ksmd", a child of
 * kthreadd) and the CPU time it has used (/proc/PID/schedstat, first field:
 * nanoseconds on a CPU, not wall time). schedstat is world-readable, so an
 * ordinary user sees ksmd's CPU too. The /proc root is injectable for tests.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const PROC_DIR = '/proc';

/** The ksmd kernel thread's pid. Throws when there is none (a kernel without CONFIG_KSM). */
export function findKsmdPid(procDir = PROC_DIR): number {
  for (const entry of readdirSync(procDir)) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(join(procDir, entry, 'stat'), 'latin1');
      if (stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) !== 'ksmd') continue;
      // Field 4 (ppid) is the second after the command's closing parenthesis.
      if (stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] === '2') return Number(entry);
    } catch {
      // Gone meanwhile.
    }
  }
  throw new Error('no ksmd kernel thread found: is CONFIG_KSM on?');
}

/** The first field of /proc/PID/schedstat: nanoseconds on a CPU. */
export function parseSchedstatNs(text: string): number {
  const ns = Number(text.trim().split(/\s+/)[0]);
  if (!Number.isSafeInteger(ns) || ns < 0) throw new Error(`schedstat: cannot read "${text.trim()}"`);
  return ns;
}

/** ksmd's CPU time so far, in ns. */
export function readKsmdCpuNs(ksmdPid: number, procDir = PROC_DIR): number {
  return parseSchedstatNs(readFileSync(join(procDir, String(ksmdPid), 'schedstat'), 'latin1'));
}

/** What the scheduler says of ksmd: CPU time, run-queue wait, time slices and preemptions. */
export interface KsmdSchedstat {
  readonly cpuNs: number;
  readonly runDelayNs: number;
  readonly slices: number;
  readonly preemptions: number;
}

/**
 * /proc/PID/schedstat: time on CPU, time waiting on a run queue (ns), and
 * time slices run (a wake-up, or a return after cond_resched() yielded);
 * /proc/PID/status: the involuntary context switches (preemptions).
 */
export function readKsmdSchedstat(ksmdPid: number, procDir = PROC_DIR): KsmdSchedstat {
  const [cpu, delay, slices] = readFileSync(join(procDir, String(ksmdPid), 'schedstat'), 'latin1')
    .trim()
    .split(/\s+/);
  const status = readFileSync(join(procDir, String(ksmdPid), 'status'), 'latin1');
  const preemptions = Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
  return { cpuNs: Number(cpu), runDelayNs: Number(delay), slices: Number(slices), preemptions };
}
