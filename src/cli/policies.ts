/**
 * `ksmkit policies [SCENARIO]`: the policy table. Runs a scenario (default
 * the built-in multi-tenant one) under every merging policy and the
 * write-timing attack beside it, and prints, per policy, the memory saved (and
 * its share of the saving with no policy), ksmd's CPU, and the attack's
 * accuracy across tenants and within a tenant with its trials, 95% interval
 * and verdict. `--json` prints the same as one object.
 */
import { type Command, InvalidArgumentError } from '@commander-js/extra-typings';
import pc from 'picocolors';
import { parsePolicy } from '../policy/policy.ts';
import { textTable } from '../report/table.ts';
import {
  type AttackCell,
  buildPolicyTable,
  defaultRowSpecs,
  type PolicyRowSpec,
  type PolicyTable,
} from '../security/policy-table.ts';
import { MEASURED_TIMING, readProbeCalibration, type WriteTimingModel } from '../security/timing-model.ts';
import { loadCalibration } from '../simulate/cost.ts';
import { ScenarioError } from '../simulate/scenario.ts';
import { formatBytes, formatDuration } from '../simulate/units.ts';
import { formatWorkloadIssue } from '../workload/parse.ts';
import { resolveScenario } from './simulate.ts';
import { progressWanted, stderrColor, stdoutColor, stdoutWidth } from './terminal.ts';

export const POLICY_SCENARIO = 'multi-tenant';

export interface PoliciesOptions {
  readonly policy?: readonly string[];
  readonly guesses?: number;
  readonly seed?: number;
  readonly timing?: string;
  readonly calibration?: string;
  readonly json?: boolean;
  readonly color?: boolean;
  /** Progress lines on stderr: true always, false never, default on a terminal. */
  readonly progress?: boolean;
}

export interface PoliciesIo {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
}

/** The whole command; returns the exit status. */
export async function policiesCommand(
  scenarioArg: string | undefined,
  options: PoliciesOptions,
  io: PoliciesIo,
): Promise<number> {
  let rows: PolicyRowSpec[];
  let timing: WriteTimingModel;
  try {
    rows = rowSpecs(options.policy ?? []);
    timing = options.timing === undefined ? MEASURED_TIMING : readProbeCalibration(options.timing);
  } catch (e) {
    io.err(`ksmkit policies: ${(e as Error).message}`);
    return 2;
  }
  let scenario: Awaited<ReturnType<typeof resolveScenario>>;
  try {
    scenario = await resolveScenario(scenarioArg ?? POLICY_SCENARIO);
  } catch (e) {
    if (e instanceof ScenarioError) {
      for (const issue of e.issues) io.err(formatWorkloadIssue(issue));
      return 2;
    }
    io.err(`ksmkit policies: ${(e as Error).message}`);
    return 2;
  }
  let calibration: ReturnType<typeof loadCalibration>;
  try {
    calibration = loadCalibration(options.calibration);
  } catch (e) {
    io.err(`ksmkit policies: ${(e as Error).message}`);
    return 2;
  }
  const json = options.json === true;
  if (!json) io.out(pc.bold(`ksmkit policies: ${scenario.title}`));
  const table = buildPolicyTable(scenario, {
    figures: calibration.figures,
    rows,
    ...(options.guesses === undefined ? {} : { guesses: options.guesses }),
    ...(options.seed === undefined ? {} : { seed: options.seed }),
    timing,
    onRow: (index, count, label) => {
      if (!json && progressWanted(options.progress))
        io.err(pc.createColors(stderrColor()).dim(`  [${index + 1}/${count}] ${label}`));
    },
  });
  if (json) io.out(JSON.stringify(table, null, 2));
  else
    for (const line of policyTableLines(table, options.color ?? stdoutColor(), stdoutWidth())) io.out(line);
  return 0;
}

/** `--policy` values (repeatable, comma-separated; "all" for every one) as rows; none is always there. */
export function rowSpecs(values: readonly string[]): PolicyRowSpec[] {
  const names = values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
  if (names.length === 0 || names.includes('all')) return defaultRowSpecs();
  const wanted = names.map(parsePolicy);
  const specs = defaultRowSpecs().filter(
    (spec) => spec.policy.name === 'none' || wanted.some((w) => w.name === spec.policy.name),
  );
  // A trust-domain key other than the default replaces the default row.
  return specs.map((spec) => {
    const w = wanted.find((x) => x.name === spec.policy.name);
    return w === undefined || w.trustDomainBy === undefined
      ? spec
      : { ...spec, policy: w, label: `${w.name}:${w.trustDomainBy}` };
  });
}

