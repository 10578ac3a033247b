/**
 * The estimate against the real kernel: four copies of one python3 program
 * (the same 48 MiB of seeded random data, 8 MiB of one repeated page, 8 MiB of
 * zero-filled pages, 8 MiB of unique data, and the interpreter's own memory)
 * run under `ksmkit exec`'s helper (PR_SET_MEMORY_MERGE), are estimated, and
 * then the machine's ksmd merges them until pages_sharing holds still for
 * three full scans. pages_shared, pages_sharing, ksm_zero_pages,
 * general_profit and every process's ksm_merging_pages must equal the
 * estimate's, as the README says: no tolerance. KSM settings go through SysfsGuard (one run per machine,
 * restored on every exit path); the processes are killed before the restore.
 */
import assert from 'node:assert/strict';
import { accessSync, existsSync, constants as fsConstants } from 'node:fs';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readKsm } from '../../backend/kernel/ksm-sysfs.ts';
import { mergeableProcesses, SysfsGuard } from '../../backend/kernel/sysfs-guard.ts';
import { kernelSkip } from '../../testing/kernel-required.ts';
import { runEstimate } from './estimate.ts';
import { readKsmStat } from './proc-source.ts';
import { renderHuman } from './report.ts';
import {
  killNow,
  prepareKsmd,
  python3,
  pythonWorkload,
  runKsmdUntilSettled,
  type Started,
  startReady,
} from './testing.ts';

const HELPERS = ['../../../native/build/ksmkit-exec', '../../../native/build/ksm-exec'].map((p) =>
  fileURLToPath(new URL(p, import.meta.url)),
);
const helper = HELPERS.find((p) => existsSync(p));
const python = process.platform === 'linux' ? python3() : undefined;

function availability(): string | false {
  if (process.platform !== 'linux') return `needs Linux, not ${process.platform}`;
  if (process.getuid?.() !== 0) return 'needs root (writes /sys/kernel/mm/ksm)';
  if (!existsSync('/sys/kernel/mm/ksm/run')) return 'no /sys/kernel/mm/ksm: kernel without KSM';
  try {
    accessSync('/sys/kernel/mm/ksm/run', fsConstants.W_OK);
  } catch {
    return '/sys/kernel/mm/ksm/run is not writable';
  }
  if (helper === undefined) return 'native/build/ksmkit-exec is not built (node scripts/build-agent.mjs)';
  if (python === undefined) return 'needs python3';
  return false;
}

const COPIES = 4;

interface Case {
  readonly maxPageSharing: number;
  readonly useZeroPages: boolean;
}

async function compareWithKernel(t: TestContext, c: Case): Promise<void> {
  const guard = await SysfsGuard.acquire({ lockTimeoutMs: 600_000 });
  const started: Started[] = [];
  const killAll = (): void => killNow(started);
  // Synchronous, so that it also runs on the guard's signal and exit paths.
  guard.onBeforeRestore(killAll);
  try {
    prepareKsmd(c);

    const script = pythonWorkload({ shared: 48, pattern: 8, zeroes: 8, unique: 8 });
    for (let i = 0; i < COPIES; i++) started.push(await startReady([helper!, python!, '-c', script]));
    const pids = started.flatMap((s) => s.pids);
    for (const pid of pids)
      assert.equal(readKsmStat(pid)?.mergeAny, true, `pid ${pid} has PR_SET_MEMORY_MERGE`);
    // Only our processes are mergeable: their pages are all ksmd will see.
    assert.deepEqual(mergeableProcesses(new Set(pids)), [], 'no other mergeable process on the machine');

    const estimate = await runEstimate({ pids });
    for (const s of estimate.sources) assert.ok(s.kind === 'process' && s.scan.mode === 'mergeable');
    for (const line of renderHuman(estimate).split('\n')) t.diagnostic(line);
    const expected = estimate.total.total;

    const { kernel, reached } = await runKsmdUntilSettled();
    const perProcess = pids.map((pid, i) => ({
      pid,
      estimated: estimate.sources[i]!.summary.inSet.ksm_merging_pages,
      kernel: readKsmStat(pid)?.mergingPages,
    }));
    const estimated = {
      pages_shared: expected.pages_shared,
      pages_sharing: expected.pages_sharing,
      ksm_zero_pages: expected.ksm_zero_pages,
      general_profit: expected.general_profit,
      ksm_merging_pages: perProcess.map((p) => p.estimated),
    };
    const measured = {
      pages_shared: kernel.pages_shared,
      pages_sharing: kernel.pages_sharing,
      ksm_zero_pages: kernel.ksm_zero_pages,
      general_profit: kernel.general_profit,
      ksm_merging_pages: perProcess.map((p) => p.kernel),
    };
    t.diagnostic(
      JSON.stringify({
        estimate: { ...estimated, seconds_to_converge: estimate.time.convergeSeconds },
        kernel: {
          ...measured,
          pages_unshared: kernel.pages_unshared,
          stable_node_chains: kernel.stable_node_chains,
          full_scans: kernel.full_scans,
          seconds_to_final_pages_sharing: reached.ms / 1000,
          at_full_scans: reached.scans,
        },
        pids,
        settings: `pages_to_scan ${readKsm('pages_to_scan')}, sleep_millisecs ${readKsm('sleep_millisecs')}`,
      }),
    );
    // Every field at once, so that a failure shows all that differ.
    assert.deepEqual(measured, estimated, 'the kernel (actual) against the estimate (expected)');
    if (c.useZeroPages) assert.ok(expected.ksm_zero_pages > 0, 'the zero-filled pages became KSM zero pages');
    else assert.equal(kernel.ksm_zero_pages, 0);
  } finally {
    killAll();
    for (const s of started) {
      if (s.child.exitCode === null && s.child.signalCode === null)
        await new Promise<void>((resolve) => s.child.once('exit', () => resolve()));
    }
    guard.release();
  }
  assert.equal(readKsm('run'), guard.saved.get('run'));
}

const skip = kernelSkip(availability());

test(
  'the estimate equals what ksmd reaches (pages_shared, pages_sharing, general_profit, each process): max_page_sharing 256, use_zero_pages 0',
  { skip, timeout: 900_000 },
  (t) => compareWithKernel(t, { maxPageSharing: 256, useZeroPages: false }),
);

test(
  'the same with chains and KSM zero pages: max_page_sharing 16, use_zero_pages 1',
  { skip, timeout: 900_000 },
  (t) => compareWithKernel(t, { maxPageSharing: 16, useZeroPages: true }),
);
