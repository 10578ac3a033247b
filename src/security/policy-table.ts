/**
 * The policy table: one scenario under every merging policy, with what each
 * keeps of the saving, what ksmd costs, and how well the write-timing attack
 * does across tenants and within a tenant. The question it answers: which
 * policy stops the cross-tenant attack (accuracy at chance, with enough
 * trials to say so) and still keeps at least half of the unprotected saving?
 */
import { describePolicy, POLICY_NAMES, type PolicyConfig, type PolicyName } from '../policy/policy.ts';
import type { CostFigures } from '../simulate/cost.ts';
import { runOnEngine } from '../simulate/engine-run.ts';
import type { Scenario, TenantModel } from '../simulate/scenario.ts';
import { summarize } from '../simulate/summary.ts';
import {
  ATTACK_PLACEMENTS,
  type AttackPlacement,
  type AttackResult,
  runAttack,
  type TenantIdentity,
  tenantIdentity,
} from './attack.ts';
import { CHANCE_HALF_WIDTH, trialsForHalfWidth, zForConfidence } from './stats.ts';

/** The whole table's chance of any wrong verdict among cells that leak nothing. */
export const FAMILY_ALPHA = 0.05;

import { MEASURED_TIMING, type WriteTimingModel } from './timing-model.ts';

/** The goal of issue 8: keep at least this share of the saving with no policy. */
export const GOAL_SAVING_FRACTION = 0.5;

/** One row: a policy, and for dormant the state ksmd is in. */
export interface PolicyRowSpec {
  readonly policy: PolicyConfig;
  /** Whether the operator (root, CAP_SYS_ADMIN) turns ksmd on. */
  readonly operatorEnablesKsmd: boolean;
  /** How the row is named: the policy, and the ksmd state where it matters. */
  readonly label: string;
}

/** Every policy once; dormant twice (as shipped: ksmd off; and turned on by the operator, audited). */
export function defaultRowSpecs(): PolicyRowSpec[] {
  return POLICY_NAMES.flatMap((name: PolicyName): PolicyRowSpec[] =>
    name === 'dormant'
      ? [
          { policy: { name }, operatorEnablesKsmd: false, label: 'dormant (ksmd off, as shipped)' },
          { policy: { name }, operatorEnablesKsmd: true, label: 'dormant (operator turned ksmd on)' },
        ]
      : [{ policy: { name }, operatorEnablesKsmd: true, label: name }],
  );
}

export interface AttackCell {
  readonly trials: number;
  readonly successes: number;
  readonly accuracy: number;
  readonly ci95: { readonly low: number; readonly high: number };
  readonly pValue: number;
  readonly verdict: string;
  readonly truePositiveRate: number;
  readonly falsePositiveRate: number;
  readonly thresholdNs: number;
  readonly guessFaults: AttackResult['guessFaults'];
}

export interface PolicyRow {
  readonly label: string;
  readonly policy: PolicyConfig;
  readonly description: string;
  readonly ksmd: { readonly running: boolean; readonly refused?: string };
  /**
   * Guest memory less the memory in use at the end (frames, and 64 bytes an
   * rmap item): general_profit whenever the counters are current. Not
   * general_profit itself: under vusion a read's copy of a merged page leaves
   * pages_sharing as it was until ksmd's next visit to that page.
   */
  readonly savingBytes: number;
  /** Of the saving with no policy (0 when that is 0). */
  readonly savingFraction: number;
  readonly ksmdCpuMs: number;
  readonly ksmdCpuPercent: number;
  readonly attack: Readonly<Record<AttackPlacement, AttackCell>>;
  /** Cross-tenant attack at chance and at least GOAL_SAVING_FRACTION of the saving kept. */
  readonly meetsGoal: boolean;
}

export interface PolicyTable {
  readonly scenario: {
    readonly name: string;
    readonly title: string;
    readonly guests: number;
    readonly guestMemoryBytes: number;
    readonly durationMs: number;
  };
  readonly attackSetup: {
    readonly attacker: TenantIdentity;
    readonly crossTenantVictim: TenantIdentity;
    readonly guesses: number;
    readonly calibrationPages: number;
    readonly fullScans: number;
    /** Cell k (row by row, cross-tenant then within-tenant) uses seed + k. */
    readonly seed: number;
    readonly timing: string;
    /** Confidence of each cell's interval (Bonferroni over the table's cells). */
    readonly confidence: number;
  };
  readonly chanceRule: string;
  readonly goal: string;
  readonly rows: readonly PolicyRow[];
  /** Rows that meet the goal. */
  readonly goalMetBy: readonly string[];
}

export interface PolicyTableOptions {
  readonly figures: CostFigures;
  readonly rows?: readonly PolicyRowSpec[];
  readonly guesses?: number;
  readonly calibrationPages?: number;
  readonly fullScans?: number;
  readonly seed?: number;
  readonly timing?: WriteTimingModel;
  /** Called as each row starts (for progress). */
  readonly onRow?: (index: number, count: number, label: string) => void;
}

