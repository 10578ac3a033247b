/**
 * `ksmkit fuzz [--count N] [--seed S] [--out DIR] [--backend-a sim]
 * [--backend-b kernel] [--force] [--log FILE]`: generated workloads for seeds
 * S..S+N-1 on two backends (default the engine and this machine's kernel),
 * compared after every step; the first difference is shrunk and saved as
 * DIR/seed-<S>.yaml. `--log` appends one JSON line per run (seed range, how
 * many ran equal, kernel version, result, duration), so that a claim about
 * fuzzing is backed by a stored result (conformance/fuzz-log.jsonl).
 *
 * Exit status: 0 no difference; 1 a difference (or a backend threw); 2 a
 * backend is unavailable or the run could not go on.
 */
import { appendFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Command, InvalidArgumentError } from '@commander-js/extra-typings';
import type { Backend } from '../backend/backend.ts';
import { type BackendPair, describeCheck, type FuzzEvent, fuzz, type SideLabels } from '../fuzz/index.ts';
import { EXIT_INVALID } from '../workload/index.ts';
import { type BackendName, type Output, openBackend } from './replay.ts';

export interface FuzzCommandOptions {
  /** Workloads to run (seeds `seed` .. `seed + count - 1`). */
  readonly count: number;
  readonly seed: number;
  /** Directory of the saved finding. */
  readonly out: string;
  readonly backendA: BackendName;
  readonly backendB: BackendName;
  /** Passed to the kernel backend: run even if other processes of the machine are mergeable. */
  readonly force: boolean;
  /** A progress line every this many workloads (default 50). */
  readonly progressEvery?: number;
  /** Appends the run's record (`FuzzLogRecord`) as one JSON line. */
  readonly log?: string;
}

/** One line of the fuzz log. */
export interface FuzzLogRecord {
  /** When the run ended, ISO 8601 UTC. */
  readonly date: string;
  readonly firstSeed: number;
  readonly count: number;
  readonly backends: readonly [BackendName, BackendName];
  /** `uname -r` of the machine (the kernel backend's kernel). */
  readonly kernel: string;
  /** Workloads run; those before `differingSeed` were all equal. */
  readonly ran: number;
  readonly consecutiveEqual: number;
  /** `interrupted`: stopped by a signal; `ran` workloads were equal. */
  readonly result: 'equal' | 'difference' | 'error' | 'interrupted';
  readonly differingSeed?: number;
  /** The first lines of what differed, or the error. */
  readonly detail?: readonly string[];
  readonly savedFile?: string;
  readonly durationS: number;
}

export const FUZZ_DEFAULTS = {
  count: 100,
  seed: 1,
  out: join('conformance', 'found'),
  backendA: 'sim',
  backendB: 'kernel',
} as const satisfies Partial<FuzzCommandOptions>;

const EXIT_DIFFERENCE = 1;

/** The kernel backend refused to start because of the machine, not the workload: another run holds the lock, or other processes are mergeable. */
const TRANSIENT_KERNEL_ERROR =
  /another ksmkit run holds|refusing to drive ksmd: other processes are already mergeable/;
/** Differences printed per report (a difference early in a workload usually shows at every later step). */
const MAX_LINES_SHOWN = 12;

function labelsOf(options: FuzzCommandOptions): SideLabels {
  if (options.backendA !== options.backendB) return { sim: options.backendA, kernel: options.backendB };
  return { sim: `${options.backendA}-a`, kernel: `${options.backendB}-b` };
}

function* seedRange(first: number, count: number): Generator<number> {
  for (let i = 0; i < count; i++) yield first + i;
}

