/**
 * ksmtuned (Debian package `ksmtuned` 4.20150326, /usr/sbin/ksmtuned, a bash
 * script by Dan Kenigsberg, Red Hat), decision for decision. Held against the
 * script itself, run on recorded inputs, by ksmtuned-oracle.test.ts.
 *
 * At start the script reads MemTotal once and fixes, in bash integer
 * arithmetic (division truncates):
 *   sleep = KSM_SLEEP_MSEC * 16 * 1024 * 1024 / total, raised to 10 when <= 10
 *   thres = total * KSM_THRES_COEF / 100, raised to KSM_THRES_CONST (kB!)
 *   npages = 0
 * Then every KSM_MONITOR_INTERVAL seconds (or at once on SIGUSR1), `adjust`:
 *   free = MemFree + Buffers + Cached; committed = summed RSS of `^qemu-system.*-enable-kvm`
 *   committed + thres < total and free > thres  -> run=0 (npages kept)
 *   otherwise npages += BOOST if free < thres else DECAY (free == thres decays),
 *   clamped to [MIN, MAX]; pages_to_scan=npages, sleep_millisecs=sleep, run=1.
 *
 * Its traps, which the replay scenarios show: the start gate counts page
 * cache as free (a host full of cache never looks short), KSM_THRES_CONST is
 * in kB (2048 is 2 MiB, not 2 GiB), MemTotal and so the sleep are read once,
 * and its "start ksm" debug line claims committed + thres > total even when
 * only the free-memory half of the test started it. DEBUG is tested with
 * `[ -n "$DEBUG" ]`: DEBUG=0 turns debugging on too.
 */
import type { Measured, Tuner, TunerDecision, TunerInputs } from './inputs.ts';

export interface KsmtunedConfig {
  readonly KSM_MONITOR_INTERVAL: number;
  readonly KSM_SLEEP_MSEC: number;
  readonly KSM_NPAGES_BOOST: number;
  readonly KSM_NPAGES_DECAY: number;
  readonly KSM_NPAGES_MIN: number;
  readonly KSM_NPAGES_MAX: number;
  readonly KSM_THRES_COEF: number;
  readonly KSM_THRES_CONST: number;
  /** Where DEBUG lines go; '' for stdout. */
  readonly LOGFILE: string;
  /** Non-empty turns the DEBUG lines on (any value, "0" included, as `[ -n "$DEBUG" ]`). */
  readonly DEBUG: string;
}

/** The script's `${KEY:-default}` values. */
export const KSMTUNED_DEFAULTS: KsmtunedConfig = {
  KSM_MONITOR_INTERVAL: 60,
  KSM_SLEEP_MSEC: 10,
  KSM_NPAGES_BOOST: 300,
  KSM_NPAGES_DECAY: -50,
  KSM_NPAGES_MIN: 64,
  KSM_NPAGES_MAX: 1250,
  KSM_THRES_COEF: 20,
  KSM_THRES_CONST: 2048,
  LOGFILE: '',
  DEBUG: '',
};

const NUMERIC_KEYS = [
  'KSM_MONITOR_INTERVAL',
  'KSM_SLEEP_MSEC',
  'KSM_NPAGES_BOOST',
  'KSM_NPAGES_DECAY',
  'KSM_NPAGES_MIN',
  'KSM_NPAGES_MAX',
  'KSM_THRES_COEF',
  'KSM_THRES_CONST',
] as const;
const STRING_KEYS = ['LOGFILE', 'DEBUG'] as const;
/** Keys the script reads that ksmkit has no use for (the pid file is ksmtuned's; ours is the lock). */
const IGNORED_KEYS = new Set(['PIDFILE']);

export interface ParsedKsmtunedConf {
  readonly config: KsmtunedConfig;
  /** Lines that are harmless but not what ksmtuned reads (unknown keys), one message each. */
  readonly warnings: readonly string[];
}

