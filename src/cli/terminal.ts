/**
 * What a command may do to the terminal, decided in one place:
 * - colour only on a terminal and never with NO_COLOR (picocolors' rule,
 *   which also honours FORCE_COLOR and --no-color);
 * - progress lines only when stderr is a terminal, unless --progress asks;
 * - tables as wide as the terminal, or as wide as they need when piped;
 * - the cursor and line wrap given back on every way out. Commands whose work
 *   is synchronous (the engine) cannot run a SIGINT handler before the signal
 *   kills them, so they must not hide the cursor or turn line wrap off at all;
 *   the others (status --watch) restore through `restoreTerminal` in a finally
 *   reached on SIGINT, SIGTERM and exceptions, and at process exit.
 */
import { writeSync } from 'node:fs';
import pc from 'picocolors';

/** Show the cursor, wrap long lines. */
export const TERMINAL_RESTORE = '\x1b[?25h\x1b[?7h';

export function stdoutColor(): boolean {
  return process.stdout.isTTY === true && pc.isColorSupported;
}

export function stderrColor(): boolean {
  return process.stderr.isTTY === true && pc.isColorSupported;
}

/** The terminal's columns when stdout is one, else $COLUMNS if set, else undefined (no limit). */
export function stdoutWidth(): number | undefined {
  if (process.stdout.isTTY === true && process.stdout.columns !== undefined && process.stdout.columns > 0)
    return process.stdout.columns;
  const env = Number(process.env.COLUMNS);
  return Number.isInteger(env) && env > 0 ? env : undefined;
}

/** --progress forces progress lines, --no-progress stops them; by default only on a terminal. */
export function progressWanted(flag: boolean | undefined): boolean {
  return flag ?? process.stderr.isTTY === true;
}

let exitHookFd: number | undefined;

/**
 * Gives the cursor and line wrap back on `fd` now and once more at process
 * exit (an exception thrown past the command's own finally).
 */
export function restoreTerminal(fd: number): void {
  try {
    writeSync(fd, TERMINAL_RESTORE);
  } catch {
    // The terminal is gone: nothing to restore.
  }
}

/** Registers `restoreTerminal(fd)` for process exit; call before changing the terminal's modes. */
export function restoreTerminalAtExit(fd: number): void {
  if (exitHookFd !== undefined) return;
  exitHookFd = fd;
  process.on('exit', () => restoreTerminal(fd));
}

/**
 * `ksmkit ... | head`: when the reader of stdout goes away, stop quietly (as
 * any Unix tool does) instead of dying of EPIPE with a stack trace.
 */
export function exitQuietlyOnClosedStdout(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
}
