/** `ksmkit restore`: put back the KSM settings a killed ksmkit run left behind, now. */
import type { Command } from '@commander-js/extra-typings';
import { DEFAULT_LOCK_PATH, lockState, restoreStaleSettings } from '../backend/kernel/sysfs-guard.ts';
import { lockLines, pendingText } from '../tools/status/lock.ts';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, errorLine, messageOf } from './exit.ts';

export interface RestoreIo {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
}

export async function restoreCommand(lockPath: string, io: RestoreIo): Promise<number> {
  const state = lockState(lockPath);
  if (state.kind === 'free') {
    io.out(`Nothing to restore: no ksmkit run holds ${lockPath}.`);
    return EXIT_OK;
  }
  if (state.kind === 'held') {
    for (const line of lockLines(state, Date.now())) io.err(line);
    io.err(errorLine('restore', `pid ${state.pid} is alive and restores its settings itself when it ends`));
    return EXIT_FAILED;
  }
  if (state.pending.length > 0 && process.getuid?.() !== 0) {
    io.err(
      errorLine('restore', `writing /sys/kernel/mm/ksm needs root; pending: ${pendingText(state.pending)}`),
    );
    return EXIT_USAGE;
  }
  try {
    const restored = await restoreStaleSettings(lockPath);
    if (restored.kind === 'stale' && restored.pending.length > 0)
      io.out(`Restored what pid ${restored.pid} left: ${pendingText(restored.pending)}.`);
    else io.out(`Removed the stale lock of pid ${state.pid}; no setting needed restoring.`);
    return EXIT_OK;
  } catch (e) {
    io.err(errorLine('restore', messageOf(e)));
    return EXIT_FAILED;
  }
}

/** Adds `ksmkit restore` to the program. */
export function registerRestore(program: Command): void {
  program
    .command('restore')
    .description(
      'put back the /sys/kernel/mm/ksm settings a killed ksmkit run left in place (`ksmkit status` says which)',
    )
    .option('--lock-file <path>', 'the kernel backend’s lock file', DEFAULT_LOCK_PATH)
    .action(async (opts) => {
      process.exitCode = await restoreCommand(opts.lockFile, {
        out: (l) => console.log(l),
        err: (l) => console.error(l),
      });
    });
}
