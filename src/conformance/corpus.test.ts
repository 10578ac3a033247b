/**
 * The conformance corpus (conformance/*.yaml, see conformance/README.md): one
 * test per workload file, named after it, which
 * (a) parses the file;
 * (b) replays it on the simulator and requires every `expect`/`read` to hold
 *     and every compared counter after every step to equal the kernel's
 *     recording (`FILE.expected.json`, written by `ksmkit record`), with the
 *     differ of `ksmkit diff`; every difference is reported;
 * (c) where the kernel backend can run, replays it on the real kernel too and
 *     requires zero differences with the simulator and with the recording;
 *     elsewhere that part is skipped with the reason.
 * Plus: the corpus has at least 40 files, every file has a recording and
 * every recording a file, and the README's table lists every file.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { KernelBackend, kernelBackendAvailability } from '../backend/kernel/kernel-backend.ts';
import { mergeableProcesses } from '../backend/kernel/sysfs-guard.ts';
import { SimBackend } from '../backend/sim/sim-backend.ts';
import { kernelSkip, skipKernelTest } from '../testing/kernel-required.ts';
import {
  type CounterDifference,
  type CounterValue,
  diffOutcomes,
  formatDifference,
  formatFailureLine,
  formatWorkloadIssue,
  loadWorkload,
  type ReplayOutcome,
  runReplay,
  type Workload,
  WorkloadError,
} from '../workload/index.ts';
import {
  RECORDING_SUFFIX,
  type Recording,
  RecordingError,
  readRecording,
  workloadFileSha256,
  workloadPathOf,
} from './recording.ts';

const CORPUS_DIR = fileURLToPath(new URL('../../conformance/', import.meta.url));
const MIN_WORKLOADS = 40;

const entries = readdirSync(CORPUS_DIR).sort();
const workloadFiles = entries.filter((name) => name.endsWith('.yaml'));
const recordingFiles = entries.filter((name) => name.endsWith(RECORDING_SUFFIX));

const availability = kernelBackendAvailability();
const kernelPartSkip = kernelSkip(
  availability.ok ? undefined : `kernel part skipped: ${availability.reason}`,
);

/**
 * Other processes on the machine that are mergeable make the kernel backend
 * refuse (their pages would change every counter), and if one appears in the
 * middle of a run (other engineers' tests start such processes for a moment)
 * its pages get into that run's counters. So: wait until there is none, run,
 * and run again if one showed up meanwhile; but wait at most this long over
 * the whole test run, after which the kernel parts are skipped with the reason.
 */
const FOREIGN_MERGEABLE_WAIT_MS = 30_000;
const FOREIGN_MERGEABLE_POLL_MS = 20;
let foreignWaitLeftMs = FOREIGN_MERGEABLE_WAIT_MS;

/** The guard's refusal (sysfs-guard.ts SysfsGuard.acquire) when it finds such processes. */
const FOREIGN_MERGEABLE_REFUSAL = /^refusing to drive ksmd: other processes are already mergeable/;

/** The kernel backend's agents, and their fork children, carry our pid in their environment. */
function isOurAgent(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'latin1')
      .split('\0')
      .includes(`KSMKIT_PARENT_PID=${process.pid}`);
  } catch {
    return true; // Gone: it no longer matters whose it was.
  }
}

function foreignMergeable(): string[] {
  return mergeableProcesses()
    .filter((p) => !isOurAgent(p.pid))
    .map((p) => `pid ${p.pid} (${p.command})`);
}

/** Notes every foreign mergeable process seen while it runs. */
class ForeignWatch {
  readonly seen = new Set<string>();
  private readonly timer: NodeJS.Timeout;

  constructor() {
    this.timer = setInterval(() => this.look(), FOREIGN_MERGEABLE_POLL_MS);
  }

  private look(): void {
    for (const p of foreignMergeable()) this.seen.add(p);
  }

  stop(): void {
    clearInterval(this.timer);
    this.look();
  }
}

type KernelRun =
  | { readonly outcome: ReplayOutcome; readonly notes: readonly string[] }
  | { readonly skip: string };

/** Replays on the kernel with no other process's pages in sight, within the waiting budget. */
async function replayOnKernel(workload: Workload): Promise<KernelRun> {
  let others: string[] = [];
  const notes: string[] = [];
  for (;;) {
    others = foreignMergeable();
    if (others.length === 0) {
      const watch = new ForeignWatch();
      let outcome: ReplayOutcome | undefined;
      try {
        outcome = await runReplay(workload, new KernelBackend());
      } catch (e) {
        // One appeared between our look and the guard's: wait again.
        if (!(e instanceof Error && FOREIGN_MERGEABLE_REFUSAL.test(e.message))) throw e;
      } finally {
        watch.stop();
      }
      others = [...watch.seen];
      if (outcome !== undefined && others.length === 0) return { outcome, notes };
      if (outcome !== undefined) notes.push(`kernel run repeated: mergeable during it: ${others.join(', ')}`);
    }
    if (foreignWaitLeftMs <= 0) {
      return {
        skip: `kernel part skipped: other processes on this machine keep being mergeable: ${others.join(', ')}`,
      };
    }
    await sleep(250);
    foreignWaitLeftMs -= 250;
  }
}

