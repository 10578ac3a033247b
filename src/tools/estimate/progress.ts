/**
 * A progress line on stderr: a bar redrawn in place on a terminal, a plain
 * line every few seconds otherwise (logs, CI). Synchronous writes: the
 * estimate reads memory synchronously and never yields to the event loop.
 */
import { writeSync } from 'node:fs';

export interface Progress {
  /** Sets the total (bytes) and the label of what is being read now. */
  stage(label: string): void;
  advance(bytes: number): void;
  done(): void;
}

export const NO_PROGRESS: Progress = { stage: () => {}, advance: () => {}, done: () => {} };

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(0)} MiB`;
}

export interface ProgressLineOptions {
  readonly total: number;
  readonly tty: boolean;
  readonly fd?: number;
  /** For tests: the clock in ms. */
  readonly now?: () => number;
  /** Minimum ms between two redraws (TTY) or two lines (not a TTY). */
  readonly intervalMs?: number;
  readonly width?: number;
}

export class ProgressLine implements Progress {
  private done_ = 0;
  private label = '';
  private lastDraw = Number.NEGATIVE_INFINITY;
  private readonly start: number;
  private readonly now: () => number;
  private readonly fd: number;
  private readonly interval: number;
  private readonly width: number;
  private finished = false;

  constructor(private readonly options: ProgressLineOptions) {
    this.now = options.now ?? (() => performance.now());
    this.fd = options.fd ?? 2;
    this.interval = options.intervalMs ?? (options.tty ? 100 : 5000);
    this.width = options.width ?? 20;
    this.start = this.now();
  }

  stage(label: string): void {
    this.label = label;
    this.draw(false);
  }

  advance(bytes: number): void {
    this.done_ += bytes;
    this.draw(false);
  }

  done(): void {
    if (this.finished) return;
    this.finished = true;
    this.draw(true);
    if (this.options.tty) this.write('\n');
  }

  /** The line as it would be drawn now. */
  line(): string {
    const total = Math.max(this.options.total, 1);
    const fraction = Math.min(this.done_ / total, 1);
    const filled = Math.round(fraction * this.width);
    const bar = `${'#'.repeat(filled)}${'-'.repeat(this.width - filled)}`;
    const seconds = (this.now() - this.start) / 1000;
    const rate = seconds > 0 ? this.done_ / seconds / 1e9 : 0;
    const pct = (fraction * 100).toFixed(0).padStart(3);
    return `estimate [${bar}] ${pct}% ${mib(this.done_)}/${mib(this.options.total)} ${rate.toFixed(2)} GB/s ${this.label}`;
  }

  private draw(force: boolean): void {
    const t = this.now();
    if (!force && t - this.lastDraw < this.interval) return;
    this.lastDraw = t;
    const text = this.line();
    if (this.options.tty) this.write(`\r${text.slice(0, (process.stderr.columns ?? 120) - 1)}\x1b[K`);
    else this.write(`${text}\n`);
  }

  private write(text: string): void {
    try {
      writeSync(this.fd, text);
    } catch {
      // stderr closed: no progress, no failure.
    }
  }
}
