/**
 * The two output forms of a replay: `--json` (one object per line, as
 * workload-format.md "Output" shows) and one readable line per step. Plain
 * text: colour, if any, is the CLI's business.
 */

import type { KsmCounters } from '../backend/backend.ts';
import type { ReplayStart, StepFailure, StepResult } from './replay.ts';

/** One `--json` line: the start event or a step result, keys in the documented order. */
export function formatJsonLine(event: ReplayStart | StepResult): string {
  if ('event' in event) {
    const { workload, backend, kernelVersion, settings, setup } = event;
    return JSON.stringify({
      event: 'start',
      workload,
      backend,
      kernelVersion,
      settings,
      ...(setup === undefined ? {} : { setup }),
    });
  }
  const { step, op, ok, errno, ksm, processes, failures } = event;
  return JSON.stringify({
    step,
    op,
    ok,
    ...(errno === undefined ? {} : { errno }),
    ksm,
    processes,
    ...(failures === undefined ? {} : { failures }),
  });
}

/** The counters a step line shows, in this order. */
export const STEP_LINE_COUNTERS = [
  'full_scans',
  'pages_shared',
  'pages_sharing',
  'pages_unshared',
  'pages_volatile',
  'ksm_zero_pages',
  'general_profit',
] as const;

function counterText(ksm: KsmCounters, name: string): string {
  const value = ksm[name];
  return `${name}=${value === undefined ? '-' : String(value)}`;
}

/**
 * `   3 scan     ok        full_scans=2 pages_shared=12 ...`: the step number,
 * the operation, `ok` or the errno name, and `FAILED(n checks)` instead of `ok`
 * when n checks failed.
 */
export function formatStepLine(result: StepResult): string {
  const failureCount = result.failures?.length ?? 0;
  // A failed check is the step's status: "ok" beside it would read as a pass.
  const failed = `FAILED(${failureCount} check${failureCount === 1 ? '' : 's'})`;
  const status =
    failureCount === 0
      ? (result.errno ?? (result.ok ? 'ok' : 'refused'))
      : result.errno === undefined
        ? failed
        : `${result.errno} ${failed}`;
  const counters = STEP_LINE_COUNTERS.map((name) => counterText(result.ksm, name)).join(' ');
  return `${String(result.step).padStart(4)} ${result.op.padEnd(8)} ${status.padEnd(9)} ${counters}`;
}

/** One line per failed check, to print under its step line. */
export function formatFailureLine(failure: StepFailure): string {
  switch (failure.kind) {
    case 'expect':
      return `     step ${failure.step}: expect ${failure.counter}: expected ${String(failure.expected)}, got ${
        failure.actual === null ? 'no such counter' : String(failure.actual)
      }`;
    case 'read':
      return `     step ${failure.step}: read ${failure.process}/${failure.region} page ${failure.page}: expected ${failure.expected}, got ${failure.actual}`;
  }
}

/** `start: workload NAME on BACKEND (KERNEL); settings: name=value ...`, then a line per refused setup call. */
export function formatStartLine(start: ReplayStart): string {
  const settings = Object.entries(start.settings)
    .map(([name, value]) => `${name}=${String(value)}`)
    .join(' ');
  const lines = [
    `start: workload ${start.workload} on ${start.backend} (${start.kernelVersion}); settings: ${settings}`,
  ];
  for (const refusal of start.setup ?? []) {
    const where = refusal.region === undefined ? refusal.process : `${refusal.process}/${refusal.region}`;
    lines.push(`     setup: ${refusal.op} ${where}: ${refusal.errno}`);
  }
  return lines.join('\n');
}
