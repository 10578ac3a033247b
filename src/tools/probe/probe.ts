/**
 * `ksmkit probe`: the KSM write-timing side channel, run on this machine
 * between two processes of our own and never against anything else.
 *
 * A round:
 * 1. the machine's KSM settings are taken over (SysfsGuard: the machine-wide
 *    lock, every setting saved and restored on every exit path), ksmd is set
 *    to the asked pacing and run=1 (it idles until someone opts in);
 * 2. the victim maps N pages of secret random contents and opts in
 *    (MADV_MERGEABLE); it touches nothing after;
 * 3. the attacker maps N guesses (exactly half are victim secrets, the truth
 *    kept here for scoring only), K pairs of pages it made identical and K
 *    unique pages, shuffled together, and opts in: the attack's clock starts;
 * 4. the attacker waits for ksmd with what any unprivileged process can read:
 *    /sys/kernel/mm/ksm/full_scans (world-readable) and its own
 *    /proc/self/ksm_merging_pages. Merging needs two passes that see both
 *    processes (the first records checksums, the second merges), and the
 *    attacker, opting in last, is linked in just behind ksmd's cursor, so the
 *    pass under way when it opts in usually misses it. Its rule: once its own
 *    2K calibration pages show as merged, the merging pass is under way; when
 *    full_scans moves on from there, that pass, which also met every guess, is
 *    over;
 * 5. the attacker times one write to every page of its region, takes its
 *    threshold from its calibration pages alone (`bestSplitThreshold`), and
 *    calls each guess merged or not; the attack's clock stops at the last write.
 * Then both processes exit and the settings go back.
 *
 * The score compares the verdicts with the truth; the leak rate takes each
 * guess as one use of a binary symmetric channel (stats.ts, `leakRate`).
 */
