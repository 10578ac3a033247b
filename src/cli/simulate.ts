/**
 * `ksmkit simulate [SCENARIO]`: what KSM would do on this host, in time.
 * Runs ksmd on the engine's virtual clock over a scenario (a built-in name or
 * a file), live, then prints the summary (or, with a sweep, one row per
 * setting) and optionally JSON lines and an HTML report.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { type Command, InvalidArgumentError, Option } from '@commander-js/extra-typings';
import pc from 'picocolors';
import { describePolicy, POLICY_NAMES, type PolicyConfig, parsePolicy } from '../policy/policy.ts';
import { ContentCompression, compressionLines, DEFAULT_COMPRESSIBILITY } from '../simulate/compression.ts';
import { loadCalibration } from '../simulate/cost.ts';
import type { EngineEnd, EngineRun } from '../simulate/engine-run.ts';
import { SettingError } from '../simulate/engine-run.ts';
import { fittingScale, machineMemory, memoryRefusal, runMemoryNeed } from '../simulate/footprint.ts';
import {
  describeSummaryLine,
  publishedLines,
  sampleJson,
  summaryJson,
  summaryTable,
  sweepTable,
} from '../simulate/format.ts';
import { runOnKernel } from '../simulate/kernel-run.ts';
import {
  builtIn,
  builtInNames,
  builtInNamesClosestTo,
  builtInPath,
  DEFAULT_SCENARIO,
} from '../simulate/library.ts';
import { LiveView } from '../simulate/live.ts';
import { renderReport } from '../simulate/report.ts';
import {
  defaultSampleEveryMs,
  guestCount,
  loadScenario,
  parseScale,
  type Scenario,
  ScenarioError,
  scaleScenario,
  totalGuestPages,
} from '../simulate/scenario.ts';
import { summarize } from '../simulate/summary.ts';
import {
  expandRuns,
  parseSetOption,
  type RunResult,
  type RunSpec,
  rescueSpecs,
  runSweep,
  type SweepAxis,
} from '../simulate/sweep.ts';
import type { Twin } from '../simulate/twin.ts';
import { formatBytes, formatDuration, parseDurationMs } from '../simulate/units.ts';
import { decide, isOverForMinutes, overText } from '../simulate/verdict.ts';
import { compressorUnavailable } from '../tools/compress/native.ts';
import type { DoctorReport } from '../tools/doctor/doctor.ts';
import { explainEngineRun } from '../tools/doctor/engine.ts';
import { formatReport } from '../tools/doctor/format.ts';
import { toJson } from '../tools/doctor/json.ts';
import { formatWorkloadIssue } from '../workload/parse.ts';
import { pidList, positiveInt, regex } from './estimate.ts';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, errorLine, messageOf, UsageError } from './exit.ts';
import { checkOutputPath } from './output-path.ts';
import {
  DEFAULT_TWIN_INTERVAL,
  DEFAULT_TWIN_SAMPLES,
  obtainTwin,
  type TwinOptions,
  twinProcessLines,
  twinScenarioFor,
  wantsTwin,
} from './simulate-twin.ts';
import { progressWanted, stdoutColor, stdoutWidth } from './terminal.ts';

export interface SimulateOptions {
  readonly set?: readonly string[];
  readonly advisor?: boolean;
  readonly duration?: string;
  readonly scale?: string;
  readonly seed?: number;
  readonly calibration?: string;
  readonly fastForward?: boolean;
  readonly json?: boolean;
  readonly report?: string;
  readonly backend?: 'sim' | 'kernel';
  readonly force?: boolean;
  /** true: progress lines even when stderr is not a terminal; false: none; default: on a terminal. */
  readonly progress?: boolean;
  /** false: no pages_to_scan runs for the verdict when the guests are over the host's memory. */
  readonly verdictSweep?: boolean;
  readonly list?: boolean;
  readonly color?: boolean;
  /** A merging policy (parsePolicy's names), or "all" for the policy table. */
  readonly policy?: string;
  /** After each run, doctor's verdicts on the guests' pages (engine only). */
  readonly explain?: boolean;
  /** zram's figures beside KSM's (the scenario's `compression:`, or its defaults). */
  readonly compression?: boolean;
}

/** The command's options with the twin's (--from-host, --from-dumps, --twin, --save-twin, …). */
export type SimulateCommandOptions = SimulateOptions & TwinOptions;

export interface SimulateIo {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
}

