/**
 * One exit-status convention for every ksmkit command, and the one way a
 * command says what went wrong:
 *
 * - 0: done;
 * - 1: ran, and the answer is "no" or the work failed (a difference between
 *   backends, a failed expect, a kernel write refused, a process gone);
 * - 2: usage error: the command line, a file it names, or this machine cannot
 *   do what was asked; nothing was changed. Commander's own parser errors
 *   (unknown option, missing argument, a bad option value) exit 2 too.
 *
 * Errors go to stderr as one sentence, `ksmkit COMMAND: what was wrong`, never
 * as a stack trace.
 */
import type { CommandUnknownOpts } from '@commander-js/extra-typings';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** An error whose message is a whole sentence for the user: the command prints it and exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** `ksmkit COMMAND: message`, the shape every command's errors take. */
export function errorLine(command: string, message: string): string {
  return `ksmkit ${command}: ${message}`;
}

/** The message of anything thrown, without the stack. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Makes commander exit 2 on its usage errors (it exits 1 by default) on the
 * program and every subcommand, and 0 for --help and --version. Call after
 * every command is registered.
 */
export function applyExitConvention(program: CommandUnknownOpts): void {
  program.exitOverride((err) => {
    process.exit(err.exitCode === 0 ? EXIT_OK : EXIT_USAGE);
  });
  for (const sub of program.commands) applyExitConvention(sub);
}
