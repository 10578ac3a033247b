/** Test helpers: real processes with known memory, started and ended by the tests that use them. */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { listKsmFiles, readKsmNumber, writeKsm } from '../../backend/kernel/ksm-sysfs.ts';
import { writeSettingsInOrder } from '../../backend/kernel/sysfs-guard.ts';

/** python3's path, or undefined when there is none. */
export function python3(): string | undefined {
  const r = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

export interface Started {
  readonly child: ChildProcess;
  /** Every pid that reported ready (a forking script reports several). */
  readonly pids: number[];
}

/**
 * Runs `argv` (a python3 script that prints `ready PID` once per process, then
 * sleeps) and waits until `expected` lines came, or fails after `timeoutMs`.
 */
export async function startReady(
  argv: readonly string[],
  expected = 1,
  timeoutMs = 60_000,
): Promise<Started> {
  // Its own process group: a failed start kills fork children too, which would otherwise keep our pipe open.
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const pids: number[] = [];
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      killGroup(child);
      reject(
        new Error(
          `not ready after ${timeoutMs} ms (stdout ${JSON.stringify(out)}, pid ${child.pid}): ${err}`,
        ),
      );
    }, timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code ?? signal}) before it was ready: ${err}`));
    });
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      for (const m of out.matchAll(/^ready (\d+)$/gm)) {
        const pid = Number(m[1]);
        if (!pids.includes(pid)) pids.push(pid);
      }
      if (pids.length >= expected) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve();
      }
    });
  });
  return { child, pids };
}

function killGroup(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  } catch {
    // The group is gone.
  }
  child.stdout?.destroy();
  child.stderr?.destroy();
}

/** SIGKILL to every pid, at once and synchronously (a SysfsGuard's onBeforeRestore runs on signal and exit paths). */
export function killNow(started: readonly Started[]): void {
  for (const s of started)
    for (const pid of s.pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
}

/** Kills every pid and the process groups (SIGKILL) and waits for the direct children to be gone. */
export async function stopAll(started: readonly Started[]): Promise<void> {
  for (const s of started) {
    killGroup(s.child);
    for (const pid of s.pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    if (s.child.exitCode === null && s.child.signalCode === null) {
      await new Promise<void>((resolve) => {
        s.child.once('exit', () => resolve());
        s.child.kill('SIGKILL');
      });
    }
  }
}

/**
 * A python3 program: `shared` MiB of pseudo-random bytes from a fixed seed
 * (the same in every copy), `pattern` MiB of one repeated page content,
 * `zeroes` MiB of touched zero-filled pages, `unique` MiB of os.urandom, and
 * `zeroMapped` MiB of a private anonymous mapping read (the shared zero page)
 * but for its first page; then `ready PID` and sleep. With `fork`, the process forks after
 * building its data and both report.
 */
export function pythonWorkload(o: {
  shared?: number;
  pattern?: number;
  zeroes?: number;
  unique?: number;
  zeroMapped?: number;
  sharedMapping?: number;
  fork?: boolean;
}): string {
  return `
import ctypes, mmap, os, random, sys, time
def die_with_parent():
    try:
        ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL: no sleeper outlives its test
    except Exception:
        pass