function attackText(cell: AttackCell): string {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const p = cell.pValue < 1e-4 ? 'p<1e-4' : `p=${cell.pValue.toFixed(2)}`;
  return `${pct(cell.accuracy)} [${pct(cell.ci95.low)}, ${pct(cell.ci95.high)}] ${p} ${cell.verdict}`;
}

/** The table as text lines, with the setup and the rule under it. */
export function policyTableLines(t: PolicyTable, color: boolean, width?: number): string[] {
  const head = [
    'policy',
    'memory saved',
    'of unprotected',
    'ksmd CPU',
    'attack across tenants',
    'within a tenant',
    'goal',
  ];
  const rows: string[][] = [];
  for (const r of t.rows) {
    const cpu = r.ksmd.running
      ? `${formatDuration(r.ksmdCpuMs)} (${r.ksmdCpuPercent.toFixed(1)}%)`
      : r.ksmd.refused === undefined
        ? 'off'
        : `off (${r.ksmd.refused})`;
    rows.push([
      r.label,
      formatBytes(r.savingBytes),
      `${(r.savingFraction * 100).toFixed(0)}%`,
      cpu,
      attackText(r.attack['cross-tenant']),
      attackText(r.attack['within-tenant']),
      r.meetsGoal ? (color ? pc.green('met') : 'met') : '',
    ]);
  }
  const s = t.scenario;
  const a = t.attackSetup;
  return [
    `${s.guests} guests, ${formatBytes(s.guestMemoryBytes)} of guest memory, ${formatDuration(s.durationMs)} of virtual time per policy.`,
    textTable(
      { head, color, width, align: ['left', 'right', 'right', 'right', 'left', 'left', 'left'] },
      rows,
    ),
    `Attack: ${a.guesses} guesses per cell (half right), threshold calibrated on ${a.calibrationPages} known-merged and ${a.calibrationPages} known-unique pages of the attacker's own, after ${a.fullScans} ksmd passes; attacker ${a.attacker.label || `uid ${a.attacker.uid}`}, cross-tenant victim ${a.crossTenantVictim.label || `uid ${a.crossTenantVictim.uid}`}; write times: ${a.timing}.`,
    `Accuracy [${(a.confidence * 100).toFixed(2)}% Wilson interval], p: exact binomial test against 0.5; ${t.chanceRule}.`,
    `Goal: ${t.goal}. Met by: ${t.goalMetBy.length === 0 ? 'none' : t.goalMetBy.join(', ')}.`,
  ];
}

function positiveEven(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 2 || n % 2 !== 0)
    throw new InvalidArgumentError('must be an even integer >= 2');
  return n;
}

function seedOf(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError('must be an integer');
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Adds `policies` to the ksmkit program. */
export function registerPolicies(program: Command): void {
  program
    .command('policies')
    .description(
      'the policy table: a scenario under every merging policy (memory saved, ksmd CPU) and the KSM write-timing attack across tenants and within a tenant',
    )
    .argument('[scenario]', `a built-in scenario or a scenario file (default ${POLICY_SCENARIO})`)
    .option(
      '--policy <names>',
      'only these policies (comma-separated, repeatable; none is always run)',
      collect,
      [] as string[],
    )
    .option(
      '--guesses <n>',
      'attack trials per cell (even; default: enough for +-2 point intervals over the whole table)',
      positiveEven,
    )
    .option('--seed <n>', 'seed of the attack (default: the scenario’s)', seedOf)
    .option('--timing <file.json>', 'write-time distributions per fault kind (as `ksmkit probe` writes them)')
    .option('--calibration <file>', 'ksmd CPU cost figures from `ksmkit calibrate`')
    .option('--json', 'the table as one JSON object', false)
    .option('--progress', 'progress lines on stderr even when it is not a terminal')
    .option('--no-progress', 'no progress lines (default: only on a terminal)')
    .action(async (scenario, opts) => {
      const io = { out: (l: string) => console.log(l), err: (l: string) => console.error(l) };
      process.exitCode = await policiesCommand(scenario, opts, io);
    });
}
