/** `ksmkit status`: what KSM is doing on this host now. */
import { type Command, InvalidArgumentError, Option } from '@commander-js/extra-typings';
import { DEFAULT_LOCK_PATH } from '../backend/kernel/sysfs-guard.ts';
import { KSM_SYSFS_DIR } from '../surface/sysfs.ts';
import { statusCommand } from '../tools/status/command.ts';
import { DEFAULT_SERVE_HOST } from '../tools/status/serve.ts';
import { DEFAULT_PROC_DIR } from '../tools/status/snapshot.ts';
import { stdoutColor, stdoutWidth } from './terminal.ts';

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0.1 || n > 86_400) {
    throw new InvalidArgumentError('must be a number of seconds from 0.1 to 86400');
  }
  return n;
}

function port(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65_535) throw new InvalidArgumentError('must be a port number, 0 to 65535');
  return n;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

/** Adds `ksmkit status` to the program. */
export function registerStatus(program: Command): void {
  program
    .command('status')
    .summary('what KSM is doing on this host now')
    .description(
      'what KSM is doing on this host: every /sys/kernel/mm/ksm file with its meaning, the saving, ' +
        'and the processes using KSM (from /proc/PID/ksm_stat), by profit',
    )
    .addOption(new Option('--json', 'one JSON object (with --watch: one per line)').conflicts(['prometheus']))
    .addOption(new Option('--prometheus', 'the Prometheus text exposition format').conflicts(['watch']))
    .option('--watch', 'refresh in place, with rates per second (pages scanned, merged)', false)
    .option(
      '--interval <seconds>',
      'seconds between readings with --watch, and for the --serve page',
      seconds,
      2,
    )
    .addOption(
      new Option(
        '--serve <port>',
        'serve the live page at http://127.0.0.1:PORT/ and Prometheus metrics at /metrics until Ctrl-C',
      )
        .argParser(port)
        .conflicts(['json', 'prometheus', 'watch']),
    )
    .option('--bind <address>', 'the address --serve listens on (anything but loopback is warned about)')
    .addOption(new Option('--host <address>', 'the former name of --bind').conflicts(['bind']).hideHelp())
    .option('--all', 'list every process, not only those using KSM', false)
    .addOption(
      new Option('--sysfs-dir <dir>', 'read KSM files from here (tests)').default(KSM_SYSFS_DIR).hideHelp(),
    )
    .addOption(
      new Option('--proc-dir <dir>', 'read /proc from here (tests)').default(DEFAULT_PROC_DIR).hideHelp(),
    )
    .addOption(
      new Option('--lock-file <path>', 'the kernel backend’s lock file (tests)')
        .default(DEFAULT_LOCK_PATH)
        .hideHelp(),
    )
    .addOption(
      new Option('--count <n>', 'stop --watch after n readings (tests)').argParser(positiveInt).hideHelp(),
    )
    .addHelpText(
      'after',
      "\nReading other users' /proc/PID/ksm_stat needs root; /sys/kernel/mm/ksm is readable by anyone.\n" +
        'A file or ksm_stat line an older kernel lacks is shown as "not in this kernel".',
    )
    .action(async (opts, cmd) => {
      const bind = opts.bind ?? opts.host;
      if (bind !== undefined && opts.serve === undefined) {
        cmd.error(
          `error: option '--${opts.bind === undefined ? 'host' : 'bind'} <address>' only goes with '--serve <port>'`,
        );
      }
      const controller = new AbortController();
      const stop = (): void => controller.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        process.exitCode = await statusCommand(
          {
            json: opts.json === true,
            prometheus: opts.prometheus === true,
            watch: opts.watch,
            interval: opts.interval,
            ...(opts.serve === undefined ? {} : { serve: opts.serve }),
            host: bind ?? DEFAULT_SERVE_HOST,
            all: opts.all,
            sources: { ksmDir: opts.sysfsDir, procDir: opts.procDir },
            ...(opts.count === undefined ? {} : { count: opts.count }),
            // The lock is about this machine's ksmd: read it when the files read are this machine's.
            ...(opts.sysfsDir === KSM_SYSFS_DIR || cmd.getOptionValueSource('lockFile') === 'cli'
              ? { lockPath: opts.lockFile }
              : {}),
          },
          {
            write: (text) => process.stdout.write(text),
            err: (line) => console.error(line),
            isTTY: process.stdout.isTTY === true,
            ...(process.stdout.rows === undefined ? {} : { rows: process.stdout.rows }),
            color: stdoutColor(),
            columns: stdoutWidth(),
            signal: controller.signal,
          },
        );
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}