/** Runs the scenario and the attack under every row's policy. Deterministic. */
export function buildPolicyTable(scenario: Scenario, options: PolicyTableOptions): PolicyTable {
  const specs = options.rows ?? defaultRowSpecs();
  // Many cells, each a claim: a 95% interval per cell would call about one in
  // twenty null cells "above" or "below" chance by luck alone. The intervals
  // are Bonferroni-corrected so that the whole table is right with 95%
  // confidence, and the default trials keep them within +-2 points.
  const cells = specs.length * ATTACK_PLACEMENTS.length;
  const confidence = 1 - FAMILY_ALPHA / cells;
  const z = zForConfidence(confidence);
  const needed = trialsForHalfWidth(CHANCE_HALF_WIDTH, z);
  const guesses = options.guesses ?? needed + (needed % 2);
  const calibrationPages = options.calibrationPages ?? 256;
  const fullScans = options.fullScans ?? 3;
  const seed = options.seed ?? scenario.seed;
  const timing = options.timing ?? MEASURED_TIMING;
  const [attacker, victim] = attackTenants(scenario);
  let unprotected: number | undefined;
  const rows: PolicyRow[] = [];
  specs.forEach((spec, index) => {
    options.onRow?.(index, specs.length, spec.label);
    const run = runOnEngine(scenario, {
      figures: options.figures,
      policy: spec.policy,
      operatorEnablesKsmd: spec.operatorEnablesKsmd,
    });
    const summary = summarize(scenario, run.samples, options.figures, run.steadyAtMs);
    const final = summary.final;
    const savingBytes = final.guestMemoryBytes - final.memoryInUseBytes;
    if (spec.policy.name === 'none' && spec.operatorEnablesKsmd) unprotected = savingBytes;
    const attack = Object.fromEntries(
      ATTACK_PLACEMENTS.map((placement, p) => {
        const result = runAttack({
          policy: spec.policy,
          placement,
          guesses,
          calibrationPages,
          fullScans,
          operatorEnablesKsmd: spec.operatorEnablesKsmd,
          settings: scenario.ksm,
          // A seed per cell: each verdict rests on draws of its own, not on one lucky sequence.
          seed: seed + index * ATTACK_PLACEMENTS.length + p,
          timing,
          confidence,
          attacker,
          victim: placement === 'cross-tenant' ? victim : attacker,
        });
        return [placement, attackCell(result)];
      }),
    ) as Record<AttackPlacement, AttackCell>;
    rows.push({
      label: spec.label,
      policy: spec.policy,
      description: describePolicy(spec.policy),
      ksmd: run.ksmd,
      savingBytes,
      savingFraction: 0,
      ksmdCpuMs: summary.ksmdCpuMs,
      ksmdCpuPercent: summary.ksmdCpuPercent,
      attack,
      meetsGoal: false,
    });
  });
  // The fraction needs the unprotected saving, whichever row came first.
  const base = unprotected ?? 0;
  const finished = rows.map((row) => {
    const savingFraction = base > 0 ? row.savingBytes / base : 0;
    return {
      ...row,
      savingFraction,
      meetsGoal: row.attack['cross-tenant'].verdict === 'at chance' && savingFraction >= GOAL_SAVING_FRACTION,
    };
  });
  return {
    scenario: {
      name: scenario.name,
      title: scenario.title,
      guests: scenario.groups.reduce((sum, g) => sum + g.count, 0),
      guestMemoryBytes: scenario.groups.reduce((sum, g) => sum + g.count * g.pageCount * 4096, 0),
      durationMs: scenario.durationMs,
    },
    attackSetup: {
      attacker,
      crossTenantVictim: victim,
      guesses,
      calibrationPages,
      fullScans,
      seed,
      timing: timing.origin,
      confidence,
    },
    chanceRule:
      `at chance: the Wilson interval of the accuracy holds 0.5 and its half-width is at most ${CHANCE_HALF_WIDTH * 100} points; ` +
      `intervals at ${(confidence * 100).toFixed(2)}% (95% for the ${cells} cells together, Bonferroni), ` +
      `which needs ${needed} trials per cell`,
    goal: `cross-tenant attack at chance while keeping at least ${GOAL_SAVING_FRACTION * 100}% of the saving with no policy`,
    rows: finished,
    goalMetBy: finished.filter((r) => r.meetsGoal).map((r) => r.label),
  };
}

/** The attacker is the scenario's first tenant, the cross-tenant victim its second (defaults if it names fewer). */
function attackTenants(scenario: Scenario): [TenantIdentity, TenantIdentity] {
  const tenants: TenantModel[] = [];
  for (const g of scenario.groups)
    if (g.tenant !== undefined && !tenants.some((t) => t.name === g.tenant!.name)) tenants.push(g.tenant);
  const identity = (t: TenantModel): TenantIdentity => ({ uid: t.uid, cgroup: t.cgroup, label: t.label });
  const attacker = tenants[0] === undefined ? tenantIdentity('tenant-a', 1001) : identity(tenants[0]);
  const victim = tenants[1] === undefined ? tenantIdentity('tenant-b', 1002) : identity(tenants[1]);
  return [attacker, victim];
}

function attackCell(r: AttackResult): AttackCell {
  return {
    trials: r.rate.trials,
    successes: r.rate.successes,
    accuracy: r.rate.accuracy,
    ci95: r.rate.ci95,
    pValue: r.rate.pValue,
    verdict: r.rate.verdict,
    truePositiveRate: r.truePositiveRate,
    falsePositiveRate: r.falsePositiveRate,
    thresholdNs: r.threshold.thresholdNs,
    guessFaults: r.guessFaults,
  };
}
