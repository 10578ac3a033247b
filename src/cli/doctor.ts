/** `ksmkit doctor`: why memory is, or is not, merged; on this host or on a workload run on the engine. */
import { type Command, InvalidArgumentError, Option } from '@commander-js/extra-typings';
import pc from 'picocolors';
import { DEFAULT_MAX_PAGES, type DoctorReport, exitStatusOf, runDoctor } from '../tools/doctor/doctor.ts';
import { doctorWorkload, WorkloadDoctorError } from '../tools/doctor/engine.ts';
import { formatReport } from '../tools/doctor/format.ts';
import { toJson } from '../tools/doctor/json.ts';
import { type DoctorTarget, TargetError } from '../tools/doctor/targets.ts';

const EXIT_CANNOT_RUN = 2;

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 86_400) {
    throw new InvalidArgumentError('must be a number of seconds above 0, at most 86400');
  }
  return n;
}

function windowSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 600)
    throw new InvalidArgumentError('must be seconds from 0 to 600');
  return n;
}

function pidList(value: string, previous: number[] | undefined): number[] {
  const out = [...(previous ?? [])];
  for (const part of value.split(',')) {
    if (!/^\d+$/.test(part) || Number(part) < 1)
      throw new InvalidArgumentError(`"${part}" is not a pid (a positive integer)`);
    out.push(Number(part));
  }
  return out;
}

function regex(value: string): string {
  try {
    new RegExp(value);
  } catch (e) {
    throw new InvalidArgumentError(`not a regular expression: ${(e as Error).message}`);
  }
  return value;
}

function count(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number of pages');
  return n;
}

function rows(value: string): number {
  if (value === 'all') return Number.POSITIVE_INFINITY;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("must be a positive integer or 'all'");
  return n;
}

interface TargetOptions {
  readonly pid?: number[];
  readonly all?: boolean;
  readonly match?: string;
  readonly cgroup?: string;
  readonly unit?: string;
}

const NO_TARGET =
  'say what to look at: --pid PID, --all, --match REGEX, --cgroup PATH, --unit NAME, or a WORKLOAD file';
const ONE_TARGET = 'give one of --pid, --all, --match, --cgroup, --unit';

/** The one target asked for, or a usage error's text. */
export function targetOf(o: TargetOptions): DoctorTarget | string {
  const given: DoctorTarget[] = [];
  if (o.pid !== undefined) given.push({ kind: 'pids', pids: o.pid });
  if (o.all === true) given.push({ kind: 'all' });
  if (o.match !== undefined) given.push({ kind: 'match', pattern: o.match });
  if (o.cgroup !== undefined) given.push({ kind: 'cgroup', path: o.cgroup });
  if (o.unit !== undefined) given.push({ kind: 'unit', name: o.unit });
  if (given.length === 0) return NO_TARGET;
  if (given.length > 1) return ONE_TARGET;
  return given[0]!;
}

export interface DoctorCommandOptions extends TargetOptions {
  readonly json: boolean;
  readonly targetScan: number;
  /** Seconds. */
  readonly window: number;
  readonly pages: boolean;
  readonly maxPages: number;
  readonly rows: number;
}

export interface DoctorIo {
  /** Raw text to stdout. */
  readonly write: (text: string) => void;
  readonly err: (line: string) => void;
  readonly color: boolean;
}

/** `ksmkit doctor` without commander: the exit status (0 healthy, 1 findings, 2 cannot run). */
export async function doctorCommand(
  workload: string | undefined,
  opts: DoctorCommandOptions,
  io: DoctorIo,
): Promise<number> {
  const target = targetOf(opts);
  if (workload !== undefined && target !== NO_TARGET) {
    io.err(
      'ksmkit doctor: a WORKLOAD file is run on the engine: --pid/--all/--match/--cgroup/--unit do not go with it',
    );
    return EXIT_CANNOT_RUN;
  }
  if (workload === undefined && typeof target === 'string') {
    io.err(`ksmkit doctor: ${target}`);
    return EXIT_CANNOT_RUN;
  }
  let report: DoctorReport;
  try {
    report =
      workload !== undefined
        ? await doctorWorkload(workload, { targetScanSeconds: opts.targetScan })
        : await runDoctor({
            target: target as DoctorTarget,
            targetScanSeconds: opts.targetScan,
            windowMs: opts.window * 1000,
            pages: opts.pages,
            maxPages: opts.maxPages,
          });
  } catch (e) {
    if (e instanceof TargetError || e instanceof WorkloadDoctorError) {
      io.err(`ksmkit doctor: ${e.message}`);
      return EXIT_CANNOT_RUN;
    }
    throw e;
  }
  if (opts.json) io.write(`${JSON.stringify(toJson(report), null, 2)}\n`);
  else io.write(`${formatReport(report, { color: io.color, rowsPerVerdict: opts.rows }).join('\n')}\n`);
  return exitStatusOf(report);
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .summary('why is it not merging? verdicts with evidence and fixes')
    .description(
      'why memory is, or is not, merged: host checks (ksmd, pacing, tuners), per process and VMA ' +
        '(advice, shared, hugetlb, THP, metadata against gain) and per page (merged, twin waiting, ' +
        'volatile, unique, max_page_sharing), each with its evidence and the exact fix. With a ' +
        'WORKLOAD file: the same verdicts for a workload run on the engine.',
    )
    .argument(
      '[workload]',
      'a workload file (YAML or JSON) to run on the engine instead of looking at this host',
    )
    .option('--pid <pid>', 'a process to look at (repeat, or comma-separated)', pidList)
    .option('--all', 'every process of the host')
    .option('--match <regex>', 'processes whose command line matches', regex)
    .option('--cgroup <path>', 'the processes of a cgroup and its descendants (under /sys/fs/cgroup)')
    .option('--unit <name>', "a systemd unit's processes, and its MemoryKSM= setting")
    .option('--json', 'one JSON object (schema ksmkit-doctor/1: src/tools/doctor/json.ts)', false)
    .option('--target-scan <seconds>', 'the longest acceptable full scan', seconds, 180)
    .option(
      '--window <seconds>',
      'how long ksmd is watched and pages left to change between two reads',
      windowSeconds,
      1,
    )
    .option('--no-pages', 'skip the per page verdicts (they read every VM_MERGEABLE page twice)')
    .option(
      '--max-pages <n>',
      'skip the per page verdicts above this many VM_MERGEABLE pages',
      count,
      DEFAULT_MAX_PAGES,
    )
    .addOption(new Option('--rows <n>', "rows shown per verdict, or 'all'").argParser(rows).default(10))
    .addHelpText(
      'after',
      '\nExit status: 0 healthy, 1 findings, 2 cannot run.\n' +
        'Root sees everything; another user sees only its own processes and no page frames (no per page verdicts).',
    )
    // A usage error is "cannot run" (2), as the exit statuses have it; help is 0.
    .exitOverride((e) => {
      process.exit(e.exitCode === 0 ? 0 : EXIT_CANNOT_RUN);
    })
    .action(async (workload, opts) => {
      process.exitCode = await doctorCommand(workload, opts, {
        write: (text) => process.stdout.write(text),
        err: (line) => console.error(line),
        color: process.stdout.isTTY === true && pc.isColorSupported,
      });
    });
}
