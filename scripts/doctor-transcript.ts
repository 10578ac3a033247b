/**
 * The README's `ksmkit doctor` transcript: a host set up with several causes
 * at once, under the machine-wide KSM lock (the kernel backend's agents), the
 * CLI run on it, every setting restored and every process ended afterwards.
 *
 *   npm run build && npx tsx scripts/doctor-transcript.ts
 *
 * The causes: ksmtuned running (it keeps run at 0 on an idle host), a guest
 * whose RAM is MAP_SHARED, a guest with a region never advised, two guests of
 * one image waiting for ksmd, a guest rewriting its pages, zero pages with
 * use_zero_pages 0, and an advised region of unique pages (its rmap items
 * cost more than it saves).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { RegionMapping } from '../src/backend/backend.ts';
import { onEveryExit } from '../src/backend/kernel/exit-hooks.ts';
import { type KernelBackend, withKernelBackend } from '../src/backend/kernel/kernel-backend.ts';
import { writeKsm } from '../src/backend/kernel/ksm-sysfs.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const BASE = 0x1000_0000_0000;

function region(name: string, index: number, pageCount: number, shared = false): RegionMapping {
  return { name, address: BASE + index * (1 << 30), pageCount, shared, thp: false };
}

async function guest(
  k: KernelBackend,
  name: string,
  regions: ReadonlyArray<{ r: RegionMapping; hi: number; loStep: number; advise: boolean }>,
): Promise<void> {
  const must = (what: string, r: { ok: boolean }): void => {
    if (!r.ok) throw new Error(`${name}: ${what} failed: ${JSON.stringify(r)}`);
  };
  must('spawn', await k.spawn(name, { memoryMerge: false }));
  for (const { r, hi, loStep, advise } of regions) {
    must(`mmap ${r.name}`, await k.mmap(name, r));
    must(
      `fill ${r.name}`,
      await k.fillValues(name, r.name, { pageIndex: 0, pageCount: r.pageCount }, { hi, lo: 0, loStep }),
    );
    if (advise) must(`madvise ${r.name}`, await k.madvise(name, r.name, 'mergeable'));
  }
}

let tuner: ChildProcess | undefined;
const stopTuner = (): void => {
  if (tuner?.pid !== undefined) {
    try {
      process.kill(-tuner.pid, 'SIGKILL');
    } catch {
      // Gone.
    }
  }
  tuner = undefined;
};
const cancelStopTuner = onEveryExit(stopTuner);

await withKernelBackend(async (k) => {
  const MiB = 256;
  await guest(k, 'vm-shared', [{ r: region('ram', 0, 32 * MiB, true), hi: 0x10, loStep: 1, advise: true }]);
  await guest(k, 'vm-partial', [
    { r: region('ram', 0, 16 * MiB), hi: 0x20, loStep: 1, advise: false },
    { r: region('cache', 1, 4 * MiB), hi: 0x21, loStep: 1, advise: true },
  ]);
  for (const name of ['vm-clone-1', 'vm-clone-2']) {
    await guest(k, name, [
      { r: region('ram', 0, 24 * MiB), hi: 0x30, loStep: 1, advise: true },
      { r: region('zeroed', 1, 8 * MiB), hi: 0, loStep: 0, advise: true },
    ]);
  }
  await guest(k, 'vm-busy', [{ r: region('ram', 0, 2 * MiB), hi: 0x40, loStep: 1, advise: true }]);
  let running = true;
  const writer = (async () => {
    for (let lo = 1; running; lo += 2 * MiB) {
      await k.fillValues('vm-busy', 'ram', { pageIndex: 0, pageCount: 2 * MiB }, { hi: 0x41, lo, loStep: 1 });
      await sleep(5);
    }
  })();
  try {
    if (existsSync('/usr/sbin/ksmtuned')) {
      tuner = spawn('/usr/sbin/ksmtuned', [], { detached: true, stdio: 'ignore' });
      await sleep(500);
    }
    // Linux's default pacing instead of the kernel backend's brake, as on a host left alone.
    writeKsm('pages_to_scan', '100');
    writeKsm('sleep_millisecs', '20');
    const argv = [`${root}dist/cli/main.js`, 'doctor', '--match', 'ksmkit-agent', '--rows', '4'];
    // Asynchronous, so that vm-busy goes on rewriting its pages while doctor reads them.
    const p = await promisify(execFile)(process.execPath, argv, {
      env: { ...process.env, NO_COLOR: '1' },
    }).then(
      (r) => ({ ...r, status: 0 }),
      (e: { stdout: string; stderr: string; code: number }) => ({
        stdout: e.stdout,
        stderr: e.stderr,
        status: e.code,
      }),
    );
    console.log(`# ksmkit doctor --match ksmkit-agent --rows 4`);
    process.stdout.write(p.stdout);
    if (p.stderr !== '') process.stdout.write(p.stderr);
    console.log(`# exit status ${p.status}`);
  } finally {
    cancelStopTuner();
    stopTuner();
    running = false;
    await writer;
  }
});
