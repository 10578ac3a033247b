/**
 * `ksmkit tune` as a daemon: the TuneLoop (src/tuner/loop.ts) on the real
 * host, every interval, with a daemon's manners:
 * - one instance: the machine-wide lock of SysfsGuard (another tune, or any
 *   ksmkit run driving ksmd, makes it refuse with the holder's pid);
 * - SIGTERM/SIGINT put back the settings it changed (SysfsGuard, without
 *   unmerging: see restoreOnly) unless `leaveSettings`; --once leaves them,
 *   being a one-shot tuning;
 * - SIGHUP rereads the configuration (the ksmtuned conf); SIGUSR1 retunes at
 *   once, as ksmtuned does when a guest starts or stops;
 * - every decision one line with its inputs and reason (journald levels when
 *   run by systemd), ksmtuned's own DEBUG lines under --policy ksmtuned with
 *   DEBUG set, and the decision exported for `status --prometheus` (and, with
 *   its reason, as JSON beside it for the live page's marks).
 * --dry-run decides and logs and writes nothing (and takes no lock).
 */
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { SysfsGuard } from '../../backend/kernel/sysfs-guard.ts';
import { KSM_SYSFS_DIR } from '../../surface/sysfs.ts';
import type { CowGuardConfig } from '../../tuner/cow-guard.ts';
import type { KsmtunedConfig } from '../../tuner/ksmtuned.ts';
import { parseKsmtunedConf } from '../../tuner/ksmtuned.ts';
import { type DecisionRecord, formatDecision, TuneLoop } from '../../tuner/loop.ts';
import { makeTuner, type TunerOptions, type TunerPolicyName } from '../../tuner/policies.ts';
import { type KernelHostSources, KernelTunerHost } from './kernel-host.ts';
import { formatTuneDecision, formatTuneMetrics, tuneDecisionFile } from './metrics.ts';

export interface TuneDaemonOptions {
  readonly policy: TunerPolicyName;
  readonly tuner: Omit<TunerOptions, 'ksmtuned'>;
  /** The ksmtuned conf to read (and reread on SIGHUP); undefined: ksmtuned's defaults. */
  readonly configPath: string | undefined;
  readonly cowGuard: CowGuardConfig;
  readonly dryRun: boolean;
  readonly once: boolean;
  readonly leaveSettings: boolean;
  readonly metricsFile: string | undefined;
  readonly sources: KernelHostSources;
  readonly lockPath: string | undefined;
  readonly lockTimeoutMs: number;
}

export interface TuneIo {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  /** Under systemd (JOURNAL_STREAM set): `<N>` syslog level prefixes, which journald reads. */
  readonly journal: boolean;
}

/** What owns the settings while the daemon runs: SysfsGuard on the real sysfs; a plain lock on a test directory. */
interface SettingsOwner {
  restoreOnly(values: ReadonlyMap<string, string>): void;
  release(): void;
}

/** A test directory in place of /sys/kernel/mm/ksm: the same restore through the host's own writes. */
class DirectoryOwner implements SettingsOwner {
  private values = new Map<string, string>();
  private released = false;
  constructor(
    private readonly host: KernelTunerHost,
    private readonly lockPath: string,
  ) {
    try {
      writeFileSync(lockPath, `${process.pid}\n`, { flag: 'wx' });
    } catch {
      throw new Error(
        `another ksmkit tune holds ${lockPath} (pid ${readFileSync(lockPath, 'latin1').trim()})`,
      );
    }
  }
  restoreOnly(values: ReadonlyMap<string, string>): void {
    this.values = new Map(values);
  }
  release(): void {
    if (this.released) return;
    this.released = true;
    // run last, as writeSettingsInOrder does.
    const order = [...this.values.keys()].sort((a, b) => Number(a === 'run') - Number(b === 'run'));
    for (const name of order) this.host.writeSetting(name as 'run', this.values.get(name)!);
    rmSync(this.lockPath, { force: true });
  }
}

function loadKsmtuned(path: string | undefined, io: TuneIo): KsmtunedConfig {
  const parsed = parseKsmtunedConf(path === undefined ? '' : readFileSync(path, 'latin1'), path);
  for (const w of parsed.warnings) io.err(`${io.journal ? '<4>' : ''}ksmkit tune: ${w}`);
  return parsed.config;
}

