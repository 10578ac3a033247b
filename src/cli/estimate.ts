/** `ksmkit estimate`: what KSM would save on these processes and dump files, without enabling it. */

import { existsSync } from 'node:fs';
import { type Command, InvalidArgumentError, Option } from '@commander-js/extra-typings';
import { loadCalibration } from '../simulate/cost.ts';
import { type Scenario, ScenarioError } from '../simulate/scenario.ts';
import { compressorUnavailable } from '../tools/compress/native.ts';
import { checkDumpFiles, runEstimate } from '../tools/estimate/estimate.ts';
import type { VmaMode } from '../tools/estimate/proc-source.ts';
import { renderHuman, renderJson } from '../tools/estimate/report.ts';
import type { SettingOverrides } from '../tools/estimate/settings.ts';
import { formatWorkloadIssue } from '../workload/parse.ts';
import { EXIT_FAILED, EXIT_USAGE, errorLine, messageOf } from './exit.ts';
import { resolveScenario } from './simulate.ts';
import { stdoutColor, stdoutWidth } from './terminal.ts';

export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n))
    throw new InvalidArgumentError('must be an integer ≥ 0');
  return n;
}

export function positiveInt(value: string): number {
  const n = nonNegativeInt(value);
  if (n === 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

export function pidList(value: string, previous: number[] = []): number[] {
  const pids = value.split(',').map((v) => {
    const n = Number(v.trim());
    if (!/^\d+$/.test(v.trim()) || n <= 0)
      throw new InvalidArgumentError(`${JSON.stringify(v)} is not a pid`);
    return n;
  });
  return [...previous, ...pids];
}

export function regex(value: string): RegExp {
  try {
    return new RegExp(value);
  } catch (e) {
    throw new InvalidArgumentError(`not a regular expression: ${(e as Error).message}`);
  }
}

export function bool01(value: string): boolean {
  if (value === '0' || value === '1') return value === '1';
  throw new InvalidArgumentError('must be 0 or 1');
}

export function maxPageSharing(value: string): number {
  const n = nonNegativeInt(value);
  if (n < 2) throw new InvalidArgumentError('must be at least 2 (as the kernel requires)');
  return n;
}

export function byteSize(value: string): number {
  const m = /^(\d+)([kKmMgG]?)$/.exec(value);
  if (m === null) throw new InvalidArgumentError('must be a number of bytes, optionally with K, M or G');
  const unit = { '': 1, k: 1024, m: 1048576, g: 1073741824 }[m[2]!.toLowerCase()]!;
  return Number(m[1]) * unit;
}

/** No source named at all: no file, pid, --all, --match or --scenario. */
export function nothingNamed(
  files: readonly string[],
  pids: readonly number[],
  opts: {
    readonly all: boolean;
    readonly match?: RegExp | undefined;
    readonly scenario?: string | undefined;
  },
): boolean {
  return (
    files.length === 0 &&
    pids.length === 0 &&
    !opts.all &&
    opts.match === undefined &&
    opts.scenario === undefined
  );
}

/** The scenario --scenario names (undefined when not given), or null when it cannot be read (said on stderr, exit 2). */
export async function scenarioOption(
  command: string,
  name: string | undefined,
): Promise<Scenario | undefined | null> {
  if (name === undefined) return undefined;
  try {
    return await resolveScenario(name);
  } catch (e) {
    if (e instanceof ScenarioError) for (const issue of e.issues) console.error(formatWorkloadIssue(issue));
    else console.error(errorLine(command, `--scenario ${name}: ${messageOf(e)}`));
    process.exitCode = EXIT_USAGE;
    return null;
  }
}

/** Adds `ksmkit estimate` to the program. */
export function registerEstimate(program: Command): void {
  program
    .command('estimate')
    .description(
      'what KSM would save on live processes and memory dump files, without enabling it: pages, zero pages, ' +
        'distinct contents, pages_shared/pages_sharing/general_profit under the kernel rules, per process and ' +
        'per pair, and the time ksmd would take',
    )
    .argument(
      '[files...]',
      'memory dump files: raw images or ELF64 core files (gcore, QEMU dump-guest-memory)',
    )
    .option('-p, --pid <pids>', 'a process (repeat, or comma-separated)', pidList)
    .option('-a, --all', 'every process (but this one)', false)
    .option('-m, --match <regex>', 'processes whose command line matches', regex)
    .option(
      '--scenario <name|file>',
      'an engine scenario (a built-in name, see ksmkit simulate --list, or a file): its guests as they start',
    )
    .addOption(
      new Option(
        '--vmas <mode>',
        'which VMAs of a process: auto = VM_MERGEABLE ones for a process already using KSM, otherwise every ' +
          'KSM-compatible one; mergeable = VM_MERGEABLE only (what ksmd scans now); compatible = every ' +
          'KSM-compatible one (what PR_SET_MEMORY_MERGE would mark)',
      )
        .choices(['auto', 'mergeable', 'compatible'] as const)
        .default('auto' as const),
    )
    .addOption(new Option('--mergeable-only', 'the same as --vmas mergeable').conflicts(['vmas']))
    .addOption(
      new Option('--format <format>', 'dump file format')
        .choices(['auto', 'raw', 'elf'] as const)
        .default('auto' as const),
    )
    .option('--offset <bytes>', 'raw images: bytes to skip at the start (K, M, G suffixes)', byteSize)
    .addOption(
      new Option(
        '--dump-zero-pages <how>',
        'dump files: count zero pages as present memory, or as absent (never touched, as in a guest)',
      )
        .choices(['present', 'absent'] as const)
        .default('present' as const),
    )
    .option('--max-page-sharing <n>', 'instead of /sys/kernel/mm/ksm/max_page_sharing', maxPageSharing)
    .option('--use-zero-pages <0|1>', 'instead of /sys/kernel/mm/ksm/use_zero_pages', bool01)
    .option('--pages-to-scan <n>', 'instead of /sys/kernel/mm/ksm/pages_to_scan', positiveInt)
    .option('--sleep-millisecs <n>', 'instead of /sys/kernel/mm/ksm/sleep_millisecs', nonNegativeInt)
    .option('--hz <n>', 'the kernel tick rate (default: CONFIG_HZ of the running kernel)', positiveInt)
    .option(
      '--compare',
      'also compress the same pages as zram and zswap would (each algorithm of /sys/block/zram0/comp_algorithm), ' +
        'and KSM then zram, with the CPU each costs',
      false,
    )
    .option(
      '--calibration <file>',
      'with --compare: ksmd and COW break costs (default: ksmkit calibrate’s file)',
    )
    .option('--json', 'one JSON object with every figure', false)
    .option('--progress', 'a progress bar on stderr', false)
    .option('--matrix <n>', 'sources shown in the sharing matrices', positiveInt, 8)
    .option('-v, --verbose', 'the skipped mappings of every process', false)
    .addOption(
      new Option('--read-size <bytes>', 'bytes per read (tests, tuning)').argParser(byteSize).hideHelp(),
    )
    .addHelpText(
      'after',
      `
A process is read through /proc/PID/smaps (which VMAs KSM could scan), /proc/PID/pagemap (present
anonymous pages only: no page is faulted in) and /proc/PID/mem; reading other users' processes needs
root, and only root sees page frames (pages shared after fork, the shared zero page). Nothing is
written anywhere; KSM stays as it is.

Settings come from /sys/kernel/mm/ksm unless given (Linux's defaults on a kernel without KSM).
Examples:
  ksmkit estimate --match 'qemu|python'
  ksmkit estimate --pid 1234,5678 --json
  ksmkit estimate guest1.elf guest2.elf --dump-zero-pages absent
  ksmkit estimate --compare --pid 1234          KSM against zram and zswap on the same pages
  ksmkit estimate --compare --scenario kvm-clones`,
    )
    .action(async (files, opts, cmd) => {
      const pids = opts.pid ?? [];
      if (nothingNamed(files, pids, opts))
        cmd.error('error: nothing to estimate: give --pid, --all, --match, --scenario or dump files');
      if (opts.calibration !== undefined && !opts.compare)
        cmd.error('error: --calibration goes with --compare', { exitCode: 2 });
      if (opts.compare) {
        const why = compressorUnavailable();
        const fail = (message: string): void => {
          console.error(`ksmkit estimate --compare: ${message}`);
          process.exitCode = 2;
        };
        if (why !== undefined) return fail(why);
        try {
          loadCalibration(opts.calibration);
        } catch (e) {
          return fail((e as Error).message);
        }
      }
      const scenario = await scenarioOption('estimate', opts.scenario);
      if (scenario === null) return;
      // Everything named is checked before anything is read: errors on stderr, no report around them.
      const problems = [
        ...pids.filter((pid) => !existsSync(`/proc/${pid}`)).map((pid) => `pid ${pid}: no such process`),
        ...checkDumpFiles(files, opts.format, opts.offset ?? 0),
      ];
      if (problems.length > 0) {
        for (const p of problems) console.error(errorLine('estimate', p));
        process.exitCode = EXIT_USAGE;
        return;
      }
      const settings: SettingOverrides = {};
      if (opts.maxPageSharing !== undefined) settings.maxPageSharing = opts.maxPageSharing;
      if (opts.useZeroPages !== undefined) settings.useZeroPages = opts.useZeroPages;
      if (opts.pagesToScan !== undefined) settings.pagesToScan = opts.pagesToScan;
      if (opts.sleepMillisecs !== undefined) settings.sleepMillisecs = opts.sleepMillisecs;
      if (opts.hz !== undefined) settings.hz = opts.hz;
      const vmaMode: VmaMode = opts.mergeableOnly === true ? 'mergeable' : opts.vmas;
      const report = await runEstimate({
        pids,
        all: opts.all,
        ...(opts.match !== undefined ? { match: opts.match } : {}),
        files,
        vmaMode,
        format: opts.format,
        ...(opts.offset !== undefined ? { offset: opts.offset } : {}),
        dumpZeroPages: opts.dumpZeroPages,
        settings,
        progress: opts.progress,
        ...(opts.readSize !== undefined ? { readBytes: opts.readSize } : {}),
        compare: opts.compare,
        ...(scenario !== undefined ? { scenario } : {}),
        ...(opts.calibration !== undefined ? { calibrationPath: opts.calibration } : {}),
      });
      const failed = report.unreadable.filter((u) => u.explicit);
      if (report.sources.length === 0 && failed.length > 0) {
        for (const u of failed) console.error(errorLine('estimate', `${u.what}: ${u.error}`));
        process.exitCode = EXIT_FAILED;
        return;
      }
      if (opts.json) console.log(renderJson(report));
      else
        console.log(
          renderHuman(report, {
            matrixLimit: opts.matrix,
            verbose: opts.verbose,
            color: stdoutColor(),
            width: stdoutWidth(),
          }),
        );
      for (const u of failed) console.error(errorLine('estimate', `${u.what}: ${u.error}`));
      if (failed.length > 0 || report.sources.length === 0) process.exitCode = EXIT_FAILED;
    });
}
