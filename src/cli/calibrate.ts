/**
 * `ksmkit calibrate`: measures ksmd's CPU cost per page visited, checksum,
 * unstable and stable tree step, merge and batch, and the cost of a COW break, on this machine's
 * kernel (root), and writes them where `ksmkit simulate` finds them.
 */
import { type Command, InvalidArgumentError } from '@commander-js/extra-typings';
import { calibrate } from '../simulate/calibrate.ts';
import {
  defaultCalibrationPath,
  describeFigures,
  SHIPPED_CALIBRATION,
  writeCalibration,
} from '../simulate/cost.ts';
import { EXIT_USAGE, errorLine, messageOf } from './exit.ts';
import { checkOutputPath } from './output-path.ts';

export interface CalibrateCommandOptions {
  readonly out?: string;
  readonly pages?: number;
  readonly repeat?: number;
  readonly force?: boolean;
  readonly json?: boolean;
}

/** The whole command; returns the exit status (0 done, 1 failed, 2 cannot run here). */
export async function calibrateCommand(
  options: CalibrateCommandOptions,
  io: { out: (l: string) => void; err: (l: string) => void },
): Promise<number> {
  const path = options.out ?? defaultCalibrationPath();
  // Checked before minutes of driving ksmd, not after.
  try {
    checkOutputPath(options.out === undefined ? 'the calibration file' : '--out', path, {
      createFolders: true,
    });
  } catch (e) {
    io.err(errorLine('calibrate', messageOf(e)));
    return EXIT_USAGE;
  }
  let result: Awaited<ReturnType<typeof calibrate>>;
  try {
    result = await calibrate({
      ...(options.pages === undefined ? {} : { pagesPerProcess: options.pages }),
      ...(options.repeat === undefined ? {} : { repeat: options.repeat }),
      force: options.force ?? false,
      log: (l) => io.err(l),
    });
  } catch (e) {
    const message = (e as Error).message;
    io.err(`ksmkit calibrate: ${message}`);
    if (message.startsWith('cannot calibrate here')) {
      io.err(`ksmkit simulate will use the shipped figures: ${describeFigures(SHIPPED_CALIBRATION.figures)}`);
      return 2;
    }
    return 1;
  }
  writeCalibration(path, result);
  if (options.json) io.out(JSON.stringify(result));
  else {
    io.out(`Measured on ${result.measuredOn}:`);
    io.out(`  ${describeFigures(result.figures)}`);
    io.out(`Written to ${path} (ksmkit simulate reads it from there).`);
  }
  return 0;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

/** Adds `calibrate` to the ksmkit program. */
export function registerCalibrate(program: Command): void {
  program
    .command('calibrate')
    .description(
      'measure ksmd’s CPU cost per page, checksum, unstable and stable tree step, merge and batch, and a COW break, on this machine’s kernel (root)',
    )
    .option('--out <file>', `where to write the figures (default ${defaultCalibrationPath()})`)
    .option('--pages <n>', 'pages per process of the calibration workloads (4 processes)', positiveInt)
    .option('--repeat <n>', 'rounds to take the median of', positiveInt)
    .option('--force', 'run even if other processes on this machine are mergeable', false)
    .option('--json', 'print the figures as JSON', false)
    .action(async (opts) => {
      const io = { out: (l: string) => console.log(l), err: (l: string) => console.error(l) };
      process.exitCode = await calibrateCommand(opts, io);
    });
}