/** The scenario named on the command line (a built-in name or a file). Throws ScenarioError or UsageError. */
export async function resolveScenario(arg: string | undefined): Promise<Scenario> {
  const name = arg ?? DEFAULT_SCENARIO;
  if (builtInPath(name) !== undefined) return builtIn(name);
  if (!existsSync(name)) {
    throw new UsageError(
      `${JSON.stringify(name)} is neither a built-in scenario nor a file; built in: ` +
        `${builtInNamesClosestTo(name).join(', ')} (ksmkit simulate --list describes them)`,
    );
  }
  return loadScenario(name);
}

/** The scenario with the command line's changes (duration, scale, seed). Throws a UsageError. */
export function applyOverrides(scenario: Scenario, options: SimulateOptions): Scenario {
  let s = scenario;
  if (options.duration !== undefined) {
    const ms = parseDurationMs(options.duration);
    if (ms === undefined || ms <= 0)
      throw new UsageError(
        `--duration ${JSON.stringify(options.duration)}: expected a duration such as 30min`,
      );
    s = {
      ...s,
      durationMs: ms,
      sampleEveryMs: s.sampleEveryMs <= ms && ms >= s.durationMs ? s.sampleEveryMs : defaultSampleEveryMs(ms),
    };
  }
  if (options.scale !== undefined) {
    const factor = parseScale(options.scale, s);
    if (factor === undefined || !Number.isFinite(factor))
      throw new UsageError(
        `--scale ${JSON.stringify(options.scale)}: expected a factor (4) or a guest memory size (64GiB)`,
      );
    const scaled = scaleScenario(s, factor);
    // The title and the intro say what was run, not what the file describes.
    const what =
      `scaled ×${Number(factor.toPrecision(3))} by --scale ${options.scale}: ${guestCount(scaled)} guests, ` +
      `${formatBytes(totalGuestPages(scaled) * 4096)} of guest memory on a host of ${formatBytes(scaled.host.memoryBytes)}`;
    s = {
      ...scaled,
      title: `${s.title}, ${what}`,
      description: `${what[0]!.toUpperCase()}${what.slice(1)}. ${s.description}`,
    };
  }
  if (options.seed !== undefined) s = { ...s, seed: options.seed };
  if (options.compression === true && s.compression === undefined)
    s = { ...s, compression: DEFAULT_COMPRESSIBILITY };
  return s;
}

