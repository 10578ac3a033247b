/**
 * The one owner of the host's KSM settings while ksmkit drives the real ksmd.
 *
 * `SysfsGuard.acquire()`:
 * 1. takes the machine-wide lock file (created exclusively, holding our pid),
 *    so two test files or tools never drive ksmd at once; it waits for a live
 *    holder up to a timeout, and takes over a stale one (holder dead);
 * 2. refuses, naming them, if other processes on the machine are already
 *    mergeable (their pages would be merged with ours and change every
 *    counter), unless `force`;
 * 3. saves every writable /sys/kernel/mm/ksm file, into the lock file too, so
 *    that if we die without restoring (SIGKILL), whoever takes the stale lock
 *    over restores the machine's original settings, not our leftovers.
 *
 * `release()` restores them and drops the lock. It runs on every exit path:
 * a normal close, a thrown error (callers use try/finally, see
 * `withKernelBackend`), SIGINT/SIGTERM/SIGHUP (restore, then the signal is
 * raised again so the process still dies of it), and `process.on('exit')` as a
 * synchronous last resort. Everything here is synchronous for that reason.
 */
import {
  closeSync,
  linkSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { listKsmFiles, readKsm, selectedWord, writeKsm } from './ksm-sysfs.ts';

export const DEFAULT_LOCK_PATH = '/tmp/ksmkit-kernel.lock';

export interface SysfsGuardOptions {
  /** Default /tmp/ksmkit-kernel.lock. */
  readonly lockPath?: string;
  /** How long to wait for another live holder of the lock; default 120 s. */
  readonly lockTimeoutMs?: number;
  /** Start even if other processes of the machine are mergeable. */
  readonly force?: boolean;
}

/** What a machine-wide lock file holds (also /tmp/ksmkit-zram.lock's, see zram-guard.ts). */
export interface LockContents {
  readonly version: 1;
  readonly pid: number;
  /** The holder's start time (clock ticks since boot): a reused pid is not the holder. */
  readonly startTicks: number;
  readonly command: string;
  /** When the holder took the lock (ms since the epoch); absent in locks of older versions. */
  readonly takenAtMs?: number;
  /** The machine's settings before the first holder changed them; null until saved. */
  readonly saved: Readonly<Record<string, string>> | null;
}

/** A process of the machine that KSM may scan. */
export interface MergeableProcess {
  readonly pid: number;
  readonly command: string;
  readonly mergeAny: boolean;
  readonly mergeable: boolean;
}

function processStartTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Field 22 (starttime); the fields after the command's closing parenthesis start at field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

function commandOf(pid: number): string {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0+$/, '').replaceAll('\0', ' ');
    if (cmdline !== '') return cmdline.length > 200 ? `${cmdline.slice(0, 200)}…` : cmdline;
    return `[${readFileSync(`/proc/${pid}/comm`, 'latin1').trim()}]`;
  } catch {
    return '?';
  }
}

/** A lock file nobody could parse for this long was left half-written by a holder that died. */
const UNREADABLE_LOCK_STALE_MS = 5000;

function lockAgeMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function isHolderAlive(lock: LockContents): boolean {
  return processStartTicks(lock.pid) === lock.startTicks;
}

