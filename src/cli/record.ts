/**
 * `ksmkit record FILE...`: runs each workload file on the real kernel and
 * writes what happened beside it, as `FILE.expected.json` (see
 * src/conformance/recording.ts): the replay outcome exactly as `replay --json`
 * prints it, the kernel version, the date and the file's SHA-256. The
 * recording is the truth the simulator is checked against, so it is written
 * even when an `expect` of the file fails on the kernel (that is reported).
 *
 * Exit status: 0 every file recorded and every expect/read held; 1 every file
 * recorded but some expect or read failed on the kernel; 2 a file is invalid
 * (the others are still recorded) or the kernel backend is unavailable
 * (nothing is recorded).
 */

import { rename, writeFile } from 'node:fs/promises';
import type { Command } from '@commander-js/extra-typings';
import {
  formatRecording,
  makeRecording,
  recordingPathOf,
  workloadFileSha256,
} from '../conformance/recording.ts';
import {
  EXIT_CHECK_FAILED,
  EXIT_INVALID,
  EXIT_OK,
  formatFailureLine,
  type ReplayOutcome,
  runReplay,
} from '../workload/index.ts';
import { loadOrReport, type Output, openBackend } from './replay.ts';

export interface RecordOptions {
  /** Run even if other processes on this machine are mergeable. */
  readonly force: boolean;
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const temporary = `${path}.tmp-${process.pid}`;
  await writeFile(temporary, text, 'utf8');
  await rename(temporary, path);
}

export async function recordCommand(
  files: readonly string[],
  options: RecordOptions,
  io: Output,
): Promise<number> {
  // Refuse before touching any file when the kernel cannot run here.
  const probe = await openBackend('kernel', options);
  if (typeof probe === 'string') {
    io.err(`ksmkit record: ${probe}; nothing recorded`);
    return EXIT_INVALID;
  }
  let status: number = EXIT_OK;
  let first = true;
  for (const file of files) {
    const workload = await loadOrReport(file, io);
    if (workload === null) {
      io.err(`ksmkit record: ${file}: invalid workload, not recorded`);
      status = EXIT_INVALID;
      continue;
    }
    // A kernel backend is spent once its replay closes it: a fresh one per file.
    const backend = first ? probe : await openBackend('kernel', options);
    first = false;
    if (typeof backend === 'string') {
      io.err(`ksmkit record: ${backend}`);
      return EXIT_INVALID;
    }
    const sha256 = await workloadFileSha256(file);
    let outcome: ReplayOutcome;
    try {
      outcome = await runReplay(workload, backend);
    } catch (e) {
      io.err(`ksmkit record: ${file}: ${(e as Error).message}`);
      status = EXIT_INVALID;
      continue;
    }
    if ((await workloadFileSha256(file)) !== sha256) {
      io.err(`ksmkit record: ${file}: the file changed while it ran, not recorded`);
      status = EXIT_INVALID;
      continue;
    }
    const path = recordingPathOf(file);
    await writeAtomically(path, formatRecording(makeRecording(file, sha256, outcome, new Date())));
    const failures = outcome.results.flatMap((r) => r.failures ?? []);
    io.out(
      `${file}: ${outcome.results.length} steps on ${outcome.start.kernelVersion} -> ${path}` +
        (failures.length > 0 ? ` (${failures.length} failed checks)` : ''),
    );
    for (const failure of failures) io.out(`${file}: kernel: ${formatFailureLine(failure).trim()}`);
    if (failures.length > 0 && status === EXIT_OK) status = EXIT_CHECK_FAILED;
  }
  return status;
}

/** Adds `ksmkit record` to the command line (called from main.ts). */
export function registerRecord(program: Command, io: Output): void {
  program
    .command('record')
    .description(
      'run workload files on the real kernel and write each outcome beside it as FILE.expected.json',
    )
    .argument('<files...>', 'workload files')
    .option('--force', 'run even if other processes on this machine are mergeable', false)
    .action(async (files, opts) => {
      process.exitCode = await recordCommand(files, opts, io);
    });
}