import { accessSync, existsSync, constants as fsConstants, readFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import {
  KSM_DIR,
  readKsm,
  readKsmNumber,
  selectedWord,
  writeKsmOrThrow,
} from '../../backend/kernel/ksm-sysfs.ts';
import { type MergeableProcess, mergeableProcesses, SysfsGuard } from '../../backend/kernel/sysfs-guard.ts';
import { ProbeChild } from './child.ts';
import { buildRoundPages } from './pages.ts';
import {
  bestSplitThreshold,
  classify,
  type LeakRate,
  leakRate,
  type Score,
  score,
  scoreFromCounts,
} from './stats.ts';

/** Where scripts/build-agent.mjs puts the helper (the same from src/ and from dist/). */
export const DEFAULT_PROBE_HELPER = fileURLToPath(
  new URL('../../../native/build/ksmkit-probe', import.meta.url),
);

export function probeHelperPathFromEnv(): string {
  const fromEnv = process.env.KSMKIT_PROBE_HELPER;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_PROBE_HELPER;
}

/** The kernel's defaults (mm/ksm.c: ksm_thread_pages_to_scan = 100, ksm_thread_sleep_millisecs = 20). */
export const DEFAULT_PACING = { pagesToScan: 100, sleepMillisecs: 20 } as const;
/**
 * As fast as ksmd goes: no sleep between batches. The batch stays bounded
 * (10,000 pages, about 10 ms of ksmd) because ksmd holds ksm_thread_mutex for
 * a whole batch, and every sysfs write, the restore included, waits for it.
 */
export const UNTHROTTLED_PACING = { pagesToScan: 10_000, sleepMillisecs: 0 } as const;
/** The largest --pages-to-scan accepted, for the same reason (a batch of this many takes about 0.1 s). */
export const MAX_PAGES_TO_SCAN = 100_000;

export interface ProbeOptions {
  /** Victim pages = attacker guesses; even. */
  readonly pages: number;
  readonly seed: number;
  readonly rounds: number;
  /** K: identical pairs and unique pages of the attacker's calibration. */
  readonly calibrationPairs: number;
  readonly pagesToScan: number;
  readonly sleepMillisecs: number;
  readonly preset: 'default' | 'unthrottled' | 'custom';
  /** Give up waiting for ksmd after this long, per round; default from the pacing. */
  readonly waitTimeoutMs?: number;
  readonly helperPath?: string;
  readonly lockTimeoutMs?: number;
  /** Progress lines (stderr). */
  readonly log?: (line: string) => void;
}

export interface RoundResult {
  readonly round: number;
  readonly seed: number;
  readonly thresholdNs: number;
  /** Write times of the guesses, in guess order; `truth[g]`: guess g was a victim page. */
  readonly guessNs: readonly number[];
  readonly truth: readonly boolean[];
  readonly verdicts: readonly boolean[];
  /** The attacker's calibration writes: pages it made identical (merged) and unique (private). */
  readonly calibrationMergedNs: readonly number[];
  readonly calibrationPrivateNs: readonly number[];
  readonly score: Score;
  /** Opt-in to the last timed write. */
  readonly attackNs: number;
  /** Opt-in to the first timed write: waiting for ksmd. */
  readonly waitNs: number;
  /** The timed writes, all pages of the attacker's region. */
  readonly writesNs: number;
  /** full_scans moved on this much between the attacker's opt-in and its first timed write. */
  readonly fullScans: number;
  /** pages_sharing just before the timed writes (the victim's pages the attacker shares, plus its pairs). */
  readonly pagesSharing: number;
  readonly victimPid: number;
  readonly attackerPid: number;
}

export interface ProbeResult {
  readonly options: Omit<ProbeOptions, 'log' | 'helperPath' | 'lockTimeoutMs'>;
  readonly host: { readonly kernel: string; readonly cpu: string; readonly cpuCount: number };
  /** ksmd's settings during the rounds, as read back. */
  readonly settingsInForce: Readonly<Record<string, string>>;
  /** Other mergeable processes found once the lock was ours (their pages lengthen every pass). */
  readonly otherMergeable: readonly MergeableProcess[];
  readonly rounds: readonly RoundResult[];
  /** All rounds together. */
  readonly score: Score;
  readonly leak: LeakRate;
  /**
   * Whether every saved setting went back: release() succeeded, and each file
   * read back afterwards equals what was saved (`differing` lists any that do
   * not, as `name: saved -> now`); run as read back.
   */
  readonly restored: {
    readonly ok: boolean;
    readonly run: string;
    readonly differing: readonly string[];
    readonly error?: string;
  };
}

/** Why the probe cannot run here, or undefined when it can. */
export function probeUnavailable(
  helperPath: string = probeHelperPathFromEnv(),
  uid: number | undefined = process.getuid?.(),
): string | undefined {
  if (process.platform !== 'linux') return `it needs Linux with KSM, not ${process.platform}`;
  if (!existsSync(`${KSM_DIR}/run`)) return `${KSM_DIR} does not exist: this kernel has no KSM (CONFIG_KSM)`;
  if (uid !== 0) {
    return `it needs root: it writes ksmd's settings in ${KSM_DIR} (run, pages_to_scan, sleep_millisecs) and puts them back after`;
  }
  try {
    accessSync(`${KSM_DIR}/run`, fsConstants.W_OK);
  } catch {
    return `${KSM_DIR}/run is not writable (read-only sysfs in a container?)`;
  }
  try {
    accessSync(helperPath, fsConstants.X_OK);
  } catch {
    return `its helper ${helperPath} is not built: run node scripts/build-agent.mjs (it needs a C compiler)`;
  }
  return undefined;
}

/** How long one full pass over `pages` takes at this pacing, at least (batches × sleep). */
export function passEstimateMs(
  pages: number,
  pacing: { pagesToScan: number; sleepMillisecs: number },
): number {
  return Math.ceil(pages / pacing.pagesToScan) * pacing.sleepMillisecs;
}

function passNote(passMs: number): string {
  if (passMs === 0) return 'it does not sleep between batches';
  return `one pass sleeps ${passMs < 1000 ? `${passMs} ms` : `${(passMs / 1000).toFixed(1)} s`} at least`;
}

function ksmMergingPages(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/ksm_merging_pages`, 'latin1').trim());
}

const POLL_MS = 2;

/**
 * Waits the way the attacker can (see step 4 at the top); returns the
 * full_scans value when done. Throws after the timeout.
 */
async function waitForMergingPass(
  attackerPid: number,
  calibrationPages: number,
  timeoutMs: number,
  startScans: number,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let scansWhenSeen: number | undefined;
  for (;;) {
    const scans = readKsmNumber('full_scans');
    if (scansWhenSeen === undefined && ksmMergingPages(attackerPid) >= calibrationPages)
      scansWhenSeen = scans;
    if (scansWhenSeen !== undefined && scans > scansWhenSeen) return scans;
    if (performance.now() > deadline) {
      throw new Error(
        `ksmd did not merge the attacker's calibration pairs within ${(timeoutMs / 1000).toFixed(1)} s ` +
          `(full_scans moved on by ${scans - startScans}; ${ksmMergingPages(attackerPid)} of its ` +
          `${calibrationPages} calibration pages merged)`,
      );
    }
    await sleep(POLL_MS);
  }
}