function readLock(path: string): LockContents | undefined {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as LockContents;
    return parsed.version === 1 && Number.isSafeInteger(parsed.pid) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** Every process whose /proc/PID/ksm_stat says `ksm_mergeable: yes` or `ksm_merge_any: yes`. */
export function mergeableProcesses(exceptPids: ReadonlySet<number> = new Set()): MergeableProcess[] {
  const found: MergeableProcess[] = [];
  const entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  for (const entry of entries) {
    const pid = Number(entry);
    if (exceptPids.has(pid) || pid === process.pid) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/ksm_stat`, 'latin1');
    } catch {
      continue;
    }
    const mergeAny = /^ksm_merge_any: yes$/m.test(text);
    const mergeable = /^ksm_mergeable: yes$/m.test(text);
    if (mergeAny || mergeable) found.push({ pid, command: commandOf(pid), mergeAny, mergeable });
  }
  return found;
}

const EBUSY_RETRIES = 100;
const EBUSY_RETRY_MS = 10;

/** Sleeps the whole thread: these writes also run in `process.on('exit')`, where no timer fires. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Writes KSM settings back in an order the kernel accepts, and returns the
 * failures (empty when all went in):
 * 1. run=2 first: unmerges everything, so pages_shared is 0, without which
 *    max_page_sharing and merge_across_nodes refuse a change (EBUSY);
 * 2. advisor_mode=none: pages_to_scan is refused (EINVAL) while the advisor
 *    is scan-time, and switching to none resets it to 100, so it goes first;
 * 3. every other file, advisor tunables before pages_to_scan;
 * 4. advisor_mode as asked, if not none (switching to scan-time sets
 *    pages_to_scan to advisor_min_pages_to_scan: that is the kernel's rule);
 * 5. run last, when no other write can disturb ksmd any more.
 */
export function writeSettingsInOrder(values: ReadonlyMap<string, string>): string[] {
  const failures: string[] = [];
  const put = (name: string, value: string): void => {
    let r = writeKsm(name, value);
    // EBUSY: a stable node could not be freed because an exiting process still maps its KSM page
    // (run=2 skips exiting mms). It goes as soon as that process's exit_mmap() has run.
    for (let retry = 0; !r.ok && r.errno === 'EBUSY' && retry < EBUSY_RETRIES; retry++) {
      sleepSync(EBUSY_RETRY_MS);
      r = writeKsm(name, value);
    }
    if (!r.ok) failures.push(`${name}=${JSON.stringify(value)}: ${r.errno}`);
  };
  if (readKsm('run') !== '2') put('run', '2');
  if (selectedWord(readKsm('advisor_mode')) !== 'none') put('advisor_mode', 'none');
  const advisorMode = values.get('advisor_mode') ?? 'none';
  const rest = [...values.keys()]
    .filter((n) => n !== 'run' && n !== 'advisor_mode' && !(n === 'pages_to_scan' && advisorMode !== 'none'))
    .sort((a, b) => Number(a === 'pages_to_scan') - Number(b === 'pages_to_scan') || a.localeCompare(b));
  for (const name of rest) {
    const value = values.get(name)!;
    if (readKsm(name) !== value) put(name, value);
  }
  if (advisorMode !== 'none') put('advisor_mode', advisorMode);
  const run = values.get('run');
  if (run !== undefined && readKsm('run') !== run) put('run', run);
  return failures;
}

/** An owner of shared machine state that must give it back however the process ends. */
export interface ExitRestorer {
  /** Restores and unlocks; reports to stderr instead of throwing. */
  releaseQuietly(when: string): void;
}

const active = new Set<ExitRestorer>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Runs `owner.releaseQuietly` on SIGINT, SIGTERM, SIGHUP (then dies of the signal) and at exit, until `forgetOnExit`. */
export function restoreOnExit(owner: ExitRestorer): void {
  active.add(owner);
  installHandlers();
}

export function forgetOnExit(owner: ExitRestorer): void {
  active.delete(owner);
  if (active.size === 0) uninstallHandlers();
}

function onSignal(signal: NodeJS.Signals): void {
  for (const guard of [...active]) guard.releaseQuietly(`on ${signal}`);
  uninstallHandlers();
  // Die of the signal as we would have without a handler, unless someone else handles it.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function onExit(): void {
  for (const guard of [...active]) guard.releaseQuietly('at exit');
}

function installHandlers(): void {
  if (active.size !== 1) return;
  for (const s of SIGNALS) process.on(s, onSignal);
  process.on('exit', onExit);
}

function uninstallHandlers(): void {
  for (const s of SIGNALS) process.off(s, onSignal);
  process.off('exit', onExit);
}

/** Holds the lock and the saved settings; `release()` gives both back. */
export class SysfsGuard implements ExitRestorer {
  private released = false;
  private readonly beforeRestore: Array<() => void> = [];

  private constructor(
    readonly lockPath: string,
    /** Every writable /sys/kernel/mm/ksm file and the value to put back (advisor_mode as its word). */
    readonly saved: ReadonlyMap<string, string>,
  ) {}

  static async acquire(options: SysfsGuardOptions = {}): Promise<SysfsGuard> {
    const lockPath = options.lockPath ?? DEFAULT_LOCK_PATH;
    const adopted = await takeLock(lockPath, options.lockTimeoutMs ?? 120_000);
    const others = mergeableProcesses();
    if (others.length > 0 && options.force !== true) {
      giveBackLock(lockPath, adopted);
      const list = others
        .map((p) => `pid ${p.pid} (${p.command})${p.mergeAny ? ' [prctl merge_any]' : ''}`)
        .join(', ');
      throw new Error(
        `refusing to drive ksmd: other processes are already mergeable and would mix their pages into ` +
          `every counter: ${list}. Stop them, or pass force to go ahead anyway.`,
      );
    }
    const saved =
      adopted?.saved !== undefined && adopted.saved !== null ? adopted.saved : readWritableSettings();
    const guard = new SysfsGuard(lockPath, new Map(Object.entries(saved)));
    writeLock(lockPath, { ...ownLock(), saved });
    restoreOnExit(guard);
    return guard;
  }

  /** A synchronous step to run before the settings are restored (the backend kills its agents). */
  onBeforeRestore(fn: () => void): void {
    this.beforeRestore.push(fn);
  }

  get isReleased(): boolean {
    return this.released;
  }

  /** Restores every saved setting and drops the lock; safe to call twice. Throws if a setting would not go back. */
  release(): void {
    if (this.released) return;
    this.released = true;
    forgetOnExit(this);
    let failures: string[] = [];
    try {
      for (const fn of this.beforeRestore.splice(0)) {
        try {
          fn();
        } catch (e) {
          failures.push(`before restore: ${(e as Error).message}`);
        }
      }
      failures = failures.concat(writeSettingsInOrder(this.saved));
    } finally {
      try {
        unlinkSync(this.lockPath);
      } catch {
        // Already gone: nothing to give back.
      }
    }
    if (failures.length > 0) {
      throw new Error(`could not restore /sys/kernel/mm/ksm: ${failures.join('; ')}`);
    }
  }

  /** `release()` for the signal and exit paths: reports to stderr instead of throwing. */
  releaseQuietly(when: string): void {
    try {
      this.release();
    } catch (e) {
      try {
        writeSync(2, `ksmkit: ${when}: ${(e as Error).message}\n`);
      } catch {
        // stderr is gone too: nothing more to do.
      }
    }
  }

  [Symbol.dispose](): void {
    this.release();
  }
}

function readWritableSettings(): Record<string, string> {
  const saved: Record<string, string> = {};
  for (const f of listKsmFiles()) {
    if (!f.writable) continue;
    const text = readKsm(f.name);
    saved[f.name] = f.name === 'advisor_mode' ? selectedWord(text) : text;
  }
  return saved;
}

export function ownLock(): LockContents {
  const startTicks = processStartTicks(process.pid);
  if (startTicks === undefined) throw new Error('cannot read /proc/self/stat');
  return {
    version: 1,
    pid: process.pid,
    startTicks,
    command: commandOf(process.pid),
    takenAtMs: Date.now(),
    saved: null,
  };
}

export function writeLock(path: string, contents: LockContents): void {
  writeFileSync(path, `${JSON.stringify(contents)}\n`);
}

/**
 * Creates the lock file exclusively. Waits while a live process holds it;
 * takes over a lock whose holder is dead and returns that lock's contents (its
 * saved settings are the machine's real ones). Throws after the timeout.
 */
export async function takeLock(path: string, timeoutMs: number): Promise<LockContents | undefined> {
  const deadline = Date.now() + timeoutMs;
  let adopted: LockContents | undefined;
  for (;;) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      try {
        writeSync(fd, `${JSON.stringify(ownLock())}\n`);
      } finally {
        closeSync(fd);
      }
      return adopted;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = readLock(path);
    if (holder !== undefined && holder.pid === process.pid && isHolderAlive(holder)) {
      throw new Error(`${path} is already held by this process: release the other holder first`);
    }
    // A dead holder, or one that died between creating the file and writing it.
    if (holder !== undefined ? !isHolderAlive(holder) : lockAgeMs(path) > UNREADABLE_LOCK_STALE_MS) {
      const taken = takeOverStale(path, holder);
      if (taken !== undefined && taken.saved !== null) adopted = taken;
      continue;
    }
    if (Date.now() >= deadline) {
      const who =
        holder === undefined ? 'a process that is still writing it' : `pid ${holder.pid} (${holder.command})`;
      throw new Error(
        `another ksmkit run holds ${path}: ${who}. Waited ${timeoutMs} ms for it; only one run at a time ` +
          `may drive what it guards.`,
      );
    }
    await sleep(50);
  }
}

/**
 * Moves a dead holder's lock aside. rename() is atomic, so of two processes
 * taking over the same stale lock only one gets it; if what was moved turns
 * out to be a live holder's fresh lock (it replaced the stale one in between),
 * it is linked back.
 */
function takeOverStale(path: string, seen: LockContents | undefined): LockContents | undefined {
  const aside = `${path}.stale.${process.pid}`;
  try {
    renameSync(path, aside);
  } catch {
    return undefined;
  }
  const moved = readLock(aside);
  if (moved !== undefined && moved.pid !== seen?.pid && isHolderAlive(moved)) {
    try {
      linkSync(aside, path);
    } catch {
      // Someone else created a lock meanwhile; theirs stands.
    }
    unlinkSync(aside);
    return undefined;
  }
  unlinkSync(aside);
  return moved;
}

/** Undoes takeLock when acquire() refuses: a taken-over stale lock goes back as it was, with its saved settings. */
export function giveBackLock(path: string, adopted: LockContents | undefined): void {
  if (adopted !== undefined) writeLock(path, adopted);
  else unlinkSync(path);
}

// ------------------------------------------------------------------ the lock as others see it

/** One setting a run changed and the value it will be put back to. */
export interface PendingRestore {
  readonly name: string;
  readonly now: string;
  readonly restoreTo: string;
}

/** What the lock file says: nobody drives ksmd, a live run does, or a dead run left its settings behind. */
export type LockState =
  | { readonly kind: 'free'; readonly lockPath: string }
  | {
      readonly kind: 'held' | 'stale';
      readonly lockPath: string;
      readonly pid: number;
      readonly command: string;
      /** When the run took the lock (its lock file's time for locks that do not say). */
      readonly takenAtMs: number;
      /** Settings that differ from what the run saved (empty when it saved none yet, or changed none). */
      readonly pending: readonly PendingRestore[];
    };

/**
 * Reads the lock without taking it. `pending` compares the saved settings
 * with the live /sys/kernel/mm/ksm files (`readCurrent` for tests).
 */
export function lockState(
  lockPath: string = DEFAULT_LOCK_PATH,
  readCurrent: (name: string) => string | undefined = readSettingWord,
): LockState {
  const lock = readLock(lockPath);
  if (lock === undefined) return { kind: 'free', lockPath };
  const pending: PendingRestore[] = [];
  for (const [name, restoreTo] of Object.entries(lock.saved ?? {})) {
    const now = readCurrent(name);
    if (now !== undefined && now !== restoreTo) pending.push({ name, now, restoreTo });
  }
  let takenAtMs = lock.takenAtMs;
  if (takenAtMs === undefined) {
    try {
      takenAtMs = statSync(lockPath).mtimeMs;
    } catch {
      takenAtMs = Date.now();
    }
  }
  return {
    kind: isHolderAlive(lock) ? 'held' : 'stale',
    lockPath,
    pid: lock.pid,
    command: lock.command,
    takenAtMs,
    pending,
  };
}

function readSettingWord(name: string): string | undefined {
  try {
    const text = readKsm(name);
    return name === 'advisor_mode' ? selectedWord(text) : text;
  } catch {
    return undefined;
  }
}

/**
 * Puts back the settings a dead run left behind, now, under the lock (as the
 * next kernel run would): takes the stale lock over and releases it, which
 * writes the saved settings in the kernel's order (run=2 first). Returns what
 * was pending; throws if the lock is held by a live run or a write fails.
 */
export async function restoreStaleSettings(lockPath: string = DEFAULT_LOCK_PATH): Promise<LockState> {
  const before = lockState(lockPath);
  if (before.kind !== 'stale') return before;
  if (before.pending.length === 0) {
    // Nothing to put back: only the file goes (taking it over would write run=2 and unmerge the machine).
    takeOverStale(lockPath, readLock(lockPath));
    return before;
  }
  // force: other mergeable processes do not matter to putting settings back.
  const guard = await SysfsGuard.acquire({ lockPath, lockTimeoutMs: 0, force: true });
  guard.release();
  return before;
}