die_with_parent()
MiB = 1 << 20
random.seed(12345)
shared = random.randbytes(${o.shared ?? 0} * MiB)
pattern = bytes(range(256)) * (${o.pattern ?? 0} * MiB // 256)
zeroes = bytearray(${o.zeroes ?? 0} * MiB)
for i in range(0, len(zeroes), 4096):
    zeroes[i] = 0
unique = os.urandom(${o.unique ?? 0} * MiB)
zero_mapped = None
if ${o.zeroMapped ?? 0}:
    zero_mapped = mmap.mmap(-1, ${o.zeroMapped ?? 0} * MiB, flags=mmap.MAP_PRIVATE)
    for i in range(0, len(zero_mapped), 4096):
        zero_mapped[i]
    # One written page gives the mapping an anon_vma: ksmd looks at it (and skips its zero-page PTEs).
    zero_mapped[0] = 1
shared_mapping = None
if ${o.sharedMapping ?? 0}:
    shared_mapping = mmap.mmap(-1, ${o.sharedMapping ?? 0} * MiB)
    shared_mapping.write(b'x' * len(shared_mapping))
if ${o.fork === true ? 'True' : 'False'}:
    if os.fork() == 0:
        die_with_parent()
# One write(2) per line: the lines of a parent and its fork child must not interleave.
os.write(1, f'ready {os.getpid()}\\n'.encode())
time.sleep(3600)
`;
}

export const KSMD_PAGES_TO_SCAN = 5000;
export const KSMD_SLEEP_MS = 20;

/**
 * ksmd's settings for a test against estimate (the caller holds a SysfsGuard):
 * run=2 first (a clean slate: nothing merged, full_scans 0), then these,
 * run=0 last.
 */
export function prepareKsmd(c: { readonly maxPageSharing: number; readonly useZeroPages: boolean }): void {
  const files = new Set(listKsmFiles().map((f) => f.name));
  const settings = new Map(
    (
      [
        ['advisor_mode', 'none'],
        ['max_page_sharing', String(c.maxPageSharing)],
        ['merge_across_nodes', '1'],
        ['use_zero_pages', c.useZeroPages ? '1' : '0'],
        ['smart_scan', '1'],
        ['pages_to_scan', String(KSMD_PAGES_TO_SCAN)],
        ['sleep_millisecs', String(KSMD_SLEEP_MS)],
        ['run', '0'],
      ] as const
    ).filter(([name]) => files.has(name)),
  );
  assert.deepEqual(writeSettingsInOrder(settings), []);
}

export interface SettledKsmd {
  readonly kernel: {
    readonly pages_shared: number;
    readonly pages_sharing: number;
    readonly pages_unshared: number;
    readonly ksm_zero_pages: number;
    readonly stable_node_chains: number;
    readonly general_profit: number;
    readonly full_scans: number;
  };
  /** When pages_sharing first reached its final value. */
  readonly reached: { readonly ms: number; readonly scans: number; readonly sharing: number };
}

/** Starts ksmd and waits until pages_sharing stays the same (and above 0) for three full scans. */
export async function runKsmdUntilSettled(timeoutMs = 600_000): Promise<SettledKsmd> {
  const t0 = performance.now();
  assert.equal(writeKsm('run', '1').ok, true);
  const samples: Array<{ ms: number; scans: number; sharing: number }> = [];
  let lastScans = -1;
  const perScan: number[] = [];
  for (;;) {
    const scans = readKsmNumber('full_scans');
    const sharing = readKsmNumber('pages_sharing');
    samples.push({ ms: performance.now() - t0, scans, sharing });
    if (scans !== lastScans) {
      lastScans = scans;
      perScan.push(sharing);
      const last = perScan.slice(-4);
      if (scans >= 4 && last.length === 4 && last.every((v) => v === last[0]) && last[0]! > 0) break;
    }
    if (performance.now() - t0 > timeoutMs) assert.fail(`ksmd did not converge: ${JSON.stringify(perScan)}`);
    await sleep(20);
  }
  const kernel = {
    pages_shared: readKsmNumber('pages_shared'),
    pages_sharing: readKsmNumber('pages_sharing'),
    pages_unshared: readKsmNumber('pages_unshared'),
    ksm_zero_pages: readKsmNumber('ksm_zero_pages'),
    stable_node_chains: readKsmNumber('stable_node_chains'),
    general_profit: readKsmNumber('general_profit'),
    full_scans: readKsmNumber('full_scans'),
  };
  return { kernel, reached: samples.find((s) => s.sharing === kernel.pages_sharing)! };
}