async function runRound(
  round: number,
  options: ProbeOptions,
  helperPath: string,
  children: Set<ProbeChild>,
): Promise<RoundResult> {
  const seed = options.seed + round;
  const pages = buildRoundPages({ seed, pages: options.pages, calibrationPairs: options.calibrationPairs });
  const log = options.log ?? (() => undefined);
  const victim = await ProbeChild.start(helperPath, 'victim', pages.victim);
  children.add(victim);
  try {
    const attacker = await ProbeChild.start(helperPath, 'attacker', pages.attacker);
    children.add(attacker);
    try {
      await victim.command('merge', 'merged');
      const optInNs = Number((await attacker.command('merge', 'merged'))[0]);
      const startScans = readKsmNumber('full_scans');
      const regionPages = pages.attackerLayout.length;
      const timeoutMs =
        options.waitTimeoutMs ?? 30_000 + 20 * passEstimateMs(regionPages + options.pages, options);
      log(
        `round ${round + 1}: victim pid ${victim.pid} (${options.pages} pages), attacker pid ${attacker.pid} ` +
          `(${options.pages} guesses, ${2 * options.calibrationPairs} paired and ${options.calibrationPairs} unique pages); ` +
          `waiting for ksmd (${passNote(passEstimateMs(regionPages + options.pages, options))})`,
      );
      const endScans = await waitForMergingPass(
        attacker.pid,
        2 * options.calibrationPairs,
        timeoutMs,
        startScans,
      );
      const pagesSharing = readKsmNumber('pages_sharing');
      const reply = await attacker.command('time', 'times');
      const startNs = Number(reply[0]);
      const endNs = Number(reply[1]);
      const durations = reply.slice(2).map(Number);
      if (durations.length !== regionPages || durations.some((d) => !Number.isFinite(d))) {
        throw new Error(`the attacker sent ${durations.length} write times for ${regionPages} pages`);
      }
      const guessNs = new Array<number>(options.pages).fill(0);
      const calibrationMergedNs: number[] = [];
      const calibrationPrivateNs: number[] = [];
      pages.attackerLayout.forEach((page, i) => {
        const ns = durations[i]!;
        if (page.kind === 'guess') guessNs[page.guess] = ns;
        else if (page.kind === 'pair') calibrationMergedNs.push(ns);
        else calibrationPrivateNs.push(ns);
      });
      // The attacker's side: its own calibration and its guesses' times; the truth comes in only at score().
      const thresholdNs = bestSplitThreshold(calibrationMergedNs, calibrationPrivateNs);
      const verdicts = classify(guessNs, thresholdNs);
      return {
        round,
        seed,
        thresholdNs,
        guessNs,
        truth: pages.truth,
        verdicts,
        calibrationMergedNs,
        calibrationPrivateNs,
        score: score(verdicts, pages.truth),
        attackNs: endNs - optInNs,
        waitNs: startNs - optInNs,
        writesNs: endNs - startNs,
        fullScans: endScans - startScans,
        pagesSharing,
        victimPid: victim.pid,
        attackerPid: attacker.pid,
      };
    } finally {
      await attacker.exit();
      children.delete(attacker);
    }
  } finally {
    await victim.exit();
    children.delete(victim);
  }
}

function readSettings(): Record<string, string> {
  const names = [
    'run',
    'pages_to_scan',
    'sleep_millisecs',
    'merge_across_nodes',
    'use_zero_pages',
    'smart_scan',
    'advisor_mode',
    'max_page_sharing',
  ];
  const out: Record<string, string> = {};
  for (const n of names) {
    if (!existsSync(`${KSM_DIR}/${n}`)) continue;
    const text = readKsm(n);
    out[n] = n === 'advisor_mode' ? selectedWord(text) : text;
  }
  return out;
}

