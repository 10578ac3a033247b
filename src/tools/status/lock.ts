/**
 * What `ksmkit status` and `ksmkit restore` say about the machine-wide lock
 * of the kernel backend (src/backend/kernel/sysfs-guard.ts): a run driving
 * ksmd now, or one killed (SIGKILL, a crash of the machine's OOM killer) that
 * left its settings in place until the next kernel run restores them.
 */
import type { LockState, PendingRestore } from '../../backend/kernel/sysfs-guard.ts';

function when(ms: number, nowMs: number): string {
  const iso = new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
  const ago = Math.max(0, Math.round((nowMs - ms) / 1000));
  const span =
    ago < 120 ? `${ago} s` : ago < 7200 ? `${Math.round(ago / 60)} min` : `${(ago / 3600).toFixed(1)} h`;
  return `${iso} UTC, ${span} ago`;
}

export function pendingText(pending: readonly PendingRestore[]): string {
  return pending.map((p) => `${p.name} ${p.now} (back to ${p.restoreTo})`).join(', ');
}

/** Lines for `ksmkit status` (none when nobody holds the lock). */
export function lockLines(state: LockState, nowMs: number): string[] {
  if (state.kind === 'free') return [];
  const run = `pid ${state.pid} (${state.command}), which took ${state.lockPath} at ${when(state.takenAtMs, nowMs)}`;
  if (state.kind === 'held') {
    return [
      `A ksmkit run is driving ksmd now: ${run}.`,
      state.pending.length === 0
        ? '  It has changed no setting yet.'
        : `  It restores these when it ends: ${pendingText(state.pending)}.`,
    ];
  }
  if (state.pending.length === 0)
    return [`A ksmkit run died holding the lock (${run}), but every setting is as it saved them.`];
  return [
    `A ksmkit run was killed while driving ksmd and left its settings in place: ${run}.`,
    `  Pending restore: ${pendingText(state.pending)}.`,
    '  The next kernel run restores them; `ksmkit restore` does it now (as root).',
  ];
}
