/**
 * The live page's doctor panel, server side: `runDoctor` over the host and
 * the biggest processes, at a cadence of its own (once at start, then every
 * `intervalMs`), one run shared by every open page. The sampler polls it at
 * each reading with the reading's processes and clock, so a run starts at
 * most once per interval however many pages are open, and the last result
 * rides in every tick's view.
 *
 * Host, process and VMA verdicts only: the per page pass reads the
 * processes' memory twice and takes seconds per GiB, which a page refreshed
 * every minute does not justify (`ksmkit doctor` does it on demand).
 */
import { DEFAULT_WINDOW_MS, type DoctorOptions, type DoctorReport, runDoctor } from '../doctor/doctor.ts';
import { groupFindings, subjectText } from '../doctor/format.ts';
import { VERDICT_INFO } from '../doctor/verdicts.ts';
import type { LiveDoctor, LiveDoctorGroup, ProcessKsm } from './live-protocol.ts';

export const DEFAULT_DOCTOR_INTERVAL_MS = 60_000;
/** Processes looked at: this many by profit, and as many by rmap items (mergeable memory ksmd scans). */
export const DEFAULT_DOCTOR_PROCESSES = 8;
/** Rows sent per verdict: every tick carries the panel, so a host with 500 VMAs of one verdict sends 12 of them. */
const ROWS_PER_VERDICT = 12;
const COMMAND_WIDTH = 60;

export type RunDoctor = (options: DoctorOptions) => Promise<DoctorReport>;

export interface LiveDoctorOptions {
  /** Between the starts of two runs (default a minute). */
  readonly intervalMs?: number;
  readonly processCount?: number;
  /** The doctor's measuring window over ksmd (default the doctor's). */
  readonly windowMs?: number;
  /** The doctor itself (default `runDoctor` on this host); tests pass their own. */
  readonly run?: RunDoctor;
  /** Wall clock for the run's end time (default Date.now). */
  readonly now?: () => number;
}

/** The pids the doctor looks at: the biggest by profit, then the biggest by rmap items not already in. */
export function biggestProcesses(processes: readonly ProcessKsm[], count: number): number[] {
  const by = (key: (p: ProcessKsm) => number | null) =>
    [...processes]
      .filter((p) => (key(p) ?? 0) > 0)
      .sort((a, b) => (key(b) ?? 0) - (key(a) ?? 0) || a.pid - b.pid)
      .slice(0, count)
      .map((p) => p.pid);
  return [...new Set([...by((p) => p.profit), ...by((p) => p.rmapItems)])];
}

function groupsOf(report: DoctorReport): LiveDoctorGroup[] {
  const groups: LiveDoctorGroup[] = [];
  for (const [verdict, findings] of groupFindings(report.findings)) {
    const info = VERDICT_INFO[verdict];
    const shown = findings.slice(0, ROWS_PER_VERDICT);
    const rest = findings.slice(shown.length);
    groups.push({
      verdict,
      level: info.level,
      title: info.title,
      meaning: info.meaning,
      bytes: findings.reduce((s, f) => s + f.bytes, 0),
      rows: shown.map((f) => ({
        subject: subjectText(f.subject, COMMAND_WIDTH),
        bytes: f.bytes,
        evidence: f.evidence,
        fix: f.fix,
      })),
      moreRows: rest.length,
      moreBytes: rest.reduce((s, f) => s + f.bytes, 0),
    });
  }
  return groups;
}

/** The first line of an error: the panel shows one line, the stream goes on. */
function errorLine(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return `the doctor failed: ${message.split('\n')[0]}`;
}

export class LiveDoctorRunner {
  readonly intervalMs: number;
  private readonly processCount: number;
  private readonly windowMs: number;
  private readonly run: RunDoctor;
  private readonly now: () => number;
  private lastStartMs: number | undefined;
  private running = false;
  /** Runs started since construction (tests count them). */
  runs = 0;
  private current: LiveDoctor;

  constructor(options: LiveDoctorOptions = {}) {
    this.intervalMs = options.intervalMs ?? DEFAULT_DOCTOR_INTERVAL_MS;
    if (!(this.intervalMs > 0)) throw new Error(`doctor interval ${this.intervalMs} ms: must be positive`);
    this.processCount = options.processCount ?? DEFAULT_DOCTOR_PROCESSES;
    this.windowMs = options.windowMs ?? DEFAULT_WINDOW_MS;
    this.run = options.run ?? runDoctor;
    this.now = options.now ?? Date.now;
    this.current = {
      intervalMs: this.intervalMs,
      running: false,
      timeMs: null,
      durationMs: null,
      pids: [],
      root: false,
      healthy: null,
      groups: [],
      problems: [],
      notes: [],
      error: null,
    };
  }

  /**
   * Called at each reading: starts a run when none is under way and the last
   * one started an interval ago (or never). `monotonicMs` is the reading's clock.
   */
  poll(processes: readonly ProcessKsm[], monotonicMs: number): void {
    if (this.running) return;
    if (this.lastStartMs !== undefined && monotonicMs - this.lastStartMs < this.intervalMs) return;
    this.lastStartMs = monotonicMs;
    this.running = true;
    this.runs++;
    this.current = { ...this.current, running: true };
    const pids = biggestProcesses(processes, this.processCount);
    const startedMs = this.now();
    let run: Promise<DoctorReport>;
    try {
      run = this.run({ target: { kind: 'pids', pids }, pages: false, windowMs: this.windowMs });
    } catch (e) {
      // A throw before the doctor's first await is a failed run too: the sampler's reading must not see it.
      run = Promise.reject(e);
    }
    run
      .then(
        (report) => {
          const endMs = this.now();
          this.current = {
            intervalMs: this.intervalMs,
            running: false,
            timeMs: endMs,
            durationMs: endMs - startedMs,
            pids: report.target.pids,
            root: report.root,
            healthy: report.healthy,
            groups: groupsOf(report),
            problems: report.problems,
            notes: [
              ...report.notes,
              'per page verdicts are not made here (they read every page of the processes twice): ' +
                `ksmkit doctor --pid ${pids.length === 0 ? 'PID' : pids.join(',')} makes them`,
            ],
            error: null,
          };
        },
        (e: unknown) => {
          this.current = { ...this.current, running: false, error: errorLine(e) };
        },
      )
      .finally(() => {
        this.running = false;
      });
  }

  /** The panel as of now: the last run's verdicts (or error), and whether one is under way. */
  view(): LiveDoctor {
    return this.current;
  }
}
