/**
 * The KSM write-timing side channel on the simulated host (Suzaki et al.
 * 2011; Bosman et al., "Dedup Est Machina", 2016): an attacker that wants to
 * know whether a victim holds a page of given contents maps a page of those
 * contents itself, marks it mergeable, waits for ksmd, and writes to it. If
 * the page was merged, the write takes a copy-on-write fault (microseconds);
 * if not, it is a plain store (tens of nanoseconds).
 *
 * Here: a victim process holds `guesses` secret pages (random contents); the
 * attacker maps as many guesses, exactly half of them right (which ones is
 * drawn from the seed), plus pages whose state it knows: pairs of equal pages
 * of its own (known merged, if anything merges) and unique pages. Both mark
 * their memory MADV_MERGEABLE; the host operator turns ksmd on (refused under
 * a policy that forbids it) and ksmd runs `fullScans` passes. The attacker
 * then writes one byte to every page; the fault each write meets
 * (`host.lastAccessFault`) becomes a time through the write-timing model. It
 * sets its threshold from its own known pages, as a real attacker would, and
 * calls a guess right when its write is slower. Under a policy that makes
 * every write alike, its accuracy falls to chance.
 *
 * Placement: `cross-tenant` puts attacker and victim in different tenants
 * (uid, cgroup and label all differ, so every trust-domain key separates
 * them); `within-tenant` puts both in one tenant.
 */
import { Rng } from '../fuzz/rng.ts';
import { ErrnoError } from '../host/errno.ts';
import type { AccessFault } from '../host/host.ts';
import type { PolicyConfig } from '../policy/policy.ts';
import { SimulatedHost } from '../surface/simulated-host.ts';
import type { SysfsSetting } from '../workload/workload.ts';
import {
  calibrateThreshold,
  type SuccessRate,
  successRate,
  type Threshold,
  trialsForHalfWidth,
  zForConfidence,
} from './stats.ts';
import { ACCESS_FAULTS, MEASURED_TIMING, sampleWriteNs, type WriteTimingModel } from './timing-model.ts';

export type AttackPlacement = 'cross-tenant' | 'within-tenant';
export const ATTACK_PLACEMENTS: readonly AttackPlacement[] = ['cross-tenant', 'within-tenant'];

/** Enough guesses that a 50% accuracy has a 95% interval of +-2 points (2,401). */
export const DEFAULT_GUESSES = trialsForHalfWidth(0.02) + 1;

export interface TenantIdentity {
  readonly uid: number;
  readonly cgroup: string;
  readonly label: string;
}

export function tenantIdentity(name: string, uid: number): TenantIdentity {
  return { uid, cgroup: `/tenants/${name}`, label: name };
}

export interface AttackOptions {
  readonly policy: PolicyConfig;
  readonly placement: AttackPlacement;
  /** Guesses (the trials); even, >= 2. Default DEFAULT_GUESSES (rounded up to even). */
  readonly guesses?: number;
  /** Known-merged pages (in equal pairs) and as many known-unique pages the attacker calibrates on. Default 256. */
  readonly calibrationPages?: number;
  /** ksmd passes before the attacker writes. Default 3 (a pair merges in the second). */
  readonly fullScans?: number;
  /**
   * Instead of `fullScans`: how long ksmd runs on the virtual clock at the
   * settings in force (pages_to_scan, sleep_millisecs), as an attacker that
   * waits a given time would.
   */
  readonly ksmdMs?: number;
  /** Whether the host's operator (root, CAP_SYS_ADMIN) turns ksmd on; default true. */
  readonly operatorEnablesKsmd?: boolean;
  /** /sys/kernel/mm/ksm settings written before ksmd starts. */
  readonly settings?: readonly SysfsSetting[];
  readonly seed?: number;
  readonly timing?: WriteTimingModel;
  /** Confidence of the interval behind the verdict; default 0.95 (a table of many cells corrects it). */
  readonly confidence?: number;
  /** Tenants (default tenant-a for the attacker, tenant-b for a cross-tenant victim). */
  readonly attacker?: TenantIdentity;
  readonly victim?: TenantIdentity;
}

export interface AttackResult {
  readonly policy: PolicyConfig;
  readonly placement: AttackPlacement;
  /** Whether ksmd ran; `refused` holds the errno of the operator's write when the policy refused it. */
  readonly ksmd: { readonly running: boolean; readonly refused?: string };
  /** Full passes ksmd completed before the attacker wrote. */
  readonly fullScans: number;
  readonly threshold: Threshold;
  /** Right answers over all guesses, with the 95% Wilson interval, p-value against 0.5 and verdict. */
  readonly rate: SuccessRate;
  /** Right guesses called right (merged). */
  readonly truePositiveRate: number;
  /** Wrong guesses called right. */
  readonly falsePositiveRate: number;
  /** Faults the guess writes met, by kind (why the attack works or not). */
  readonly guessFaults: Readonly<Record<AccessFault, number>>;
  readonly timingOrigin: string;
}

const PAGE = 4096;

