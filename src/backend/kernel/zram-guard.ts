/**
 * The one owner of a zram device (/dev/zram0) while ksmkit writes pages to it
 * to check its compression figures against the kernel's.
 *
 * `ZramGuard.acquire()` takes the machine-wide lock /tmp/ksmkit-zram.lock
 * (the same discipline as SysfsGuard: exclusive create, wait for a live
 * holder, take over a dead one's and restore what it saved), refuses a
 * device that is in use (initialised: a swap device, a file system), and
 * saves its algorithm. `release()` resets the device (disksize 0, every
 * stored page freed) and writes the algorithm back, on every exit path:
 * close, a thrown error, SIGINT/SIGTERM/SIGHUP, process exit.
 */
import { closeSync, fsyncSync, openSync, readFileSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import {
  type ExitRestorer,
  forgetOnExit,
  giveBackLock,
  ownLock,
  restoreOnExit,
  takeLock,
  writeLock,
} from './sysfs-guard.ts';

export const DEFAULT_ZRAM_LOCK_PATH = '/tmp/ksmkit-zram.lock';

export interface ZramGuardOptions {
  /** Default zram0. */
  readonly device?: string;
  readonly lockPath?: string;
  /** How long to wait for another live holder; default 120 s. */
  readonly lockTimeoutMs?: number;
}

/** The counters of mm_stat, in the kernel's order (Documentation/admin-guide/blockdev/zram.rst). */
export const MM_STAT_FIELDS = [
  'orig_data_size',
  'compr_data_size',
  'mem_used_total',
  'mem_limit',
  'mem_used_max',
  'same_pages',
  'pages_compacted',
  'huge_pages',
  'huge_pages_since',
] as const;
export type KernelMmStat = Record<(typeof MM_STAT_FIELDS)[number], number>;

/** The word in brackets of a list like "[lzo-rle] lzo lz4". */
function selected(text: string): string {
  const m = /\[([^\]]+)\]/.exec(text);
  if (m === null) throw new Error(`no selected algorithm in ${JSON.stringify(text.trim())}`);
  return m[1]!;
}

/** The algorithms /sys/block/DEVICE/comp_algorithm lists (throws where there is no such device). */
export function offeredAlgorithms(device = 'zram0'): string[] {
  return readFileSync(`/sys/block/${device}/comp_algorithm`, 'utf8')
    .replace(/[[\]]/g, '')
    .trim()
    .split(/\s+/);
}

export class ZramGuard implements ExitRestorer {
  private released = false;
  private readonly dir: string;

  private constructor(
    readonly device: string,
    readonly lockPath: string,
    /** The algorithm to put back. */
    readonly savedAlgorithm: string,
  ) {
    this.dir = `/sys/block/${device}`;
  }

  static async acquire(options: ZramGuardOptions = {}): Promise<ZramGuard> {
    const device = options.device ?? 'zram0';
    const lockPath = options.lockPath ?? DEFAULT_ZRAM_LOCK_PATH;
    const adopted = await takeLock(lockPath, options.lockTimeoutMs ?? 120_000);
    const dir = `/sys/block/${device}`;
    let saved: string;
    try {
      // A holder that died left the device set up: its reset and algorithm come first.
      if (adopted?.saved?.[device] !== undefined) {
        writeFileSync(`${dir}/reset`, '1');
        writeFileSync(`${dir}/comp_algorithm`, adopted.saved[device]);
      }
      if (readFileSync(`${dir}/initstate`, 'utf8').trim() !== '0')
        throw new Error(
          `/dev/${device} is in use (initstate 1: a swap device or a file system?); leaving it alone`,
        );
      saved = selected(readFileSync(`${dir}/comp_algorithm`, 'utf8'));
    } catch (e) {
      giveBackLock(lockPath, adopted);
      throw e;
    }
    const guard = new ZramGuard(device, lockPath, saved);
    writeLock(lockPath, { ...ownLock(), saved: { [device]: saved } });
    restoreOnExit(guard);
    return guard;
  }

  /** The algorithms this kernel's zram offers, in its own order. */
  algorithms(): string[] {
    return offeredAlgorithms(this.device);
  }

  /**
   * Sets the device up afresh with `algorithm` and `disksizeBytes`, writes
   * `pages` (whole pages) from its start, and returns mm_stat once the
   * writes have reached zram (fsync).
   */
  writePages(algorithm: string, pages: Uint8Array, disksizeBytes: number): KernelMmStat {
    if (this.released) throw new Error('ZramGuard: released');
    writeFileSync(`${this.dir}/reset`, '1');
    writeFileSync(`${this.dir}/comp_algorithm`, algorithm);
    writeFileSync(`${this.dir}/disksize`, String(disksizeBytes));
    const fd = openSync(`/dev/${this.device}`, 'w');
    try {
      for (let done = 0; done < pages.length; )
        done += writeSync(fd, pages, done, Math.min(pages.length - done, 1 << 20), done);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return this.mmStat();
  }

  mmStat(): KernelMmStat {
    const values = readFileSync(`${this.dir}/mm_stat`, 'utf8').trim().split(/\s+/).map(Number);
    const stat = {} as KernelMmStat;
    MM_STAT_FIELDS.forEach((name, i) => {
      stat[name] = values[i]!;
    });
    return stat;
  }

  /** Resets the device, writes the algorithm back, drops the lock; safe to call twice. */
  release(): void {
    if (this.released) return;
    this.released = true;
    forgetOnExit(this);
    try {
      writeFileSync(`${this.dir}/reset`, '1');
      writeFileSync(`${this.dir}/comp_algorithm`, this.savedAlgorithm);
    } finally {
      try {
        unlinkSync(this.lockPath);
      } catch {
        // Already gone.
      }
    }
  }

  releaseQuietly(when: string): void {
    try {
      this.release();
    } catch (e) {
      try {
        writeSync(2, `ksmkit: ${when}: /dev/${this.device}: ${(e as Error).message}\n`);
      } catch {
        // stderr is gone too.
      }
    }
  }

  [Symbol.dispose](): void {
    this.release();
  }
}
