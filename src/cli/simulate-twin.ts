/**
 * The twin side of `ksmkit simulate`: `--from-host` (with --pid/--all/--match
 * as estimate takes them), `--from-dumps FILES…` and `--twin FILE` make the
 * scenario from a twin (src/simulate/twin.ts) instead of a scenario file;
 * `--save-twin FILE` keeps the twin.
 */
import type { Calibration } from '../simulate/cost.ts';
import type { Scenario } from '../simulate/scenario.ts';
import type { RunResult, RunSpec } from '../simulate/sweep.ts';
import { presentPages, type Twin, twinDefaultDurationMs, twinPages, twinScenario } from '../simulate/twin.ts';
import { captureDumps, captureHost } from '../simulate/twin-capture.ts';
import { loadTwin, saveTwin } from '../simulate/twin-file.ts';
import { formatBytes, formatDuration, parseDurationMs } from '../simulate/units.ts';

export interface TwinOptions {
  readonly fromHost?: boolean;
  readonly pid?: readonly number[];
  readonly all?: boolean;
  readonly match?: RegExp;
  readonly vmas?: 'mergeable' | 'compatible';
  readonly fromDumps?: readonly string[];
  readonly twin?: string;
  readonly saveTwin?: string;
  /** Reads of the processes for the volatility (--from-host). */
  readonly twinSamples?: number;
  /** Time between them, e.g. 5s. */
  readonly twinInterval?: string;
  readonly duration?: string;
  readonly policy?: string;
}

export const DEFAULT_TWIN_SAMPLES = 2;
export const DEFAULT_TWIN_INTERVAL = '5s';

/** Whether the command line asks for a twin; throws a one-line Error when its options do not go together. */
export function wantsTwin(scenarioArg: string | undefined, options: TwinOptions): boolean {
  const sources = [
    options.fromHost === true ? '--from-host' : undefined,
    options.fromDumps !== undefined ? '--from-dumps' : undefined,
    options.twin !== undefined ? '--twin' : undefined,
  ].filter((s) => s !== undefined);
  const selects = (options.pid?.length ?? 0) > 0 || options.all === true || options.match !== undefined;
  if (sources.length > 1) throw new Error(`${sources.join(' and ')}: give one source of a twin`);
  if (sources.length === 0) {
    if (selects) throw new Error('--pid, --all and --match select processes for --from-host');
    if (options.saveTwin !== undefined)
      throw new Error('--save-twin needs a twin: --from-host, --from-dumps or --twin');
    if (options.twinSamples !== undefined || options.twinInterval !== undefined)
      throw new Error('--twin-samples and --twin-interval are for --from-host');
    return false;
  }
  const source = sources[0]!;
  if (scenarioArg !== undefined)
    throw new Error(
      `${source}: the scenario is the twin; drop the scenario argument ${JSON.stringify(scenarioArg)}`,
    );
  if (options.fromHost === true && !selects)
    throw new Error('--from-host: which processes? give --pid, --all or --match');
  if (options.fromHost !== true && selects)
    throw new Error('--pid, --all and --match select processes for --from-host');
  if (options.fromHost !== true && (options.twinSamples !== undefined || options.twinInterval !== undefined))
    throw new Error('--twin-samples and --twin-interval are for --from-host');
  if (options.policy?.trim() === 'all')
    throw new Error('--policy all runs the built-in scenarios; give one policy to run on a twin');
  return true;
}

/** Captures or loads the twin the options ask for, saving it with --save-twin. Throws a one-line Error. */
export async function obtainTwin(options: TwinOptions, say: (line: string) => void): Promise<Twin> {
  let twin: Twin;
  if (options.twin !== undefined) {
    twin = loadTwin(options.twin);
    say(`Twin ${options.twin}: captured ${twin.capturedAt} on ${twin.hostName}.`);
  } else if (options.fromDumps !== undefined) {
    twin = await captureDumps(options.fromDumps);
  } else {
    const samples = options.twinSamples ?? DEFAULT_TWIN_SAMPLES;
    const intervalText = options.twinInterval ?? DEFAULT_TWIN_INTERVAL;
    const intervalMs = parseDurationMs(intervalText);
    if (intervalMs === undefined || intervalMs <= 0)
      throw new Error(`--twin-interval ${intervalText}: expected a duration such as 5s`);
    say(
      `Reading the processes ${samples === 1 ? 'once' : `${samples} times, ${formatDuration(intervalMs)} apart`} (KSM is left as it is)…`,
    );
    twin = await captureHost({
      ...(options.pid === undefined ? {} : { pids: options.pid }),
      ...(options.all === undefined ? {} : { all: options.all }),
      ...(options.match === undefined ? {} : { match: options.match }),
      vmaMode: options.vmas ?? 'mergeable',
      samples,
      intervalMs,
      onSample: (index, pages) =>
        say(`  sample ${index + 1} of ${samples}: ${formatBytes(pages * 4096)} of pages ksmd would scan`),
    });
  }
  if (options.saveTwin !== undefined) {
    saveTwin(twin, options.saveTwin);
    say(`Twin saved: ${options.saveTwin} (fingerprints salted, no page contents, no command lines).`);
  }
  return twin;
}

/** The twin's scenario for this command line: long enough for the slowest of the runs (`specs`) unless --duration says. */
export function twinScenarioFor(
  twin: Twin,
  calibration: Calibration,
  options: TwinOptions,
  specs: readonly RunSpec[],
): Scenario {
  const given = options.duration === undefined ? undefined : parseDurationMs(options.duration);
  const durationMs = given ?? Math.max(...specs.map((spec) => twinDefaultDurationMs(twin, spec.settings)));
  return twinScenario(twin, { calibration, durationMs });
}

/** One line per process of the twin (most merging first, at most `limit`): what each would merge. */
export function twinProcessLines(twin: Twin, result: RunResult, limit = 12): string[] {
  const outcomes = result.run.processes ?? [];
  if (outcomes.length === 0) return [];
  const byPid = new Map(twin.processes.map((p) => [p.pid, p]));
  const rows = outcomes
    .map((o, i) => ({ o, p: o.hostPid === undefined ? twin.processes[i] : byPid.get(o.hostPid) }))
    .sort((a, b) => b.o.ksm_merging_pages - a.o.ksm_merging_pages);
  const lines = [
    `${'process'.padEnd(28)} ${'pid'.padStart(8)} ${'pages'.padStart(10)} ${'merging'.padStart(10)} ${'zero'.padStart(8)} ${'profit'.padStart(10)}`,
  ];
  for (const { o, p } of rows.slice(0, limit)) {
    lines.push(
      `${(p?.name ?? o.name).slice(0, 28).padEnd(28)} ${String(p?.pid || '-').padStart(8)} ${String(p === undefined ? '?' : presentPages(p)).padStart(10)} ${String(o.ksm_merging_pages).padStart(10)} ${String(o.ksm_zero_pages).padStart(8)} ${formatBytes(o.ksm_process_profit).padStart(10)}`,
    );
  }
  if (rows.length > limit) lines.push(`… and ${rows.length - limit} more processes`);
  lines.push(
    `(${formatBytes(twinPages(twin) * 4096)} in the twin; ksm_merging_pages and ksm_process_profit at the end of the run)`,
  );
  return lines;
}