export async function runTuneDaemon(options: TuneDaemonOptions, io: TuneIo): Promise<number> {
  const host = new KernelTunerHost(options.sources);
  let ksmtuned = loadKsmtuned(options.configPath, io);
  const build = () => makeTuner(options.policy, { ...options.tuner, ksmtuned });
  const loop = new TuneLoop(host, build(), { dryRun: options.dryRun, cowGuard: options.cowGuard });
  const info = (line: string) => io.out(`${io.journal ? '<6>' : ''}${line}`);
  const warn = (line: string) => io.err(`${io.journal ? '<4>' : ''}ksmkit tune: ${line}`);

  let owner: SettingsOwner | undefined;
  if (!options.dryRun) {
    owner =
      options.sources.ksmDir === KSM_SYSFS_DIR
        ? await SysfsGuard.acquire({
            ...(options.lockPath === undefined ? {} : { lockPath: options.lockPath }),
            lockTimeoutMs: options.lockTimeoutMs,
            // A tuner runs on a host full of mergeable guests: that is what it tunes.
            force: true,
            signals: ['SIGINT', 'SIGTERM'],
          })
        : new DirectoryOwner(host, options.lockPath ?? `${options.sources.ksmDir}/.ksmkit-tune.lock`);
    // Until the first write nothing needs restoring.
    owner.restoreOnly(new Map());
  }

  const step = (why: string): DecisionRecord => {
    const r = loop.step();
    info(`${formatDecision(r)}${why === '' ? '' : ` trigger=${why}`}`);
    for (const w of r.decision.warnings) warn(w);
    for (const f of r.failures) warn(`the kernel refused ${f}`);
    if (options.policy === 'ksmtuned' && ksmtuned.DEBUG !== '')
      writeKsmtunedDebug(ksmtuned, r.decision.debug, io);
    if (!options.leaveSettings && !options.once) owner?.restoreOnly(loop.originals);
    if (options.metricsFile !== undefined) {
      const nowMs = Date.now();
      writeAtomically(options.metricsFile, formatTuneMetrics(r, nowMs));
      writeAtomically(tuneDecisionFile(options.metricsFile), formatTuneDecision(r, nowMs));
    }
    return r;
  };

  if (options.once) {
    try {
      step('once');
    } finally {
      owner?.release();
    }
    return 0;
  }

  info(
    `ksmkit tune: policy=${options.policy} interval_s=${loop.policy.intervalMs / 1000}` +
      `${options.dryRun ? ' dry_run=1' : ''} pid=${process.pid}`,
  );
  return await new Promise<number>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const schedule = (ms: number) => {
      clearTimeout(timer);
      timer = setTimeout(tick, ms);
    };
    const tick = (why = 'interval') => {
      try {
        step(why);
      } catch (e) {
        warn(`step failed: ${(e as Error).message}`);
      }
      schedule(loop.policy.intervalMs);
    };
    const stop = (signal: NodeJS.Signals) => {
      clearTimeout(timer);
      for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR1'] as const) process.removeAllListeners(s);
      let code = 0;
      try {
        owner?.release();
        const what = options.leaveSettings ? 'left as they are' : describeRestore(loop.originals);
        info(`ksmkit tune: ${signal}: stopping; settings ${what}`);
      } catch (e) {
        warn((e as Error).message);
        code = 1;
      }
      resolve(code);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      try {
        ksmtuned = loadKsmtuned(options.configPath, io);
        loop.replaceTuner(build());
        info(
          `ksmkit tune: SIGHUP: configuration reread${options.configPath === undefined ? '' : ` from ${options.configPath}`}`,
        );
      } catch (e) {
        warn(`SIGHUP: configuration not reread, the old one stays: ${(e as Error).message}`);
      }
    });
    process.on('SIGUSR1', () => tick('SIGUSR1'));
    if (loop.policy.firstDecisionAfterInterval) schedule(loop.policy.intervalMs);
    else tick('start');
  });
}

function describeRestore(originals: ReadonlyMap<string, string>): string {
  if (originals.size === 0) return 'untouched (nothing was changed)';
  return `restored: ${[...originals].map(([k, v]) => `${k}=${v}`).join(' ')}`;
}

/** ksmtuned's `debug`: `` `/bin/date`: message `` to LOGFILE, or to stdout when LOGFILE is empty. */
function writeKsmtunedDebug(config: KsmtunedConfig, lines: readonly string[], io: TuneIo): void {
  const date = dateLikeBinDate(new Date());
  for (const line of lines) {
    const text = `${date}: ${line}`;
    if (config.LOGFILE === '') io.out(text);
    else appendFileSync(config.LOGFILE, `${text}\n`);
  }
}

/** Readers (status --prometheus, node_exporter's textfile collector) never see half a file. */
function writeAtomically(path: string, text: string): void {
  const dir = dirname(path);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `date`'s default output in the C locale: `Sun Dec  6 00:47:47 UTC 2026`. */
export function dateLikeBinDate(d: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  const zone =
    new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' })
      .formatToParts(d)
      .find((p) => p.type === 'timeZoneName')?.value ?? 'UTC';
  return (
    `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ` +
    `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())} ${zone === 'GMT' ? 'UTC' : zone} ${d.getFullYear()}`
  );
}