const show = (value: CounterValue): string => (value === null ? 'absent' : String(value));

/** A difference between the kernel's recording and the kernel now. */
function formatRecordingDifference(d: CounterDifference): string {
  return `step ${d.step}: ${d.counter}: recorded ${show(d.sim)}, kernel now ${show(d.kernel)}`;
}

function failureLines(label: string, outcome: ReplayOutcome): string[] {
  return outcome.results.flatMap((r) =>
    (r.failures ?? []).map((f) => `${label}: ${formatFailureLine(f).trim()}`),
  );
}

function assertNoProblems(file: string, problems: readonly string[]): void {
  if (problems.length > 0) assert.fail(`${file}:\n  ${problems.join('\n  ')}`);
}

async function load(path: string): Promise<Workload> {
  try {
    return await loadWorkload(path);
  } catch (e) {
    if (e instanceof WorkloadError) assert.fail(e.issues.map(formatWorkloadIssue).join('\n'));
    throw e;
  }
}

test(`the corpus has at least ${MIN_WORKLOADS} workload files`, () => {
  assert.ok(
    workloadFiles.length >= MIN_WORKLOADS,
    `${CORPUS_DIR} holds ${workloadFiles.length} *.yaml files; at least ${MIN_WORKLOADS} expected`,
  );
});

test('every workload file has a recording and every recording a workload file', () => {
  const problems: string[] = [];
  for (const file of workloadFiles) {
    if (!entries.includes(`${file}${RECORDING_SUFFIX}`))
      problems.push(`${file}: no ${file}${RECORDING_SUFFIX}: run \`ksmkit record conformance/${file}\``);
  }
  for (const recording of recordingFiles) {
    const workload = workloadPathOf(recording);
    if (workload === undefined || !workloadFiles.includes(workload))
      problems.push(`${recording}: no workload file ${workload ?? '?'} (a .yaml file of the corpus)`);
  }
  assertNoProblems('conformance/', problems);
});

test('the README table lists every workload file', () => {
  const readme = readFileSync(join(CORPUS_DIR, 'README.md'), 'utf8');
  const missing = workloadFiles.filter((file) => !readme.includes(`| \`${file}\` |`));
  assertNoProblems(
    'conformance/README.md',
    missing.map((file) => `no table row for ${file}`),
  );
});

for (const file of workloadFiles) {
  test(file, async (t) => {
    const path = join(CORPUS_DIR, file);
    const workload = await load(path);
    const sim = await runReplay(workload, new SimBackend());
    let recording: Recording | undefined;

    await t.test('sim: every expect holds and every counter equals the recording', async () => {
      const problems = failureLines('sim', sim);
      try {
        recording = await readRecording(path);
      } catch (e) {
        if (!(e instanceof RecordingError)) throw e;
        problems.push(e.message);
      }
      if (recording !== undefined) {
        if (recording.workloadSha256 !== (await workloadFileSha256(path))) {
          problems.push(
            `the recording of ${recording.recordedAt} is stale (the file changed since): re-record with \`ksmkit record conformance/${file}\``,
          );
        }
        problems.push(...failureLines('recording (kernel)', recording.outcome));
        for (const d of diffOutcomes(sim, recording.outcome).differences)
          problems.push(`sim vs recording: ${formatDifference(d, { compared: true })}`);
      }
      assertNoProblems(file, problems);
    });

    await t.test(
      'kernel: the same counters as the sim and the recording',
      { skip: kernelPartSkip },
      async (tk) => {
        const run = await replayOnKernel(workload);
        if ('skip' in run) {
          skipKernelTest(tk, run.skip);
          return;
        }
        for (const note of run.notes) tk.diagnostic(note);
        const kernel = run.outcome;
        const problems = failureLines('kernel', kernel);
        for (const d of diffOutcomes(sim, kernel).differences)
          problems.push(`sim vs kernel: ${formatDifference(d, { compared: true })}`);
        if (recording !== undefined) {
          for (const d of diffOutcomes(recording.outcome, kernel).differences)
            problems.push(`recording vs kernel: ${formatRecordingDifference(d)}`);
        }
        assertNoProblems(file, problems);
      },
    );
  });
}
