/**
 * `ksmkit exec CMD ARGS...`: runs a command with KSM enabled for it and all
 * its descendants, the way an orchestrator would. The prctl is made by the
 * small C helper native/ksm-exec.c (built by scripts/build-agent.mjs), which
 * then execs the command in the same process: MMF_VM_MERGE_ANY is inherited
 * across fork and exec, so the Node process itself is never made mergeable.
 * Here: check the helper is there, hint when ksmd is stopped, spawn it with
 * stdio inherited, forward SIGINT/SIGTERM/SIGHUP, and return the command's
 * exit status (128 + the signal's number when a signal killed it).
 */
import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { KSM_SYSFS_DIR } from '../../surface/sysfs.ts';

/** Where scripts/build-agent.mjs puts the helper (the same from src/ and from dist/). */
export const DEFAULT_EXEC_HELPER = fileURLToPath(
  new URL('../../../native/build/ksmkit-exec', import.meta.url),
);

/** The helper's exit statuses when the command does not start (keep in step with native/ksm-exec.c). */
export const EXEC_EXIT = {
  /** No command given. */
  usage: 64,
  /** No KSM in this kernel, or a kernel before 6.4 (prctl EINVAL); also: not Linux, helper not built. */
  noKsm: 69,
  /** prctl failed for another reason. */
  prctlFailed: 71,
  /** prctl refused (EPERM/EACCES: a seccomp filter or security module). */
  noPermission: 77,
  /** Found but not executable (permissions, format, missing interpreter). */
  cannotExecute: 126,
  /** Command not found. */
  notFound: 127,
} as const;

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export interface ExecOptions {
  /** Default native/build/ksmkit-exec, or $KSMKIT_EXEC_HELPER. */
  readonly helperPath?: string;
  /** Default /sys/kernel/mm/ksm (for the "ksmd is stopped" hint). */
  readonly ksmDir?: string;
  /** No hint when ksmd is not running. */
  readonly quiet?: boolean;
  /** Default 'inherit'. */
  readonly stdio?: StdioOptions;
  readonly err: (line: string) => void;
  /** Called with the helper's process once it is spawned (its pid is the command's). */
  readonly onSpawn?: (child: ChildProcess) => void;
}

export function helperPathFromEnv(): string {
  const fromEnv = process.env.KSMKIT_EXEC_HELPER;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_EXEC_HELPER;
}

/** Whether `ksmkit exec` can run here; if not, the message and the exit status. */
export function execAvailability(
  helperPath: string = helperPathFromEnv(),
): { readonly ok: true } | { readonly ok: false; readonly reason: string; readonly status: number } {
  if (process.platform !== 'linux') {
    return {
      ok: false,
      reason: `it needs Linux (prctl PR_SET_MEMORY_MERGE); this is ${process.platform}`,
      status: EXEC_EXIT.noKsm,
    };
  }
  try {
    accessSync(helperPath, fsConstants.X_OK);
  } catch {
    return {
      ok: false,
      reason: `its helper ${helperPath} is not built: run node scripts/build-agent.mjs (it needs a C compiler)`,
      status: EXEC_EXIT.noKsm,
    };
  }
  return { ok: true };
}

/**
 * A note for stderr when ksmd will not merge the command's pages
 * (run is not 1), or undefined. Missing KSM is the helper's error to report.
 */
export function ksmdHint(ksmDir: string = KSM_SYSFS_DIR): string | undefined {
  let run: string;
  try {
    run = readFileSync(`${ksmDir}/run`, 'latin1').trim();
  } catch {
    return undefined;
  }
  if (run === '1') return undefined;
  const state =
    run === '0' ? 'ksmd is stopped' : run === '2' ? 'ksmd is unmerging everything' : 'ksmd is not merging';
  return (
    `ksmkit exec: note: ${state} (${ksmDir}/run is ${run}): the command's memory is mergeable, ` +
    `but nothing is merged until root writes 1 there`
  );
}

/** Whether execvp would find `command` (approximately: only to keep the hint off a "command not found"). */
export function commandExists(command: string, path: string = process.env.PATH ?? '/usr/bin:/bin'): boolean {
  const candidates = command.includes('/')
    ? [command]
    : path.split(':').map((dir) => `${dir === '' ? '.' : dir}/${command}`);
  return candidates.some((c) => {
    try {
      accessSync(c, fsConstants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** 128 + the signal's number, as a shell reports a command killed by a signal. */
export function signalStatus(signal: NodeJS.Signals): number {
  return 128 + (osConstants.signals[signal] ?? 0);
}

/** Runs the command; resolves to the exit status `ksmkit exec` should exit with. */
export async function runExec(argv: readonly string[], options: ExecOptions): Promise<number> {
  if (argv.length === 0 || argv[0] === '') {
    options.err('ksmkit exec: no command given (usage: ksmkit exec [--] CMD [ARGS...])');
    return EXEC_EXIT.usage;
  }
  const helperPath = options.helperPath ?? helperPathFromEnv();
  const availability = execAvailability(helperPath);
  if (!availability.ok) {
    options.err(`ksmkit exec: unavailable: ${availability.reason}`);
    return availability.status;
  }
  if (options.quiet !== true && commandExists(argv[0]!)) {
    const hint = ksmdHint(options.ksmDir);
    if (hint !== undefined) options.err(hint);
  }
  let child: ChildProcess | undefined;
  const forward = (signal: NodeJS.Signals): void => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  // Installed before the spawn, so that no signal can find ksmkit without them (it would die, the command not).
  for (const s of FORWARDED) process.on(s, forward);
  try {
    child = spawn(helperPath, argv, { stdio: options.stdio ?? 'inherit' });
    const started = child;
    return await new Promise<number>((resolve) => {
      started.once('error', (e) => {
        options.err(`ksmkit exec: cannot start ${helperPath}: ${e.message}`);
        resolve(EXEC_EXIT.cannotExecute);
      });
      started.once('spawn', () => options.onSpawn?.(started));
      started.once('close', (code, signal) => {
        resolve(code ?? (signal === null ? EXEC_EXIT.cannotExecute : signalStatus(signal)));
      });
    });
  } finally {
    for (const s of FORWARDED) process.off(s, forward);
  }
}
