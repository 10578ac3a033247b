/**
 * The audit log of the dormant and fortress policies: every attempt to write
 * a file of /sys/kernel/mm/ksm, refused ones too, with who made it, when (on
 * the virtual clock), the value before and the value asked for, and the
 * result (as the Linux audit subsystem records a syscall: the attempt, then
 * its outcome).
 */
import type { ErrnoCode } from '../host/errno.ts';

export interface AuditEvent {
  /** Virtual clock time of the attempt. */
  readonly timeNs: number;
  /** The writing process, or null for a write made with bare credentials (a tool acting as root). */
  readonly pid: number | null;
  readonly comm: string;
  readonly uid: number;
  /** The file's name in /sys/kernel/mm/ksm. */
  readonly file: string;
  /** What the file read before the attempt, without its newline. */
  readonly oldValue: string;
  /** The text written, without a trailing newline. */
  readonly newValue: string;
  readonly result: 'ok' | ErrnoCode;
}

export class AuditLog {
  private readonly events: AuditEvent[] = [];

  append(event: AuditEvent): void {
    this.events.push(event);
  }

  entries(): readonly AuditEvent[] {
    return this.events;
  }

  get length(): number {
    return this.events.length;
  }
}

const HEADER = ['time_s', 'pid', 'comm', 'uid', 'file', 'old', 'new', 'result'] as const;

/** One row per event under a header, columns aligned; seconds with nanosecond digits. */
export function formatAuditLog(entries: readonly AuditEvent[]): string[] {
  const rows: string[][] = [
    [...HEADER],
    ...entries.map((e) => [
      (e.timeNs / 1e9).toFixed(9),
      e.pid === null ? '-' : String(e.pid),
      e.comm,
      String(e.uid),
      e.file,
      JSON.stringify(e.oldValue),
      JSON.stringify(e.newValue),
      e.result,
    ]),
  ];
  const widths = HEADER.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) =>
    r
      .map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd(),
  );
}