/** The saved settings that do not read back as saved, as `name: saved -> now`. */
function settingsDiffering(saved: ReadonlyMap<string, string>): string[] {
  const out: string[] = [];
  for (const [name, value] of saved) {
    const text = readKsm(name);
    const now = name === 'advisor_mode' ? selectedWord(text) : text;
    if (now !== value) out.push(`${name}: ${value} -> ${now}`);
  }
  return out;
}

/** Sums the rounds' confusion counts. */
export function totalScore(rounds: readonly { score: Score }[]): Score {
  const c = { tp: 0, fp: 0, tn: 0, fn: 0 };
  for (const r of rounds) {
    c.tp += r.score.truePositives;
    c.fp += r.score.falsePositives;
    c.tn += r.score.trueNegatives;
    c.fn += r.score.falseNegatives;
  }
  return scoreFromCounts(c);
}

/** Runs the probe; throws with a one-line reason if it cannot run here or ksmd never merged. */
export async function runProbe(options: ProbeOptions): Promise<ProbeResult> {
  const helperPath = options.helperPath ?? probeHelperPathFromEnv();
  const unavailable = probeUnavailable(helperPath);
  if (unavailable !== undefined) throw new ProbeUnavailableError(unavailable);
  const log = options.log ?? (() => undefined);
  // Other mergeable processes are listed, not refused: their pages share nothing with our random ones
  // and only lengthen ksmd's passes, which is part of what the attack has to wait for on this machine.
  const guard = await SysfsGuard.acquire({
    force: true,
    ...(options.lockTimeoutMs === undefined ? {} : { lockTimeoutMs: options.lockTimeoutMs }),
  });
  const children = new Set<ProbeChild>();
  guard.onBeforeRestore(() => {
    for (const c of children) c.kill();
  });
  const rounds: RoundResult[] = [];
  let settingsInForce: Record<string, string> = {};
  let otherMergeable: MergeableProcess[] = [];
  let restored: ProbeResult['restored'] | undefined;
  try {
    otherMergeable = mergeableProcesses();
    if (otherMergeable.length > 0) {
      log(
        `note: ${otherMergeable.length} other process(es) are mergeable; ksmd's passes include their pages`,
      );
    }
    if (existsSync(`${KSM_DIR}/advisor_mode`) && selectedWord(readKsm('advisor_mode')) !== 'none') {
      // pages_to_scan is refused (EINVAL) while the scan-time advisor sets it.
      writeKsmOrThrow('advisor_mode', 'none');
    }
    writeKsmOrThrow('pages_to_scan', String(options.pagesToScan));
    writeKsmOrThrow('sleep_millisecs', String(options.sleepMillisecs));
    // ksmd runs before anyone opts in, as on a host where KSM is on: it idles until a process does.
    writeKsmOrThrow('run', '1');
    settingsInForce = readSettings();
    for (let r = 0; r < options.rounds; r++) rounds.push(await runRound(r, options, helperPath, children));
  } finally {
    for (const c of children) c.kill();
    let error: string | undefined;
    try {
      guard.release();
    } catch (e) {
      error = (e as Error).message;
    }
    const differing = settingsDiffering(guard.saved);
    restored = {
      ok: error === undefined && differing.length === 0,
      run: readKsm('run'),
      differing,
      ...(error === undefined ? {} : { error }),
    };
  }
  const total = totalScore(rounds);
  const attackSeconds = rounds.reduce((s, r) => s + r.attackNs, 0) / 1e9;
  const { log: _log, helperPath: _helper, lockTimeoutMs: _lock, ...shown } = options;
  return {
    options: shown,
    host: { kernel: release(), cpu: cpus()[0]?.model.trim() ?? 'unknown', cpuCount: cpus().length },
    settingsInForce,
    otherMergeable,
    rounds,
    score: total,
    leak: leakRate({
      guesses: options.pages * rounds.length,
      errors: total.falsePositives + total.falseNegatives,
      attackSeconds,
    }),
    restored,
  };
}

/** The probe cannot run on this machine (not root, no KSM, helper not built). */
export class ProbeUnavailableError extends Error {
  override readonly name = 'ProbeUnavailableError';
}
