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
  /** How the run is named in tables and plots: the swept values, or "scenario settings". */
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
  if (name === 'run' || !WRITABLE_SYSFS_NAMES.includes(name)) {
    throw new Error(
      `--set ${name}: not a setting of /sys/kernel/mm/ksm; allowed: ${WRITABLE_SYSFS_NAMES.filter((n) => n !== 'run').join(', ')}`,
    );
  }
  const values = m[2]!.split(',').map((v) => v.trim());
  if (values.some((v) => v === ''))
    throw new Error(`--set ${name}: an empty value in ${JSON.stringify(m[2])}`);
  return { name, values };
}

/** Every run the options ask for, in order. */
export function expandRuns(axes: readonly SweepAxis[], advisor: boolean): RunSpec[] {
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
    label: combo.length === 0 ? labelOf(fixed) : labelOf(combo),
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

function labelOf(settings: readonly SysfsSetting[]): string {
  return settings.length === 0 ? 'scenario settings' : settings.map((s) => `${s.name}=${s.value}`).join(' ');
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
