/**
 * A recording: what the real kernel did with one workload file, kept beside
 * it as `FILE.expected.json` (`ksmkit record FILE`). It holds the replay
 * outcome exactly as `ksmkit replay --json` prints it (the start event, then
 * one result per step with every counter), plus where it came from: the
 * kernel version, the date, and the SHA-256 of the workload file's bytes, so
 * that a recording left behind by an edit of its file is caught.
 *
 * Layout: a JSON object with one key per line and one step result per line,
 * so that a re-recording shows up in a review as the steps that changed.
 */

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import {
  exitStatusOf,
  formatJsonLine,
  type ReplayOutcome,
  type ReplayStart,
  type StepResult,
} from '../workload/index.ts';

/** The `recording` field: bumped if the layout ever changes meaning. */
export const RECORDING_FORMAT = 1;

export const RECORDING_SUFFIX = '.expected.json';

export interface Recording {
  /** The workload file's base name. */
  readonly file: string;
  /** The workload's `name:`. */
  readonly workload: string;
  /** SHA-256 (hex) of the workload file's bytes when it was recorded. */
  readonly workloadSha256: string;
  /** `uname -r` of the recording machine. */
  readonly kernelVersion: string;
  /** ISO 8601, UTC. */
  readonly recordedAt: string;
  readonly outcome: ReplayOutcome;
}

/** `conformance/001-x.yaml` → `conformance/001-x.yaml.expected.json`. */
export function recordingPathOf(workloadPath: string): string {
  return `${workloadPath}${RECORDING_SUFFIX}`;
}

/** The workload file a recording belongs to, or undefined if the name is not a recording's. */
export function workloadPathOf(recordingPath: string): string | undefined {
  return recordingPath.endsWith(RECORDING_SUFFIX)
    ? recordingPath.slice(0, -RECORDING_SUFFIX.length)
    : undefined;
}

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export async function workloadFileSha256(workloadPath: string): Promise<string> {
  return sha256Hex(await readFile(workloadPath));
}

/** The text of `FILE.expected.json`. */
export function formatRecording(recording: Recording): string {
  const head: Record<string, string | number> = {
    recording: RECORDING_FORMAT,
    file: recording.file,
    workload: recording.workload,
    workloadSha256: recording.workloadSha256,
    kernelVersion: recording.kernelVersion,
    recordedAt: recording.recordedAt,
    exitStatus: recording.outcome.exitStatus,
  };
  const lines = ['{'];
  for (const [key, value] of Object.entries(head))
    lines.push(`  ${JSON.stringify(key)}: ${JSON.stringify(value)},`);
  lines.push(`  "start": ${formatJsonLine(recording.outcome.start)},`);
  const results = recording.outcome.results;
  if (results.length === 0) lines.push('  "results": []');
  else {
    lines.push('  "results": [');
    results.forEach((result, index) => {
      lines.push(`    ${formatJsonLine(result)}${index < results.length - 1 ? ',' : ''}`);
    });
    lines.push('  ]');
  }
  lines.push('}', '');
  return lines.join('\n');
}

export class RecordingError extends Error {
  override readonly name = 'RecordingError';
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function field<T>(
  object: Record<string, unknown>,
  key: string,
  check: (v: unknown) => v is T,
  what: string,
  where: string,
): T {
  const value = object[key];
  if (!check(value)) throw new RecordingError(`${where}: "${key}" must be ${what}`);
  return value;
}

const isString = (v: unknown): v is string => typeof v === 'string';

function checkStart(value: unknown, where: string): ReplayStart {
  if (!isObject(value) || value.event !== 'start' || !isObject(value.settings)) {
    throw new RecordingError(`${where}: "start" must be the replay's start event`);
  }
  return value as unknown as ReplayStart;
}

function checkResult(value: unknown, index: number, where: string): StepResult {
  if (
    !isObject(value) ||
    value.step !== index + 1 ||
    typeof value.op !== 'string' ||
    typeof value.ok !== 'boolean' ||
    !isObject(value.ksm) ||
    !isObject(value.processes)
  ) {
    throw new RecordingError(`${where}: results[${index}] is not the result of step ${index + 1}`);
  }
  return value as unknown as StepResult;
}

/** Parses the text of a recording; `where` names it in errors. */
export function parseRecording(text: string, where: string): Recording {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new RecordingError(`${where}: not JSON: ${(e as Error).message}`);
  }
  if (!isObject(raw)) throw new RecordingError(`${where}: not a JSON object`);
  if (raw.recording !== RECORDING_FORMAT) {
    throw new RecordingError(
      `${where}: "recording" must be ${RECORDING_FORMAT}, got ${JSON.stringify(raw.recording)}`,
    );
  }
  const start = checkStart(raw.start, where);
  const rawResults = raw.results;
  if (!Array.isArray(rawResults)) throw new RecordingError(`${where}: "results" must be a list`);
  const results = rawResults.map((r, i) => checkResult(r, i, where));
  const exitStatus = exitStatusOf(results);
  if (raw.exitStatus !== exitStatus) {
    throw new RecordingError(
      `${where}: "exitStatus" ${String(raw.exitStatus)} does not match its results (${exitStatus})`,
    );
  }
  return {
    file: field(raw, 'file', isString, 'a string', where),
    workload: field(raw, 'workload', isString, 'a string', where),
    workloadSha256: field(raw, 'workloadSha256', isString, 'a string', where),
    kernelVersion: field(raw, 'kernelVersion', isString, 'a string', where),
    recordedAt: field(raw, 'recordedAt', isString, 'a string', where),
    outcome: { start, results, exitStatus },
  };
}

/** Reads `workloadPath`'s recording. Throws RecordingError (also when there is none). */
export async function readRecording(workloadPath: string): Promise<Recording> {
  const path = recordingPathOf(workloadPath);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new RecordingError(
      code === 'ENOENT'
        ? `${path}: no recording: run \`ksmkit record ${workloadPath}\` on a machine with the kernel backend`
        : `${path}: cannot read: ${(e as Error).message}`,
    );
  }
  return parseRecording(text, path);
}

/** A recording of `outcome`, a kernel replay of the file at `workloadPath`. */
export function makeRecording(
  workloadPath: string,
  workloadSha256: string,
  outcome: ReplayOutcome,
  recordedAt: Date,
): Recording {
  return {
    file: basename(workloadPath),
    workload: outcome.start.workload,
    workloadSha256,
    kernelVersion: outcome.start.kernelVersion,
    recordedAt: recordedAt.toISOString(),
    outcome,
  };
}
