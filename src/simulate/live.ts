/**
 * The live view of a run: a progress bar (cli-progress, on stderr) with the
 * counters an operator watches under it, and rows of /sys/kernel/mm/ksm as the
 * run goes. The engine runs synchronously, so nothing redraws on a timer: the
 * view is redrawn from the sample callback, at most every `redrawMs` of wall
 * time (every 2 s, one line each, when stderr is not a terminal and
 * `--progress` asked for it). The cursor and line wrap are left alone.
 */
import cliProgress from 'cli-progress';
import type { Sample } from './engine-run.ts';
import { liveHeader, liveRow, liveStatus } from './format.ts';
import { formatClock } from './units.ts';

export interface LiveOptions {
  /** Draw the progress bar (on stderr). */
  readonly progress: boolean;
  /** Print rows of counters (on stdout, or above the bar when both are the terminal). */
  readonly rows: boolean;
  /** About how many rows a run prints. */
  readonly rowsPerRun: number;
  readonly out: (line: string) => void;
  /** The terminal's columns, when the rows go to one (they then use short column names if narrower than 110). */
  readonly width?: number | undefined;
}

export class LiveView {
  private multibar: cliProgress.MultiBar | undefined;
  private bar: cliProgress.SingleBar | undefined;
  private status: cliProgress.SingleBar | undefined;
  private lastDrawMs = 0;
  private readonly tty = process.stderr.isTTY === true;
  private readonly rowsAboveBar = process.stderr.isTTY === true && process.stdout.isTTY === true;
  private nextRowAtMs = 0;
  private rowEveryMs = 0;
  private runLabel = '';
  private runCount = 1;

  constructor(private readonly options: LiveOptions) {}

  startRun(index: number, count: number, label: string, durationMs: number): void {
    this.runLabel = label;
    this.runCount = count;
    this.rowEveryMs = durationMs / Math.max(1, this.options.rowsPerRun);
    this.nextRowAtMs = 0;
    if (this.options.rows) {
      if (count > 1) this.line(`run ${index + 1} of ${count}: ${label}`);
      this.line(liveHeader(this.options.width));
    }
    if (!this.options.progress) return;
    this.multibar ??= new cliProgress.MultiBar(
      {
        stream: process.stderr,
        // The engine runs synchronously: a SIGINT kills the process before any handler could give a
        // hidden cursor or disabled line wrap back, so the terminal's modes are never changed. With
        // line wrap left on, cli-progress cuts each line to the terminal's width itself.
        hideCursor: false,
        linewrap: true,
        clearOnComplete: true,
        noTTYOutput: true,
        notTTYSchedule: 2000,
        format: (_options, params, payload: { run: string; clock: string }) => {
          const size = 30;
          const done = Math.round(params.progress * size);
          const bar = `${'█'.repeat(done)}${'░'.repeat(size - done)}`;
          return `${payload.run} ${bar} ${Math.floor(params.progress * 100)}% | ${payload.clock}`;
        },
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar?.stop();
    this.status?.stop();
    if (this.bar !== undefined) this.multibar.remove(this.bar);
    if (this.status !== undefined) this.multibar.remove(this.status);
    this.bar = this.multibar.create(1000, 0, { run: this.prefix(index), clock: '' });
    this.status = this.multibar.create(1, 0, { text: '' }, { format: '{text}' });
    this.draw(true);
  }

  private prefix(index: number): string {
    return this.runCount > 1 ? `run ${index + 1}/${this.runCount}` : 'simulating';
  }

  sample(sample: Sample, fraction: number, durationMs: number): void {
    if (this.options.rows && (sample.tMs >= this.nextRowAtMs || fraction >= 1)) {
      this.line(liveRow(sample, this.options.width));
      this.nextRowAtMs = sample.tMs + this.rowEveryMs - 1e-6;
    }
    if (this.bar === undefined) return;
    this.bar.update(Math.round(Math.min(1, fraction) * 1000), {
      clock: `${formatClock(sample.tMs)} of ${formatClock(durationMs)} virtual${this.runCount > 1 ? ` | ${this.runLabel}` : ''}`,
    });
    const width = Math.max(40, (process.stderr.columns ?? 120) - 1);
    this.status?.update(1, { text: liveStatus(sample).slice(0, width) });
    this.draw(false);
  }

  /** A line above the bar (or on stdout when that is not the terminal). */
  line(text: string): void {
    if (this.multibar !== undefined && this.rowsAboveBar) {
      this.multibar.log(`${text}\n`);
      this.draw(true);
    } else {
      this.options.out(text);
    }
  }

  private draw(force: boolean): void {
    const now = performance.now();
    const every = this.tty ? 100 : 2000;
    if (this.multibar === undefined || (!force && now - this.lastDrawMs < every)) return;
    if (!this.tty && force) return;
    this.lastDrawMs = now;
    this.multibar.update();
  }

  stop(): void {
    this.multibar?.update();
    this.multibar?.stop();
    this.multibar = undefined;
    this.bar = undefined;
    this.status = undefined;
  }
}
