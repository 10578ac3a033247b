/** `ksmkit tune`: drive ksmd towards an objective, or as ksmtuned / KubeVirt / the advisor would. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, InvalidArgumentError, Option } from '@commander-js/extra-typings';
import { parseDurationMs, parseSizeBytes } from '../simulate/units.ts';
import { KSM_SYSFS_DIR } from '../surface/sysfs.ts';
import { runTuneDaemon } from '../tools/tune/daemon.ts';
import { parseMeminfo } from '../tools/tune/kernel-host.ts';
import { DEFAULT_TUNE_METRICS_FILE } from '../tools/tune/metrics.ts';
import { KsmtunedConfError } from '../tuner/ksmtuned.ts';
import {
  DEFAULT_TUNER_OPTIONS,
  isTunerPolicy,
  TUNER_POLICIES,
  type TunerPolicyName,
} from '../tuner/policies.ts';

function duration(what: string, minMs: number) {
  return (value: string): number => {
    const ms = parseDurationMs(value);
    if (ms === undefined || ms < minMs)
      throw new InvalidArgumentError(
        `${what}: expected a duration such as 90s, 2min or 500ms (at least ${minMs} ms)`,
      );
    return ms;
  };
}

function percent(value: string): number {
  const m = /^(\d+(?:\.\d+)?)%?$/.exec(value.trim());
  const n = m === null ? Number.NaN : Number(m[1]);
  if (!(n > 0 && n <= 100))
    throw new InvalidArgumentError('expected a percentage of one CPU, such as 10% (0 < p <= 100)');
  return n;
}

/** A size (2GiB) or a share of MemTotal (20%); resolved against MemTotal at start. */
type Amount = { readonly kb: number } | { readonly fraction: number };

function amount(value: string): Amount {
  const m = /^(\d+(?:\.\d+)?)%$/.exec(value.trim());
  if (m !== null) {
    const f = Number(m[1]) / 100;
    if (f > 0 && f <= 1) return { fraction: f };
  } else {
    const bytes = parseSizeBytes(value);
    if (bytes !== undefined && bytes > 0) return { kb: Math.round(bytes / 1024) };
  }
  throw new InvalidArgumentError('expected a size such as 2GiB or a share of MemTotal such as 20%');
}

function resolve(a: Amount | undefined, memTotalKb: number): number | undefined {
  if (a === undefined) return undefined;
  return 'kb' in a ? a.kb : Math.round(a.fraction * memTotalKb);
}

function policy(value: string): TunerPolicyName {
  if (!isTunerPolicy(value)) throw new InvalidArgumentError(`expected one of ${TUNER_POLICIES.join(', ')}`);
  return value;
}

