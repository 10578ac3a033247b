/**
 * What the benchmark reads from /proc: ksmd's CPU time (schedstat, the time
 * it spent on a CPU, not wall time), this process's peak resident memory
 * (VmHWM), CPU time of this process, and pages swapped out (pswpout).
 */
import { readFileSync } from 'node:fs';

export { parseSchedstatNs, readKsmdCpuNs } from '../backend/kernel/ksmd-thread.ts';

/** A "Name:   123 kB" line of /proc/PID/status, in bytes. */
export function parseStatusKbLine(status: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
  if (m === null) throw new Error(`/proc status has no ${field} line`);
  return Number(m[1]) * 1024;
}

/** Peak resident memory of this process so far (VmHWM), in bytes. */
export function readPeakRssBytes(): number {
  return parseStatusKbLine(readFileSync('/proc/self/status', 'latin1'), 'VmHWM');
}

/** A counter of /proc/vmstat ("pswpout 0"). */
export function parseVmstatCounter(vmstat: string, name: string): number {
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(vmstat);
  if (m === null) throw new Error(`/proc/vmstat has no ${name} line`);
  return Number(m[1]);
}

/** Pages swapped out since boot. */
export function readPagesSwappedOut(): number {
  return parseVmstatCounter(readFileSync('/proc/vmstat', 'latin1'), 'pswpout');
}

/** User + system CPU time of this process so far, in ns (one thread does the engine's work). */
export function processCpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}
