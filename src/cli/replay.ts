/**
 * `ksmkit replay FILE --backend sim|kernel [--json]` and `ksmkit diff FILE...`
 * (workload-format.md): one workload on one backend, or on both, compared.
 */
import type { Backend } from '../backend/backend.ts';
import { SimBackend } from '../backend/sim/sim-backend.ts';
import {
  diffOutcomes,
  EXIT_INVALID,
  formatDifference,
  formatFailureLine,
  formatJsonLine,
  formatStartLine,
  formatStepLine,
  formatWorkloadIssue,
  loadWorkload,
  type ReplayOutcome,
  runReplay,
  type Workload,
  WorkloadError,
} from '../workload/index.ts';

export type BackendName = 'sim' | 'kernel';

export interface Output {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
}

/** Loads a workload, or prints every problem (file:line:col: path: message) and returns null. */
export async function loadOrReport(file: string, io: Output): Promise<Workload | null> {
  try {
    return await loadWorkload(file);
  } catch (e) {
    if (e instanceof WorkloadError) {
      for (const issue of e.issues) io.err(formatWorkloadIssue(issue));
      return null;
    }
    throw e;
  }
}

/** The backend by name, or a one-line reason it cannot run here. */
export async function openBackend(name: BackendName, options: { force: boolean }): Promise<Backend | string> {
  if (name === 'sim') return new SimBackend();
  const kernel = await import('../backend/kernel/kernel-backend.ts');
  const availability = kernel.kernelBackendAvailability();
  if (!availability.ok) return `kernel backend unavailable: ${availability.reason}`;
  return new kernel.KernelBackend({ force: options.force });
}

async function replayOn(
  workload: Workload,
  backend: Backend,
  json: boolean,
  io: Output,
): Promise<ReplayOutcome> {
  return runReplay(workload, backend, {
    onStart: (start) => io.out(json ? formatJsonLine(start) : formatStartLine(start)),
  });
}

export async function replayCommand(
  file: string,
  options: { backend: BackendName; json: boolean; force: boolean },
  io: Output,
): Promise<number> {
  const workload = await loadOrReport(file, io);
  if (workload === null) return EXIT_INVALID;
  const backend = await openBackend(options.backend, options);
  if (typeof backend === 'string') {
    io.err(`ksmkit replay: ${backend}`);
    return EXIT_INVALID;
  }
  let outcome: ReplayOutcome;
  try {
    outcome = await replayOn(workload, backend, options.json, io);
  } catch (e) {
    io.err(`ksmkit replay: ${file}: ${(e as Error).message}`);
    return EXIT_INVALID;
  }
  for (const result of outcome.results) {
    if (options.json) io.out(formatJsonLine(result));
    else {
      io.out(formatStepLine(result));
      for (const failure of result.failures ?? []) io.out(formatFailureLine(failure));
    }
  }
  return outcome.exitStatus;
}

/**
 * Runs each file on the simulator and on the kernel and prints every counter
 * that differs after every step. Exit 0: no difference and every expect/read
 * held on both; 1: a difference or a failed check; 2: invalid file or no kernel backend.
 */
export async function diffCommand(
  files: readonly string[],
  options: { force: boolean },
  io: Output,
): Promise<number> {
  let status = 0;
  for (const file of files) {
    const workload = await loadOrReport(file, io);
    if (workload === null) return EXIT_INVALID;
    const kernel = await openBackend('kernel', options);
    if (typeof kernel === 'string') {
      io.err(`ksmkit diff: ${kernel}`);
      return EXIT_INVALID;
    }
    let sim: ReplayOutcome;
    let real: ReplayOutcome;
    try {
      sim = await runReplay(workload, new SimBackend());
      real = await runReplay(workload, kernel);
    } catch (e) {
      io.err(`ksmkit diff: ${file}: ${(e as Error).message}`);
      return EXIT_INVALID;
    }
    const diff = diffOutcomes(sim, real);
    const compared = sim.results.length * (Object.keys(sim.start.settings).length + 1);
    for (const d of diff.differences) io.out(`${file}: ${formatDifference(d, { compared: true })}`);
    for (const d of diff.uncompared) io.out(`${file}: ${formatDifference(d, { compared: false })}`);
    const failed = sim.exitStatus !== 0 || real.exitStatus !== 0;
    if (diff.differences.length === 0) {
      io.out(
        `${file}: no difference in ${sim.results.length} steps (sim and kernel ${failed ? 'disagree with an expect' : 'agree'})`,
      );
    } else {
      io.out(`${file}: ${diff.differences.length} differences`);
    }
    if (failed) {
      for (const [name, o] of [['sim', sim] as const, ['kernel', real] as const]) {
        for (const r of o.results)
          for (const f of r.failures ?? []) io.out(`${file}: ${name}: ${formatFailureLine(f).trim()}`);
      }
    }
    if (diff.differences.length > 0 || failed) status = 1;
    void compared;
  }
  return status;
}
