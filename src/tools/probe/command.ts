/**
 * `ksmkit probe` without commander: options in, exit status out, output
 * through `io`.
 *
 * Exit status: 0 the probe ran (whatever the attacker's accuracy: a machine
 * where the attack fails is a result too); 1 it failed (ksmd did not merge in
 * time, a helper died, a setting would not go back, a file would not write);
 * 2 it cannot run here (not Linux, no KSM, not root, helper not built).
 */
import { writeFileSync } from 'node:fs';
import { formatHuman } from './human.ts';
import { toJson, toWriteTimingModel } from './json.ts';
import { type ProbeOptions, type ProbeResult, ProbeUnavailableError, runProbe } from './probe.ts';
import { renderReport } from './report.ts';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_UNAVAILABLE = 2;

export interface ProbeCommandOptions extends Omit<ProbeOptions, 'log'> {
  readonly json: boolean;
  readonly report?: string;
  /** Where to write the write-timing model for the simulated attack. */
  readonly calibration?: string;
  /** Progress lines on stderr. */
  readonly quiet: boolean;
}

export interface ProbeIo {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly color: boolean;
  /** The command line, for the report. */
  readonly command: string;
  readonly now: () => Date;
}

export async function probeCommand(options: ProbeCommandOptions, io: ProbeIo): Promise<number> {
  const { json, report, calibration, quiet, ...probeOptions } = options;
  let result: ProbeResult;
  try {
    result = await runProbe({
      ...probeOptions,
      ...(quiet ? {} : { log: (l: string) => io.err(`ksmkit probe: ${l}`) }),
    });
  } catch (e) {
    if (e instanceof ProbeUnavailableError) {
      io.err(`ksmkit probe: cannot run here: ${e.message}`);
      return EXIT_UNAVAILABLE;
    }
    io.err(`ksmkit probe: ${(e as Error).message}`);
    return EXIT_FAILED;
  }
  if (json) io.out(JSON.stringify(toJson(result), null, 2));
  else for (const line of formatHuman(result, { color: io.color })) io.out(line);
  let status = result.restored.ok ? EXIT_OK : EXIT_FAILED;
  if (!result.restored.ok) {
    const why = [result.restored.error, ...result.restored.differing].filter((x) => x !== undefined);
    io.err(`ksmkit probe: ksmd's settings not restored: ${why.join('; ')}`);
  }
  const now = io.now();
  const write = (path: string, text: string, what: string): void => {
    try {
      writeFileSync(path, text);
      if (!quiet) io.err(`ksmkit probe: ${what} written to ${path}`);
    } catch (e) {
      io.err(`ksmkit probe: cannot write ${what} to ${path}: ${(e as Error).message}`);
      status = EXIT_FAILED;
    }
  };
  if (report !== undefined) {
    write(
      report,
      renderReport({ result, command: io.command, generatedAt: now.toISOString() }),
      'the report',
    );
  }
  if (calibration !== undefined) {
    const model = toWriteTimingModel(result, now.toISOString().slice(0, 10));
    if (model === undefined) {
      io.err('ksmkit probe: no write-timing model: a kind of write had no sample');
      status = EXIT_FAILED;
    } else write(calibration, `${JSON.stringify(model, null, 2)}\n`, 'the write-timing model');
  }
  return status;
}