/** The whole command; returns the exit status. */
export async function simulateCommand(
  scenarioArg: string | undefined,
  options: SimulateCommandOptions,
  io: SimulateIo,
): Promise<number> {
  if (options.list === true) {
    for (const name of builtInNames()) {
      const s = builtIn(name);
      io.out(`${name.padEnd(16)} ${s.title}${name === DEFAULT_SCENARIO ? ' (default)' : ''}`);
    }
    return EXIT_OK;
  }
  let twinWanted: boolean;
  try {
    twinWanted = wantsTwin(scenarioArg, options);
  } catch (e) {
    io.err(`ksmkit simulate: ${(e as Error).message}`);
    return EXIT_USAGE;
  }
  if (options.policy?.trim() === 'all') {
    const { policiesCommand } = await import('./policies.ts');
    return policiesCommand(
      scenarioArg,
      {
        ...(options.seed === undefined ? {} : { seed: options.seed }),
        ...(options.calibration === undefined ? {} : { calibration: options.calibration }),
        ...(options.json === undefined ? {} : { json: options.json }),
        ...(options.color === undefined ? {} : { color: options.color }),
      },
      io,
    );
  }
  const json = options.json === true;
  const color = options.color ?? (!json && stdoutColor());
  const c = pc.createColors(color);
  let scenario: Scenario;
  let specs: RunSpec[];
  let policy: PolicyConfig | undefined;
  let calibration: ReturnType<typeof loadCalibration>;
  let twin: Twin | undefined;
  // Everything is checked before any work: output path, settings, calibration, scenario, memory.
  try {
    if (options.report !== undefined) checkOutputPath('--report', options.report);
    calibration = loadCalibration(options.calibration);
    if (options.policy !== undefined) {
      policy = parsePolicy(options.policy);
      if (options.backend === 'kernel')
        throw new UsageError(
          `--policy ${options.policy}: policies exist only in the engine; use --backend sim`,
        );
    }
    if (options.explain === true && options.backend === 'kernel')
      throw new UsageError(
        "--explain reads the engine's pages: use --backend sim (or ksmkit doctor on the host)",
      );
    const axes: SweepAxis[] = (options.set ?? []).map(parseSetOption);
    if (twinWanted) {
      specs = expandRuns(axes, options.advisor ?? false);
      twin = await obtainTwin(options, options.json === true ? () => {} : io.out);
      scenario = applyOverrides(twinScenarioFor(twin, calibration, options, specs), options);
    } else {
      scenario = applyOverrides(await resolveScenario(scenarioArg), options);
      specs = expandRuns(axes, options.advisor ?? false, scenario.ksm);
    }
    const need = runMemoryNeed(scenario, options.backend ?? 'sim');
    const machine = machineMemory();
    const scale = fittingScale(need, machine);
    const refusal = memoryRefusal(need, machine, scale === undefined ? '' : `; --scale ${scale} would fit`);
    if (refusal !== undefined) throw new UsageError(refusal);
  } catch (e) {
    if (e instanceof ScenarioError) {
      for (const issue of e.issues) io.err(formatWorkloadIssue(issue));
      return EXIT_USAGE;
    }
    io.err(errorLine('simulate', messageOf(e)));
    return EXIT_USAGE;
  }
  let compression: ContentCompression | undefined;
  if (scenario.compression !== undefined) {
    if (options.backend === 'kernel') {
      io.err('ksmkit simulate: compression figures come from the engine only; use --backend sim');
      return EXIT_USAGE;
    }
    const why = compressorUnavailable();
    if (why !== undefined) {
      io.err(`ksmkit simulate: compression figures: ${why}`);
      return EXIT_USAGE;
    }
    compression = new ContentCompression(scenario.compression);
  }
  const sweep = specs.length > 1;
  if (!json) {
    io.out(c.bold(`ksmkit simulate: ${scenario.title}`));
    io.out(
      `${guestCount(scenario)} guests, ${formatBytes(totalGuestPages(scenario) * 4096)} of guest memory on a host of ` +
        `${formatBytes(scenario.host.memoryBytes)}; ${formatDuration(scenario.durationMs)} of virtual time` +
        `${options.backend === 'kernel' ? ' in real time on this machine’s kernel' : ''}; ` +
        `CPU costs: ${calibration.origin === 'built in' ? 'shipped figures' : `calibrated (${calibration.origin ?? ''})`}.`,
    );
    if (policy !== undefined) io.out(`Policy: ${describePolicy(policy)}.`);
  }
  const live = new LiveView({
    progress: progressWanted(options.progress),
    rows: !json && !sweep,
    rowsPerRun: 16,
    out: io.out,
    width: stdoutWidth(),
  });
  const engineOptions = {
    ...(options.fastForward === false ? { fastForward: false } : {}),
    ...(policy === undefined ? {} : { policy }),
    ...(compression === undefined ? {} : { compression }),
  };
  let rescue: RunResult[] = [];
  let results: RunResult[];
  const explained: Array<{ label: string; report: DoctorReport }> = [];
  try {
    if (options.backend === 'kernel') {
      results = await runKernelSpecs(scenario, specs, calibration.figures, options, live, json, io);
    } else {
      results = runSweep(scenario, specs, calibration.figures, {
        ...engineOptions,
        onRunStart: (index, spec) => live.startRun(index, specs.length, spec.label, scenario.durationMs),
        onSample: (index, sample, fraction) => {
          if (json) io.out(sampleJson(specs[index]!.label, sample));
          live.sample(sample, fraction, scenario.durationMs);
        },
        ...(options.explain === true
          ? {
              onEngineEnd: (index: number, end: EngineEnd) =>
                explained.push({
                  label: specs[index]!.label,
                  report: explainEngineRun(end, `scenario ${scenario.name}`),
                }),
            }
          : {}),
        onRunEnd: (_index, result) => {
          if (json) io.out(summaryJson(result.spec.label, result));
          else if (sweep) live.line(describeSummaryLine(result.spec.label, result.summary));
        },
      });
      const base = results[0]!;
      if (!sweep && options.verdictSweep !== false && isOverForMinutes(base.summary)) {
        live.stop();
        if (!json) {
          io.out('');
          io.out(
            `Over the host's memory for ${formatDuration(base.summary.overcommittedMs)} at ${base.spec.label}: ` +
              'trying higher pages_to_scan for the verdict (--no-verdict-sweep skips this).',
          );
        }
        const quiet = new LiveView({
          progress: progressWanted(options.progress),
          rows: false,
          rowsPerRun: 0,
          out: io.out,
        });
        rescue = rescueRuns(scenario, base, calibration.figures, engineOptions, quiet, json, io);
      }
    }
  } catch (e) {
    live.stop();
    if (e instanceof SettingError) {
      io.err(errorLine('simulate', e.message));
      return EXIT_USAGE;
    }
    io.err(errorLine('simulate', messageOf(e)));
    return EXIT_FAILED;
  }
  live.stop();
  const verdict = decide({
    results,
    rescue,
    ...(options.backend === 'kernel' || sweep || twin !== undefined
      ? {}
      : {
          sweepCommand: `ksmkit simulate ${scenarioArg ?? DEFAULT_SCENARIO} --set pages_to_scan=100,1000,4000`,
        }),
  });
  if (!json) {
    for (const r of results)
      if (!r.run.ksmd.running)
        io.out(
          c.yellow(
            `ksmd did not run${r.run.ksmd.refused === undefined ? '' : `: the policy refused run=1 (${r.run.ksmd.refused})`}.`,
          ),
        );
    io.out('');
    io.out(c.bold(verdict.headline));
    for (const line of verdict.details) io.out(`  ${line}`);
    io.out('');
    const width = stdoutWidth();
    io.out(sweep ? sweepTable(results, color, width) : summaryTable(results[0]!, color, width));
    if (compression !== undefined) for (const line of compressionLines(results)) io.out(line);
    if (twin !== undefined && !sweep) {
      io.out('');
      for (const line of twinProcessLines(twin, results[0]!)) io.out(line);
    }
    const published = publishedLines(scenario, results);
    if (published.length > 0) {
      io.out('');
      for (const line of published) io.out(line);
    }
    if (results.some((r) => r.summary.steadyAtMs !== undefined)) {
      io.out(
        c.dim(
          'Steady state reached: nothing left that could merge, so later samples repeat the last pass (--no-fast-forward simulates them).',
        ),
      );
    }
  }
  for (const { label, report } of explained) {
    if (json) io.out(JSON.stringify({ type: 'explain', run: label, report: toJson(report) }));
    else {
      io.out('');
      if (explained.length > 1) io.out(c.bold(`Why (${label}):`));
      for (const line of formatReport(report, { color, rowsPerVerdict: 10 }).slice(1)) io.out(line);
    }
  }
  if (json)
    io.out(
      JSON.stringify({
        type: 'verdict',
        headline: verdict.headline,
        details: verdict.details,
        run: verdict.chosen.spec.label,
      }),
    );
  if (options.report !== undefined) {
    const html = renderReport({
      scenario,
      results,
      rescue,
      verdict,
      calibration,
      command: ['ksmkit simulate', ...process.argv.slice(3)].join(' '),
      generatedAt: new Date().toISOString().slice(0, 19).replace('T', ' '),
    });
    try {
      writeFileSync(options.report, html);
    } catch (e) {
      io.err(errorLine('simulate', `--report ${options.report}: ${messageOf(e)}`));
      return EXIT_FAILED;
    }
    if (!json) io.out(`Report: ${options.report}`);
  }
  return EXIT_OK;
}

