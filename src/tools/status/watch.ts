/**
 * `ksmkit status --watch`: a reading every interval, with rates per second
 * from successive readings. On a terminal the screen is redrawn in place (ANSI
 * cursor control); otherwise each reading is a plain block (or, with --json,
 * one JSON object per line). Stops when `signal` aborts (SIGINT) or after
 * `count` readings.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { formatHuman } from './human.ts';
import { toJson } from './json.ts';
import {
  HOST_SOURCES,
  type Rates,
  ratesBetween,
  readSnapshot,
  type SnapshotOptions,
  type StatusSnapshot,
  type StatusSources,
} from './snapshot.ts';

/** Cursor home, clear to the end of each line and of the screen, hide and show the cursor. */
export const ANSI = {
  home: '\x1b[H',
  clearScreen: '\x1b[2J',
  clearLine: '\x1b[K',
  clearBelow: '\x1b[J',
  hideCursor: '\x1b[?25l',
  showCursor: '\x1b[?25h',
} as const;

export interface WatchOutput {
  write(text: string): void;
  readonly isTTY: boolean;
  /** Terminal height; the frame is cut to fit so that the redraw stays in place. */
  readonly rows?: number;
}

export interface WatchOptions {
  readonly sources?: StatusSources;
  readonly snapshot?: SnapshotOptions;
  readonly intervalMs: number;
  readonly json: boolean;
  readonly color: boolean;
  readonly out: WatchOutput;
  readonly signal: AbortSignal;
  /** Stop after this many readings (default: until aborted). */
  readonly count?: number;
}

function header(s: StatusSnapshot, intervalMs: number, rates: Rates | undefined): string {
  const when = new Date(s.time)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC');
  const rest = rates === undefined ? '; rates from the next reading' : '';
  return `ksmkit status, every ${intervalMs / 1000} s, ${when}${rest} (Ctrl-C to stop)`;
}

/** One terminal frame: from the top-left corner, each line cleared to its end, the rest of the screen cleared. */
export function terminalFrame(lines: readonly string[], rows: number | undefined): string {
  let shown = lines;
  if (rows !== undefined && rows > 1 && lines.length > rows - 1) {
    shown = [...lines.slice(0, rows - 2), `… ${lines.length - (rows - 2)} more lines (enlarge the terminal)`];
  }
  return `${ANSI.home}${shown.map((l) => `${l}${ANSI.clearLine}`).join('\n')}\n${ANSI.clearBelow}`;
}

export async function watchStatus(options: WatchOptions): Promise<void> {
  const { out, signal } = options;
  const sources = options.sources ?? HOST_SOURCES;
  const inPlace = out.isTTY && !options.json;
  let previous: StatusSnapshot | undefined;
  if (inPlace) out.write(`${ANSI.hideCursor}${ANSI.home}${ANSI.clearScreen}`);
  try {
    for (let i = 0; options.count === undefined || i < options.count; i++) {
      if (i > 0) {
        try {
          await sleep(options.intervalMs, undefined, { signal });
        } catch (e) {
          if ((e as Error).name === 'AbortError') break;
          throw e;
        }
      }
      if (signal.aborted) break;
      const s = readSnapshot(sources, options.snapshot);
      const rates = previous === undefined ? undefined : ratesBetween(previous, s);
      previous = s;
      if (options.json) {
        out.write(`${JSON.stringify(toJson(s, rates))}\n`);
        continue;
      }
      const lines = [
        header(s, options.intervalMs, rates),
        '',
        ...formatHuman(s, { color: options.color, ...(rates === undefined ? {} : { rates }) }),
      ];
      if (inPlace) out.write(terminalFrame(lines, out.rows));
      else out.write(`${i > 0 ? '\n' : ''}${lines.join('\n')}\n`);
    }
  } finally {
    if (inPlace) out.write(ANSI.showCursor);
  }
}
