/**
 * Settings sweeps: `--set pages_to_scan=100,1000,10000` runs the scenario
 * once per value; several `--set` with several values each run every
 * combination; a `--set` with one value applies to every run. `--advisor`
 * adds a run with the scan-time advisor on (it owns pages_to_scan, so that run
 * leaves any swept pages_to_scan out).
 */
import type { PolicyConfig } from '../policy/policy.ts';
import { WRITABLE_SYSFS_NAMES } from '../workload/counters.ts';
import type { SysfsSetting } from '../workload/workload.ts';
import type { ContentCompression } from './compression.ts';
import type { CostFigures } from './cost.ts';
import { type EngineEnd, type EngineRun, runOnEngine, type Sample } from './engine-run.ts';
import type { Scenario } from './scenario.ts';
import { type RunSummary, summarize } from './summary.ts';

export interface SweepAxis {
  readonly name: string;
  readonly values: readonly string[];
}

export interface RunSpec {
  /** How the run is named in tables and plots: the swept values, or the run's pacing (pages_to_scan, sleep_millisecs). */
  readonly label: string;
  readonly settings: readonly SysfsSetting[];
}

export interface RunResult {
  readonly spec: RunSpec;
  readonly run: EngineRun;
  readonly summary: RunSummary;
  /** Wall-clock time the run took. */
  readonly wallMs: number;
}

/** `NAME=V1,V2,...` → an axis; throws a one-line message for anything else. */
export function parseSetOption(text: string): SweepAxis {
  const m = /^([a-z_]+)=(.+)$/.exec(text.trim());
  if (m === null) throw new Error(`--set ${JSON.stringify(text)}: expected NAME=VALUE[,VALUE...]`);
  const name = m[1]!;
  const allowed = WRITABLE_SYSFS_NAMES.filter((n) => n !== 'run').join(', ');
  if (name === 'run') {
    throw new Error(
      `--set ${text.trim()}: run is not a setting simulate takes: every run turns ksmd on (run=1) when it starts, ` +
        `and the summary's "without KSM" figure is what run=0 would give. Settings to sweep: ${allowed}`,
    );
  }
  if (!WRITABLE_SYSFS_NAMES.includes(name)) {
    throw new Error(`--set ${name}: not a setting of /sys/kernel/mm/ksm; allowed: ${allowed}`);
  }
  const values = m[2]!.split(',').map((v) => v.trim());
  if (values.some((v) => v === ''))
    throw new Error(`--set ${name}: an empty value in ${JSON.stringify(m[2])}`);
  return { name, values };
}

/** Linux's defaults for the two settings that name a run. */
const PACING_DEFAULTS: readonly SysfsSetting[] = [
  { name: 'pages_to_scan', value: '100' },
  { name: 'sleep_millisecs', value: '20' },
];

/**
 * Every run the options ask for, in order. `base` is the scenario's own `ksm:`
 * settings: a run that changes nothing is named by its pacing under them.
 */
export function expandRuns(
  axes: readonly SweepAxis[],
  advisor: boolean,
  base: readonly SysfsSetting[] = [],
): RunSpec[] {
  const fixed: SysfsSetting[] = [];
  const swept: SweepAxis[] = [];
  for (const axis of axes) {
    if (axis.values.length === 1) fixed.push({ name: axis.name, value: axis.values[0]! });
    else swept.push(axis);
  }
  let combos: SysfsSetting[][] = [[]];
  for (const axis of swept)
    combos = combos.flatMap((combo) => axis.values.map((value) => [...combo, { name: axis.name, value }]));
  const runs: RunSpec[] = combos.map((combo) => ({
    label: combo.length === 0 ? labelOf(fixed, base) : labelOf(combo, base),
    settings: [...fixed, ...combo],
  }));
  if (advisor) {
    const settings = [
      ...fixed.filter((s) => s.name !== 'pages_to_scan'),
      { name: 'advisor_mode', value: 'scan-time' },
    ];
    runs.push({ label: 'advisor_mode=scan-time', settings });
  }
  return runs;
}

function labelOf(settings: readonly SysfsSetting[], base: readonly SysfsSetting[]): string {
  if (settings.length > 0) return settings.map((s) => `${s.name}=${s.value}`).join(' ');
  const value = (name: string): string =>
    [...base].reverse().find((s) => s.name === name)?.value ??
    PACING_DEFAULTS.find((s) => s.name === name)!.value;
  return PACING_DEFAULTS.map((s) => `${s.name}=${value(s.name)}`).join(' ');
}

/** pages_to_scan values tried, in order, to keep the guests within the host: multiples of the run's. */
const RESCUE_FACTORS = [4, 10, 25, 100] as const;

/**
 * When a run leaves the guests over the host's memory, the pages_to_scan
 * values (higher than the run's, other settings kept) to try, lowest first:
 * the verdict runs them until one keeps the guests within the host.
 */
export function rescueSpecs(
  base: RunSpec,
  pagesToScan: number,
  scenarioKsm: readonly SysfsSetting[] = [],
): RunSpec[] {
  if (base.settings.some((s) => s.name === 'advisor_mode' && s.value !== 'none')) return [];
  const others = base.settings.filter((s) => s.name !== 'pages_to_scan');
  const pacing = labelOf([], [...scenarioKsm, ...others]).replace(/^pages_to_scan=\S+ /, '');
  const rest = others.filter((s) => s.name !== 'sleep_millisecs');
  return RESCUE_FACTORS.map((f) => String(pagesToScan * f)).map((value) => ({
    label: `pages_to_scan=${value} ${pacing}${rest.length > 0 ? ` ${labelOf(rest, [])}` : ''}`,
    settings: [...others, { name: 'pages_to_scan', value }],
  }));
}

export interface SweepCallbacks {
  readonly onRunStart?: (index: number, spec: RunSpec) => void;
  readonly onSample?: (index: number, sample: Sample, fraction: number) => void;
  readonly onRunEnd?: (index: number, result: RunResult) => void;
  /** The engine as the run left it, before onRunEnd. */
  readonly onEngineEnd?: (index: number, end: EngineEnd) => void;
}

/** Runs every spec on the engine, one after the other. */
export function runSweep(
  scenario: Scenario,
  specs: readonly RunSpec[],
  figures: CostFigures,
  options: {
    readonly fastForward?: boolean;
    readonly policy?: PolicyConfig;
    readonly compression?: ContentCompression;
  } & SweepCallbacks = {},
): RunResult[] {
  const results: RunResult[] = [];
  specs.forEach((spec, index) => {
    options.onRunStart?.(index, spec);
    const started = performance.now();
    const run = runOnEngine(scenario, {
      figures,
      settings: spec.settings,
      ...(options.fastForward === undefined ? {} : { fastForward: options.fastForward }),
      ...(options.policy === undefined ? {} : { policy: options.policy }),
      ...(options.compression === undefined ? {} : { compression: options.compression }),
      ...(options.onSample === undefined
        ? {}
        : { onSample: (sample: Sample, fraction: number) => options.onSample?.(index, sample, fraction) }),
      ...(options.onEngineEnd === undefined
        ? {}
        : { onEnd: (end: EngineEnd) => options.onEngineEnd?.(index, end) }),
    });
    const result: RunResult = {
      spec,
      run,
      summary: summarize(scenario, run.samples, figures, run.steadyAtMs),
      wallMs: performance.now() - started,
    };
    results.push(result);
    options.onRunEnd?.(index, result);
  });
  return results;
}
