/** `ksmkit probe`: the KSM write-timing side channel, between two processes of ours on this machine. */
import { type Command, InvalidArgumentError, Option } from '@commander-js/extra-typings';
import { probeCommand } from '../tools/probe/command.ts';
import { DEFAULT_PACING, MAX_PAGES_TO_SCAN, UNTHROTTLED_PACING } from '../tools/probe/probe.ts';
import { EXIT_USAGE, errorLine, messageOf } from './exit.ts';
import { checkOutputPath } from './output-path.ts';
import { stdoutColor } from './terminal.ts';

function integer(min: number, max: number, what: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(
        `must be ${what}, from ${min.toLocaleString('en-US')} to ${max.toLocaleString('en-US')}`,
      );
    }
    return n;
  };
}

function evenPages(value: string): number {
  const n = integer(2, 262_144, 'an even number of pages')(value);
  if (n % 2 !== 0) throw new InvalidArgumentError('must be even (exactly half the guesses are right)');
  return n;
}

/** Adds `ksmkit probe` to the program. */
export function registerProbe(program: Command): void {
  program
    .command('probe')
    .summary('run the KSM write-timing side channel between two processes of ours (root)')
    .description(
      'the KSM write-timing side channel, run on this machine between two processes of ksmkit and nothing ' +
        'else: a victim holds secret pages, an attacker guesses them (half right), both opt in, ksmd runs at ' +
        'the given pacing, and the attacker times one write per guess. Reports the write times (merged and ' +
        'not), accuracy, true and false positive rates, the time the attack needed and the bits per second ' +
        'it leaks. Needs root (it sets ksmd and puts every setting back).',
    )
    .option('--pages <n>', 'victim pages, and attacker guesses (even)', evenPages, 256)
    .option(
      '--seed <n>',
      'seed of the page contents and of which guesses are right',
      integer(0, 2 ** 32 - 1, 'an integer'),
      1,
    )
    .option(
      '--rounds <n>',
      'repeat with fresh processes (seeds seed, seed+1, ...)',
      integer(1, 1000, 'an integer'),
      1,
    )
    .option(
      '--calibration-pairs <k>',
      "the attacker's calibration: k pairs of identical pages and k unique ones",
      integer(1, 65_536, 'an integer'),
      32,
    )
    .addOption(
      new Option('--pages-to-scan <n>', `ksmd's pages_to_scan (kernel default ${DEFAULT_PACING.pagesToScan})`)
        .argParser(integer(1, MAX_PAGES_TO_SCAN, 'a number of pages'))
        .conflicts(['unthrottled']),
    )
    .addOption(
      new Option(
        '--sleep-millisecs <n>',
        `ksmd's sleep_millisecs (kernel default ${DEFAULT_PACING.sleepMillisecs})`,
      )
        .argParser(integer(0, 60_000, 'a number of ms'))
        .conflicts(['unthrottled']),
    )
    .option(
      '--unthrottled',
      `ksmd as fast as it goes: pages_to_scan ${UNTHROTTLED_PACING.pagesToScan}, sleep_millisecs ${UNTHROTTLED_PACING.sleepMillisecs}`,
      false,
    )
    .option('--json', 'one JSON object (schema: src/tools/probe/json.ts, ProbeJson)', false)
    .option('--report <file>', 'an HTML page with histograms of the write times')
    .option('--calibration <file>', 'write the write-timing model (per fault kind) for the simulated attack')
    .option('-q, --quiet', 'no progress lines on stderr', false)
    .addHelpText(
      'after',
      `
Nothing but the two processes it starts is probed. ksmd's settings are saved before and restored on
every exit path (Ctrl-C included), under the machine-wide lock /tmp/ksmkit-kernel.lock; run goes
back to what it was. Exit status: 0 done, 1 failed, 2 cannot run here (not root, no KSM, helper
not built).
Examples:
  sudo ksmkit probe
  sudo ksmkit probe --pages 1024 --unthrottled --json
  sudo ksmkit probe --pages-to-scan 1000 --sleep-millisecs 50 --report probe.html`,
    )
    .action(async (opts) => {
      const pacing = opts.unthrottled
        ? UNTHROTTLED_PACING
        : {
            pagesToScan: opts.pagesToScan ?? DEFAULT_PACING.pagesToScan,
            sleepMillisecs: opts.sleepMillisecs ?? DEFAULT_PACING.sleepMillisecs,
          };
      const preset = opts.unthrottled
        ? ('unthrottled' as const)
        : pacing.pagesToScan === DEFAULT_PACING.pagesToScan &&
            pacing.sleepMillisecs === DEFAULT_PACING.sleepMillisecs
          ? ('default' as const)
          : ('custom' as const);
      // Output files are checked before the probe takes ksmd for a minute.
      try {
        if (opts.report !== undefined) checkOutputPath('--report', opts.report);
        if (opts.calibration !== undefined) checkOutputPath('--calibration', opts.calibration);
      } catch (e) {
        console.error(errorLine('probe', messageOf(e)));
        process.exitCode = EXIT_USAGE;
        return;
      }
      process.exitCode = await probeCommand(
        {
          pages: opts.pages,
          seed: opts.seed,
          rounds: opts.rounds,
          calibrationPairs: opts.calibrationPairs,
          pagesToScan: pacing.pagesToScan,
          sleepMillisecs: pacing.sleepMillisecs,
          preset,
          json: opts.json,
          ...(opts.report === undefined ? {} : { report: opts.report }),
          ...(opts.calibration === undefined ? {} : { calibration: opts.calibration }),
          quiet: opts.quiet,
        },
        {
          out: (l) => console.log(l),
          err: (l) => console.error(l),
          color: stdoutColor(),
          command: `ksmkit ${process.argv.slice(2).join(' ')}`,
          now: () => new Date(),
        },
      );
    });
}