export class KsmtunedConfError extends Error {
  override name = 'KsmtunedConfError';
}

/** A value as a plain word, or quoted: no expansion, substitution or second command. */
function unquote(raw: string): string | undefined {
  const single = /^'([^']*)'$/.exec(raw);
  if (single !== null) return single[1];
  const double = /^"([^"$`\\]*)"$/.exec(raw);
  if (double !== null) return double[1];
  return /^[^\s'"$`\\;&|<>(){}]*$/.test(raw) ? raw : undefined;
}

/**
 * /etc/ksmtuned.conf, parsed as the plain assignments it holds and never run:
 * ksmtuned sources it as shell, as root. A line that is anything else (a
 * command, a substitution, an expansion) is refused with its line number,
 * naming what is allowed. Empty values take the default, as `${KEY:-default}`.
 */
export function parseKsmtunedConf(text: string, fileName = '/etc/ksmtuned.conf'): ParsedKsmtunedConf {
  const values: Record<string, number | string> = { ...KSMTUNED_DEFAULTS };
  const warnings: string[] = [];
  const errors: string[] = [];
  text.split('\n').forEach((line, index) => {
    const where = `${fileName}:${index + 1}`;
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(\S*)(?:\s+#.*)?$/.exec(trimmed);
    const value = m === null ? undefined : unquote(m[2]!);
    if (m === null || value === undefined) {
      errors.push(
        `${where}: not a plain KEY=value assignment: ${JSON.stringify(trimmed)} (ksmkit reads the file, never runs it; ` +
          'allowed: KEY=word, KEY="text", KEY=\'text\', comments)',
      );
      return;
    }
    const key = m[1]!;
    if ((NUMERIC_KEYS as readonly string[]).includes(key)) {
      if (value === '') {
        values[key] = KSMTUNED_DEFAULTS[key as (typeof NUMERIC_KEYS)[number]];
      } else if (/^-?\d+$/.test(value) && Number.isSafeInteger(Number(value))) {
        values[key] = Number(value);
      } else {
        errors.push(`${where}: ${key} must be an integer, got ${JSON.stringify(value)}`);
      }
    } else if ((STRING_KEYS as readonly string[]).includes(key)) {
      values[key] = value;
    } else if (!IGNORED_KEYS.has(key)) {
      warnings.push(
        `${where}: ${key} is not a ksmtuned setting (known: ${[...NUMERIC_KEYS, ...STRING_KEYS].join(', ')}); ignored`,
      );
    }
  });
  if (errors.length > 0) throw new KsmtunedConfError(errors.join('\n'));
  const config = values as unknown as KsmtunedConfig;
  if (config.KSM_MONITOR_INTERVAL <= 0)
    throw new KsmtunedConfError(`${fileName}: KSM_MONITOR_INTERVAL must be at least 1 second`);
  return { config, warnings };
}

/** What the script fixes at start (from MemTotal) and carries from one `adjust` to the next. */
export interface KsmtunedState {
  readonly total: number;
  readonly sleep: number;
  readonly thres: number;
  readonly npages: number;
}

/** bash's `$[a / b]`: 64-bit integers, division truncated toward zero. */
function bashDiv(a: number, b: number): number {
  return Math.trunc(a / b);
}

/** The script's start: total, sleep and thres from MemTotal, with their DEBUG lines. */
export function ksmtunedStart(
  config: KsmtunedConfig,
  memTotalKb: number,
): { state: KsmtunedState; debug: string[] } {
  const total = memTotalKb;
  let sleep = bashDiv(config.KSM_SLEEP_MSEC * 16 * 1024 * 1024, total);
  if (sleep <= 10) sleep = 10;
  let thres = bashDiv(total * config.KSM_THRES_COEF, 100);
  if (config.KSM_THRES_CONST > thres) thres = config.KSM_THRES_CONST;
  return {
    state: { total, sleep, thres, npages: 0 },
    debug: [`total ${total}`, `sleep ${sleep}`, `thres ${thres}`],
  };
}

/** The script's `adjust`: one decision from free memory (MemFree + Buffers + Cached) and committed RSS. */
export function ksmtunedAdjust(
  config: KsmtunedConfig,
  state: KsmtunedState,
  inputs: { readonly freeKb: number; readonly committedKb: number },
): { state: KsmtunedState; decision: TunerDecision } {
  const { total, thres, sleep } = state;
  const free = inputs.freeKb;
  const committed = inputs.committedKb;
  const debug = [`committed ${committed} free ${free}`];
  if (committed + thres < total && free > thres) {
    debug.push(`${committed + thres} < ${total} and free > ${thres}, stop ksm`);
    return {
      state,
      decision: {
        action: 'stop',
        settings: { run: 0 },
        reason: `committed ${committed} kB + threshold ${thres} kB < MemTotal ${total} kB and free ${free} kB > ${thres} kB`,
        warnings: [],
        debug,
      },
    };
  }
  debug.push(`${committed + thres} > ${total}, start ksm`);
  const boost = free < thres;
  debug.push(boost ? `${free} < ${thres}, boost` : `${free} > ${thres}, decay`);
  let npages = state.npages + (boost ? config.KSM_NPAGES_BOOST : config.KSM_NPAGES_DECAY);
  if (npages < config.KSM_NPAGES_MIN) npages = config.KSM_NPAGES_MIN;
  else if (npages > config.KSM_NPAGES_MAX) npages = config.KSM_NPAGES_MAX;
  debug.push(`KSMCTL start ${npages} ${sleep}`);
  const why =
    committed + thres < total
      ? `free ${free} kB <= threshold ${thres} kB`
      : `committed ${committed} kB + threshold ${thres} kB >= MemTotal ${total} kB`;
  return {
    state: { ...state, npages },
    decision: {
      action: 'start',
      settings: { pages_to_scan: npages, sleep_millisecs: sleep, run: 1 },
      reason: `${why}; ${boost ? `free < threshold: boost by ${config.KSM_NPAGES_BOOST}` : `decay by ${config.KSM_NPAGES_DECAY}`} to ${npages} pages`,
      warnings: [],
      debug,
    },
  };
}

/** ksmtuned's free memory: MemFree + Buffers + Cached (page cache counted as free). */
export function ksmtunedFreeKb(inputs: TunerInputs): number {
  return inputs.meminfo.MemFree + inputs.meminfo.Buffers + inputs.meminfo.Cached;
}

/** ksmtuned as a Tuner: started at the first look (MemTotal read once, as the script does). */
export class KsmtunedTuner implements Tuner {
  readonly name = 'ksmtuned';
  readonly intervalMs: number;
  readonly firstDecisionAfterInterval = true;
  private state: KsmtunedState | undefined;
  private startDebug: string[] = [];

  constructor(readonly config: KsmtunedConfig) {
    this.intervalMs = config.KSM_MONITOR_INTERVAL * 1000;
  }

  /** SIGHUP: a new configuration. ksmtuned has no reload; a restart would read MemTotal again and forget npages. */
  reconfigure(config: KsmtunedConfig): KsmtunedTuner {
    return new KsmtunedTuner(config);
  }

  decide(inputs: TunerInputs, _measured: Measured | undefined): TunerDecision {
    if (this.state === undefined) {
      const started = ksmtunedStart(this.config, inputs.meminfo.MemTotal);
      this.state = started.state;
      this.startDebug = started.debug;
    }
    const step = ksmtunedAdjust(this.config, this.state, {
      freeKb: ksmtunedFreeKb(inputs),
      committedKb: inputs.committedKb,
    });
    this.state = step.state;
    const debug = [...this.startDebug.splice(0), ...step.decision.debug];
    return { ...step.decision, debug };
  }
}