/** Runs the attack once. Deterministic: the same options give the same result. */
export function runAttack(options: AttackOptions): AttackResult {
  const guesses = options.guesses ?? DEFAULT_GUESSES + (DEFAULT_GUESSES % 2);
  const calibration = options.calibrationPages ?? 256;
  const fullScans = options.fullScans ?? 3;
  if (!Number.isSafeInteger(guesses) || guesses < 2 || guesses % 2 !== 0)
    throw new RangeError(`guesses must be an even integer >= 2, got ${guesses}`);
  if (!Number.isSafeInteger(calibration) || calibration < 2 || calibration % 2 !== 0)
    throw new RangeError(`calibrationPages must be an even integer >= 2, got ${calibration}`);
  if (!Number.isSafeInteger(fullScans) || fullScans < 0)
    throw new RangeError(`fullScans must be an integer >= 0, got ${fullScans}`);
  if (options.ksmdMs !== undefined && !(options.ksmdMs >= 0 && Number.isFinite(options.ksmdMs)))
    throw new RangeError(`ksmdMs must be a duration >= 0 in ms, got ${options.ksmdMs}`);
  const timing = options.timing ?? MEASURED_TIMING;
  const rng = new Rng(options.seed ?? 1);
  const attackerTenant = options.attacker ?? tenantIdentity('tenant-a', 1001);
  const victimTenant =
    options.victim ??
    (options.placement === 'cross-tenant' ? tenantIdentity('tenant-b', 1002) : attackerTenant);

  const attackerPages = 2 * calibration + guesses;
  const sim = new SimulatedHost({
    memoryBytes: (attackerPages + guesses + 1024) * PAGE,
    thp: 'never',
    policy: options.policy,
  });
  const host = sim.host;
  const victim = host.spawn({ comm: 'victim', ...victimTenant, capSysAdmin: false });
  const attacker = host.spawn({ comm: 'attacker', ...attackerTenant, capSysAdmin: false });

  // The victim's secrets.
  const secrets: [number, number][] = [];
  const victimBase = host.mmap(victim.pid, { lengthBytes: guesses * PAGE });
  for (let i = 0; i < guesses; i++) {
    const value = randomValue(rng);
    secrets.push(value);
    host.writePageValue(victim.pid, victimBase + i * PAGE, value[0], value[1]);
  }
  host.madvise(victim.pid, victimBase, guesses * PAGE, 'mergeable');

  // The attacker's pages: [merged pairs | unique | guesses].
  const right = shuffled(
    Array.from({ length: guesses }, (_, i) => i < guesses / 2),
    rng,
  );
  const base = host.mmap(attacker.pid, { lengthBytes: attackerPages * PAGE });
  let page = 0;
  for (let i = 0; i < calibration / 2; i++) {
    const value = randomValue(rng);
    host.writePageValue(attacker.pid, base + page++ * PAGE, value[0], value[1]);
    host.writePageValue(attacker.pid, base + page++ * PAGE, value[0], value[1]);
  }
  for (let i = 0; i < calibration; i++) {
    const value = randomValue(rng);
    host.writePageValue(attacker.pid, base + page++ * PAGE, value[0], value[1]);
  }
  const guessBase = page;
  for (let i = 0; i < guesses; i++) {
    const value = right[i] ? secrets[i]! : randomValue(rng);
    host.writePageValue(attacker.pid, base + page++ * PAGE, value[0], value[1]);
  }
  host.madvise(attacker.pid, base, attackerPages * PAGE, 'mergeable');

  // The operator sets ksmd up and turns it on (a policy may refuse).
  const operator = host.spawn({ comm: 'ksmctl' });
  for (const { name, value } of options.settings ?? []) sim.writeSysfsAs(operator.pid, name, value);
  let refused: string | undefined;
  if (options.operatorEnablesKsmd ?? true) {
    try {
      sim.writeSysfsAs(operator.pid, 'run', '1');
    } catch (e) {
      if (!(e instanceof ErrnoError)) throw e;
      refused = e.code;
    }
  }
  const running = sim.counter('run') === 1;
  if (running && options.ksmdMs !== undefined) sim.ksm.advance(options.ksmdMs);
  else if (running) sim.ksm.fullScans(fullScans);

  // One byte per page; the host says which fault each write met.
  const byte = new Uint8Array([0xa5]);
  const writeNs = (p: number): { ns: number; fault: AccessFault } => {
    host.write(attacker.pid, base + p * PAGE + 1, byte);
    const fault = host.lastAccessFault;
    return { ns: sampleWriteNs(timing, fault, rng), fault };
  };
  const mergedNs: number[] = [];
  const uniqueNs: number[] = [];
  for (let p = 0; p < calibration; p++) mergedNs.push(writeNs(p).ns);
  for (let p = calibration; p < 2 * calibration; p++) uniqueNs.push(writeNs(p).ns);
  const threshold = calibrateThreshold(mergedNs, uniqueNs);

  const guessFaults = Object.fromEntries(ACCESS_FAULTS.map((k) => [k, 0])) as Record<AccessFault, number>;
  let correct = 0;
  let truePositives = 0;
  let falsePositives = 0;
  for (let i = 0; i < guesses; i++) {
    const { ns, fault } = writeNs(guessBase + i);
    guessFaults[fault]++;
    const saysRight = ns > threshold.thresholdNs;
    if (saysRight === right[i]) correct++;
    if (saysRight && right[i]) truePositives++;
    if (saysRight && !right[i]) falsePositives++;
  }
  return {
    policy: options.policy,
    placement: options.placement,
    ksmd: refused === undefined ? { running } : { running, refused },
    fullScans: sim.ksm.seqnr,
    threshold,
    rate: successRate(correct, guesses, zForConfidence(options.confidence ?? 0.95)),
    truePositiveRate: truePositives / (guesses / 2),
    falsePositiveRate: falsePositives / (guesses / 2),
    guessFaults,
    timingOrigin: timing.origin,
  };
}

/** A page value no other draw is likely to repeat (64 random bits). */
function randomValue(rng: Rng): [number, number] {
  return [rng.nextU32(), rng.nextU32()];
}

function shuffled<T>(items: T[], rng: Rng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