export function registerTune(program: Command): void {
  program
    .command('tune')
    .summary(
      'drive ksmd towards a full-scan time within a CPU budget (or as ksmtuned, KubeVirt, the advisor)',
    )
    .description(
      'A daemon that sets pages_to_scan and sleep_millisecs from what it measures: the real time of a full ' +
        "scan, the pages one visits and ksmd's CPU (/proc/<ksmd>/schedstat). Every decision is logged with its " +
        'inputs and reason. SIGTERM/SIGINT put back the settings it changed (without unmerging), SIGHUP rereads ' +
        'the configuration, SIGUSR1 retunes now.',
    )
    .addOption(
      new Option('--policy <name>', `${TUNER_POLICIES.join(' | ')}`)
        .argParser(policy)
        .default('objective' as TunerPolicyName),
    )
    .addOption(
      new Option('--target-scan-time <duration>', 'objective, advisor: time of one full scan')
        .argParser(duration('--target-scan-time', 1000))
        .default(DEFAULT_TUNER_OPTIONS.targetScanS * 1000, '2min'),
    )
    .option(
      '--max-cpu <percent>',
      "objective, advisor: ksmd's CPU budget, % of one CPU",
      percent,
      DEFAULT_TUNER_OPTIONS.maxCpuPercent,
    )
    .addOption(
      new Option('--interval <duration>', 'objective, advisor: time between looks')
        .argParser(duration('--interval', 100))
        .default(DEFAULT_TUNER_OPTIONS.intervalMs, '10s'),
    )
    .option(
      '--sleep-ms <n>',
      'objective: sleep_millisecs between batches',
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 10_000)
          throw new InvalidArgumentError('expected 1 to 10000');
        return n;
      },
      DEFAULT_TUNER_OPTIONS.sleepMs,
    )
    .option('--start-below <amount>', 'memory gate: start when MemAvailable falls below (2GiB, 20%)', amount)
    .option(
      '--stop-above <amount>',
      'memory gate: stop once MemAvailable stayed above this for --hold',
      amount,
    )
    .addOption(
      new Option('--hold <duration>', 'memory gate: how long MemAvailable must stay above --stop-above')
        .argParser(duration('--hold', 0))
        .default(DEFAULT_TUNER_OPTIONS.gate.holdMs, '10min'),
    )
    .option(
      '--cow-reserve <amount>',
      'COW guard: memory that must be left if every merged page were written (default 5%)',
      amount,
    )
    .addOption(
      new Option('--cow-guard <mode>', 'COW guard: warn, or stop merging further when the headroom runs out')
        .choices(['warn', 'stop'] as const)
        .default('warn' as const),
    )
    .option(
      '--config <file>',
      'ksmtuned: its configuration (KEY=value lines), parsed, never run; default /etc/ksmtuned.conf if present',
    )
    .option('--dry-run', 'decide and log, write nothing', false)
    .option('--once', 'one decision, then exit (what it wrote stays)', false)
    .option('--leave-settings', 'on SIGTERM/SIGINT leave the settings as they are', false)
    .option(
      '--metrics-file <file>',
      'the last decision for status --prometheus ("" for none)',
      DEFAULT_TUNE_METRICS_FILE,
    )
    .addOption(
      new Option('--lock-timeout <duration>', 'how long to wait for another holder of the ksmkit lock')
        .argParser(duration('--lock-timeout', 0))
        .default(0, '0s: refuse at once'),
    )
    .addOption(new Option('--sysfs-dir <dir>', 'KSM files here (tests)').default(KSM_SYSFS_DIR).hideHelp())
    .addOption(new Option('--proc-dir <dir>', '/proc here (tests)').default('/proc').hideHelp())
    .addOption(new Option('--lock-file <file>', 'the lock (tests)').hideHelp())
    .addHelpText(
      'after',
      '\nPolicies: objective (a full scan every --target-scan-time within --max-cpu, memory gate), ksmtuned\n' +
        '(the Debian script decision for decision; --config), kubevirt (virt-handler, every 3 min), kubevirt-legacy\n' +
        '(before kubevirt#16049: looks once), advisor (the kernel scan-time advisor, 6.8+).\n' +
        'A systemd unit: contrib/ksmkit-tune.service.',
    )
    .action(async (opts, cmd) => {
      let configPath = opts.config;
      if (configPath !== undefined && opts.policy !== 'ksmtuned')
        cmd.error("error: option '--config <file>' is for --policy ksmtuned");
      if (configPath === undefined && opts.policy === 'ksmtuned') {
        try {
          readFileSync('/etc/ksmtuned.conf');
          configPath = '/etc/ksmtuned.conf';
        } catch {
          // No conf: ksmtuned's defaults.
        }
      }
      let memTotalKb: number;
      try {
        memTotalKb = parseMeminfo(readFileSync(join(opts.procDir, 'meminfo'), 'latin1')).MemTotal;
      } catch (e) {
        console.error(`ksmkit tune: ${(e as Error).message}`);
        process.exitCode = 1;
        return;
      }
      const startBelowKb = resolve(opts.startBelow, memTotalKb);
      const stopAboveKb = resolve(opts.stopAbove, memTotalKb);
      if (startBelowKb !== undefined && stopAboveKb !== undefined && stopAboveKb < startBelowKb)
        cmd.error('error: --stop-above must be at least --start-below (the gate would flap)');
      if (stopAboveKb !== undefined && startBelowKb === undefined)
        cmd.error('error: --stop-above needs --start-below');
      try {
        process.exitCode = await runTuneDaemon(
          {
            policy: opts.policy,
            tuner: {
              targetScanS: opts.targetScanTime / 1000,
              maxCpuPercent: opts.maxCpu,
              intervalMs: opts.interval,
              sleepMs: opts.sleepMs,
              gate: { startBelowKb, stopAboveKb, holdMs: opts.hold },
            },
            configPath,
            cowGuard: {
              reserveKb: resolve(opts.cowReserve, memTotalKb),
              stopMerging: opts.cowGuard === 'stop',
            },
            dryRun: opts.dryRun,
            once: opts.once,
            leaveSettings: opts.leaveSettings,
            metricsFile: opts.metricsFile === '' ? undefined : opts.metricsFile,
            sources: { ksmDir: opts.sysfsDir, procDir: opts.procDir },
            lockPath: opts.lockFile,
            lockTimeoutMs: opts.lockTimeout,
          },
          {
            out: (l) => console.log(l),
            err: (l) => console.error(l),
            journal: process.env.JOURNAL_STREAM !== undefined,
          },
        );
      } catch (e) {
        if (e instanceof KsmtunedConfError) {
          console.error(`ksmkit tune: ${e.message}`);
          process.exitCode = 2;
          return;
        }
        console.error(`ksmkit tune: ${(e as Error).message}`);
        process.exitCode = 1;
      }
    });
}