/** Runs higher pages_to_scan until one keeps the guests within the host (but for less than a minute); returns the runs made. */
function rescueRuns(
  scenario: Scenario,
  base: RunResult,
  figures: Parameters<typeof summarize>[2],
  engineOptions: {
    readonly fastForward?: boolean;
    readonly policy?: PolicyConfig;
    readonly compression?: ContentCompression;
  },
  live: LiveView,
  json: boolean,
  io: SimulateIo,
): RunResult[] {
  const made: RunResult[] = [];
  const candidates = rescueSpecs(base.spec, base.summary.final.pages_to_scan, scenario.ksm);
  for (const spec of candidates) {
    const [result] = runSweep(scenario, [spec], figures, {
      ...engineOptions,
      onRunStart: () => live.startRun(made.length, candidates.length, spec.label, scenario.durationMs),
      onSample: (_index, sample, fraction) => live.sample(sample, fraction, scenario.durationMs),
    });
    live.stop();
    made.push(result!);
    if (json) io.out(summaryJson(spec.label, result!));
    else io.out(`  ${describeSummaryLine(spec.label, result!.summary)}, ${overText(result!.summary)}`);
    if (!isOverForMinutes(result!.summary)) break;
  }
  return made;
}

async function runKernelSpecs(
  scenario: Scenario,
  specs: readonly RunSpec[],
  figures: Parameters<typeof summarize>[2],
  options: SimulateOptions,
  live: LiveView,
  json: boolean,
  io: SimulateIo,
): Promise<RunResult[]> {
  const results: RunResult[] = [];
  for (const [index, spec] of specs.entries()) {
    live.startRun(index, specs.length, spec.label, scenario.durationMs);
    const started = performance.now();
    const run: EngineRun = await runOnKernel(scenario, {
      settings: spec.settings,
      force: options.force ?? false,
      onSample: (sample, fraction) => {
        if (json) io.out(sampleJson(spec.label, sample));
        live.sample(sample, fraction, scenario.durationMs);
      },
    });
    const result: RunResult = {
      spec,
      run,
      summary: summarize(scenario, run.samples, figures, undefined),
      wallMs: performance.now() - started,
    };
    if (json) io.out(summaryJson(spec.label, result));
    results.push(result);
  }
  return results;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function seedOf(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError('must be an integer');
  return n;
}

/** Adds `simulate` to the ksmkit program. */
export function registerSimulate(program: Command): void {
  program
    .command('simulate')
    .description(
      'what would KSM do on this host? runs ksmd in virtual time over a scenario and reports the memory saved, how fast and at what CPU cost',
    )
    .argument('[scenario]', `a built-in scenario (${builtInNames().join(', ')}) or a scenario file`)
    .option('--list', 'list the built-in scenarios', false)
    .option(
      '--set <name=values>',
      'a /sys/kernel/mm/ksm setting; several comma-separated values sweep it (repeatable)',
      collect,
      [] as string[],
    )
    .option('--advisor', 'also run with the scan-time advisor on (advisor_mode=scan-time)', false)
    .option('--duration <time>', 'virtual time to simulate (90s, 45min, 2h); default: the scenario’s')
    .option(
      '--scale <factor|size>',
      'more (or fewer) guests on a proportionally larger host: 4, or 64GiB of guest memory',
    )
    .option('--seed <n>', 'seed of the guests’ writes', seedOf)
    .option(
      '--calibration <file>',
      'CPU cost figures from `ksmkit calibrate` (default: its default file, else shipped figures)',
    )
    .option('--no-fast-forward', 'simulate every pass even once nothing is left to merge')
    .option('--json', 'one JSON object per sample (and a summary object per run)', false)
    .option(
      '--explain',
      "after each run, doctor's verdicts: why the guests' pages are or are not merged",
      false,
    )
    .option('--report <file.html>', 'write a self-contained HTML report with plots')
    .addOption(
      new Option(
        '--backend <name>',
        'sim (the engine, default) or kernel (this machine, real time, small scenarios)',
      )
        .choices(['sim', 'kernel'] as const)
        .default('sim' as const),
    )
    .option('--force', 'kernel backend: run even if other processes are mergeable', false)
    .option(
      '--policy <name>',
      `a merging policy (${POLICY_NAMES.join(', ')}; trust-domains:user|cgroup|label), or all for the policy table`,
    )
    .option(
      '--compression',
      'zram’s figures (each algorithm, and KSM then zram) beside KSM’s over time, also in --report; ' +
        'the scenario’s compression: block says how well its pages compress',
      false,
    )
    .option('--progress', 'progress lines on stderr even when it is not a terminal')
    .option('--no-progress', 'no progress lines (default: only on a terminal)')
    .option(
      '--no-verdict-sweep',
      'when the guests are over the host’s memory, do not try higher pages_to_scan for the verdict',
    )
    .option(
      '--from-host',
      'simulate this host’s twin: the processes given by --pid, --all or --match, read as ksmd would see them (KSM may stay off)',
    )
    .option('-p, --pid <pids>', '--from-host: a process (repeat, or comma-separated)', pidList)
    .option('-a, --all', '--from-host: every process (but this one)')
    .option('-m, --match <regex>', '--from-host: processes whose command line matches', regex)
    .addOption(
      new Option(
        '--vmas <mode>',
        '--from-host: mergeable = the VM_MERGEABLE VMAs (what ksmd scans), compatible = every KSM-compatible VMA (as if PR_SET_MEMORY_MERGE)',
      )
        .choices(['mergeable', 'compatible'] as const)
        .default('mergeable' as const),
    )
    .option(
      '--twin-samples <n>',
      `--from-host: how many times the processes are read; 2 or more show which pages are rewritten, and how fast (default ${DEFAULT_TWIN_SAMPLES})`,
      positiveInt,
    )
    .option(
      '--twin-interval <time>',
      `--from-host: time between those reads (default ${DEFAULT_TWIN_INTERVAL})`,
    )
    .option(
      '--from-dumps <files...>',
      'simulate the twin of memory dumps (raw images or ELF cores, e.g. QEMU dump-guest-memory), one guest each, in this order',
    )
    .option('--twin <file>', 'simulate a twin saved with --save-twin')
    .option(
      '--save-twin <file>',
      'keep the twin in a file (fingerprints salted, layout, rates: no page contents) for --twin',
    )
    .action(async (scenario, opts) => {
      const io = { out: (l: string) => console.log(l), err: (l: string) => console.error(l) };
      process.exitCode = await simulateCommand(scenario, opts, io);
    });
}