export async function fuzzCommand(options: FuzzCommandOptions, io: Output): Promise<number> {
  // Both backends are opened once up front, so that an unavailable one stops the run before it starts.
  for (const name of [options.backendA, options.backendB]) {
    const probe = await openBackend(name, options);
    if (typeof probe === 'string') {
      io.err(`ksmkit fuzz: ${probe}`);
      return EXIT_INVALID;
    }
  }
  // A sim backend is reused (its `start` builds a fresh host); a kernel backend is opened per replay.
  const reusable = new Map<'a' | 'b', Backend>();
  const backend = async (side: 'a' | 'b', name: BackendName): Promise<Backend> => {
    const kept = reusable.get(side);
    if (kept !== undefined) return kept;
    const opened = await openBackend(name, options);
    if (typeof opened === 'string') throw new Error(opened);
    if (name === 'sim') reusable.set(side, opened);
    return opened;
  };
  const makeBackends = async (): Promise<BackendPair> => ({
    sim: await backend('a', options.backendA),
    kernel: await backend('b', options.backendB),
  });
  const labels = labelsOf(options);
  const printLimited = (lines: readonly string[]): void => {
    for (const line of lines.slice(0, MAX_LINES_SHOWN)) io.out(`  ${line}`);
    if (lines.length > MAX_LINES_SHOWN) io.out(`  ... and ${lines.length - MAX_LINES_SHOWN} more`);
  };
  const progressEvery = options.progressEvery ?? 50;
  const onProgress = (event: FuzzEvent): void => {
    switch (event.kind) {
      case 'workload':
        if (event.ran % progressEvery === 0) {
          const perSecond = event.ran / Math.max(event.elapsedMs / 1000, 1e-3);
          io.out(`fuzz: ${event.ran} workloads (up to seed ${event.seed}), ${perSecond.toFixed(1)}/s`);
        }
        break;
      case 'finding':
        io.out(`fuzz: seed ${event.seed}: ${labels.sim} and ${labels.kernel} differ`);
        printLimited(describeCheck(event.check, labels));
        io.out('fuzz: shrinking');
        break;
      case 'shrinking':
        if (event.attempts % 25 === 0) {
          io.out(
            `fuzz: shrinking: ${event.attempts} attempts, now ${event.steps} steps, ${event.processes} processes, ${event.pages} pages`,
          );
        }
        break;
      case 'saved':
        break;
      case 'retry':
        io.out(`fuzz: seed ${event.seed}: retry ${event.attempt} in 10 s: ${event.message.slice(0, 160)}`);
        break;
    }
  };

  const startedMs = Date.now();
  let ran = 0;
  let logged = false;
  /** One log line, written synchronously: an interrupted run is logged from the exit path, where no promise runs. */
  const writeLog = (
    record: Omit<FuzzLogRecord, 'date' | 'firstSeed' | 'count' | 'backends' | 'kernel' | 'durationS'>,
  ): void => {
    if (logged || options.log === undefined) return;
    logged = true;
    const full: FuzzLogRecord = {
      date: new Date().toISOString(),
      firstSeed: options.seed,
      count: options.count,
      backends: [options.backendA, options.backendB],
      kernel: release(),
      ...record,
      durationS: Math.round((Date.now() - startedMs) / 100) / 10,
    };
    appendFileSync(options.log, `${JSON.stringify(full)}\n`);
  };
  const logInterrupted = (): void => writeLog({ ran, consecutiveEqual: ran, result: 'interrupted' });
  const onSignal = (): void => {
    logInterrupted();
    process.exit(130);
  };
  process.on('exit', logInterrupted);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let summary: Awaited<ReturnType<typeof fuzz>>;
  try {
    summary = await fuzz({
      seeds: seedRange(options.seed, options.count),
      makeBackends,
      onProgress: (event) => {
        if (event.kind === 'workload') ran = event.ran;
        onProgress(event);
      },
      labels,
      outFile: (seed) => join(options.out, `seed-${seed}.yaml`),
      transient: {
        isTransient: (error) => error.side !== 'sim' && TRANSIENT_KERNEL_ERROR.test(error.message),
        retryDelayMs: 10_000,
        maxRetries: 60,
        sleep: (ms) => sleep(ms),
      },
    });
  } catch (error) {
    io.err(`ksmkit fuzz: ${(error as Error).message}`);
    writeLog({ ran, consecutiveEqual: ran, result: 'error', detail: [(error as Error).message] });
    return EXIT_INVALID;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const finding = summary.finding;
  if (finding === undefined) {
    io.out(`fuzz: ${summary.ran} workloads, no difference`);
    writeLog({ ran: summary.ran, consecutiveEqual: summary.ran, result: 'equal' });
    return 0;
  }
  writeLog({
    ran: summary.ran,
    consecutiveEqual: summary.ran - 1,
    result: finding.check.error === undefined ? 'difference' : 'error',
    differingSeed: finding.seed,
    detail: describeCheck(finding.check, labels).slice(0, MAX_LINES_SHOWN),
    ...(finding.file === undefined ? {} : { savedFile: finding.file }),
  });
  const shrink = finding.shrink;
  if (shrink !== undefined) {
    io.out(
      `fuzz: seed ${finding.seed}: shrunk from ${finding.workload.steps.length} to ${finding.shrunk.steps.length} steps, ` +
        `${finding.shrunk.processes.length} processes (${shrink.attempts} attempts, ${(shrink.elapsedMs / 1000).toFixed(1)} s)`,
    );
    printLimited(describeCheck(finding.shrunkCheck, labels));
  }
  if (!finding.reproduced) {
    io.out(
      'fuzz: warning: run once more, the saved workload did not give the same finding (a flaky backend?)',
    );
  }
  io.out(
    `fuzz: ${summary.ran} workloads, a difference at seed ${finding.seed}; saved ${finding.file ?? '(not saved)'}`,
  );
  return EXIT_DIFFERENCE;
}

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError('must be an integer');
  return n;
}

function positiveInteger(value: string): number {
  const n = integer(value);
  if (n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function backendName(value: string): BackendName {
  if (value !== 'sim' && value !== 'kernel') throw new InvalidArgumentError("must be 'sim' or 'kernel'");
  return value;
}

/** Adds `ksmkit fuzz` to the program; the action sets `process.exitCode`. */
export function registerFuzz(program: Command, io?: Output): void {
  const output: Output = io ?? { out: (line) => console.log(line), err: (line) => console.error(line) };
  program
    .command('fuzz')
    .description(
      'run generated workloads on two backends (default: the engine and the kernel); shrink and save the first difference',
    )
    .option('--count <n>', 'number of workloads', positiveInteger, FUZZ_DEFAULTS.count)
    .option('--seed <s>', 'first seed (workload i uses seed S+i)', integer, FUZZ_DEFAULTS.seed)
    .option('--out <dir>', 'directory for the shrunk workload of a difference', FUZZ_DEFAULTS.out)
    .option('--backend-a <name>', 'sim or kernel', backendName, FUZZ_DEFAULTS.backendA as BackendName)
    .option('--backend-b <name>', 'sim or kernel', backendName, FUZZ_DEFAULTS.backendB as BackendName)
    .option('--force', 'run the kernel backend even if other processes on this machine are mergeable', false)
    .option('--log <file>', 'append a JSON line with the run (seeds, result, kernel, duration) to FILE')
    .action(async (opts) => {
      process.exitCode = await fuzzCommand(opts, output);
    });
}
