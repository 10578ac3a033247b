/**
 * Runs a workload against a backend, one result per step (workload-format.md,
 * "Output"). Written against the `Backend` interface only, so the simulator
 * and the real kernel run the very same sequence of calls with the very same
 * bytes and addresses.
 *
 * Setup, before step 1: `start` with the `ksm:` settings; then for each
 * process in order, `spawn`, and for each of its regions `mmap` at its layout
 * address, the content written in page order (the initial fill, G = 0), then
 * MADV_MERGEABLE if `mergeable`, then mlock if `mlock`. An `mmap` step does the
 * same for one region, with G = its step number.
 *
 * A call the backend refuses (an `OpResult` with an errno, or a thrown error
 * whose `code` is an errno name) makes the step `ok: false` with that errno,
 * and the run goes on. A failed `expect` or `read` is listed in the step's
 * `failures`, every mismatch, and makes the exit status 1.
 */

import { Buffer } from 'node:buffer';
import {
  type Backend,
  type CountersSnapshot,
  type ErrnoName,
  type KsmCounters,
  type OpResult,
  PAGE_SIZE_BYTES,
  type ProcessCounters,
} from '../backend/backend.ts';
import { assert, assertNever } from '../host/assert.ts';
import {
  type ContentPlacement,
  contentPages,
  describePageBytes,
  sharedTagPageCache,
  type TagPageCache,
} from './content.ts';
import { parseCounterRef, WRITABLE_SYSFS_NAMES } from './counters.ts';
import { AddressLayout } from './layout.ts';
import { PageLedger } from './ledger.ts';
import type {
  ContentSpec,
  ExpectedCounter,
  ExpectedValue,
  RegionSpec,
  Step,
  StepOp,
  Workload,
} from './workload.ts';

export { formatFailureLine, formatJsonLine, formatStartLine, formatStepLine } from './output.ts';

/** An `expect` counter that did not hold. `actual` is null when the backend does not report the counter. */
export interface ExpectFailure {
  readonly kind: 'expect';
  readonly step: number;
  readonly counter: string;
  readonly expected: ExpectedValue;
  readonly actual: ExpectedValue | null;
}

/** A page that a `read` step found different from what the replay last wrote. */
export interface ReadFailure {
  readonly kind: 'read';
  readonly step: number;
  readonly process: string;
  readonly region: string;
  readonly page: number;
  /** What was written, e.g. `tag debian-12/5 (image debian-12)`, `byte 7`, `zero`. */
  readonly expected: string;
  /** What was read: `zero`, `byte B`, or `sha256:` and the start of its digest. */
  readonly actual: string;
}

export type StepFailure = ExpectFailure | ReadFailure;

/** One line of `--json` output per step. */
export interface StepResult {
  /** 1-based. */
  readonly step: number;
  readonly op: StepOp;
  /** false when the backend refused a call of the step (`errno` says why); a failed check keeps it true. */
  readonly ok: boolean;
  readonly errno?: ErrnoName;
  readonly ksm: KsmCounters;
  readonly processes: Readonly<Record<string, ProcessCounters>>;
  readonly failures?: readonly StepFailure[];
}

/** A setup call (before step 1) that the backend refused. */
export interface SetupRefusal {
  readonly op: 'set' | 'spawn' | 'mmap' | 'write' | 'madvise' | 'mlock';
  /** The process, or for a refused `ksm:` setting the sysfs file's name. */
  readonly process: string;
  readonly region?: string;
  readonly errno: ErrnoName;
}

/** The `{"event":"start",...}` line: the backend, and the settings in force once set up. */
export interface ReplayStart {
  readonly event: 'start';
  readonly workload: string;
  readonly backend: 'sim' | 'kernel';
  readonly kernelVersion: string;
  /** Every writable /sys/kernel/mm/ksm file the backend reports, after `ksm:` and setup. */
  readonly settings: KsmCounters;
  /** Present when a setup call was refused. */
  readonly setup?: readonly SetupRefusal[];
}

export interface ReplayOptions {
  /** Called once setup is done, before step 1. */
  readonly onStart?: (start: ReplayStart) => void;
  readonly tagCache?: TagPageCache;
  /** Largest write passed to the backend at once while filling (default 256 pages, 1 MiB). */
  readonly writeChunkPages?: number;
}

export const EXIT_OK = 0;
/** An `expect` or `read` failed. */
export const EXIT_CHECK_FAILED = 1;
/** The workload is invalid or the backend unavailable (decided by the caller: parse errors, backend errors). */
export const EXIT_INVALID = 2;

export type ReplayExitStatus = typeof EXIT_OK | typeof EXIT_CHECK_FAILED;

export function exitStatusOf(results: Iterable<StepResult>): ReplayExitStatus {
  for (const result of results) if ((result.failures?.length ?? 0) > 0) return EXIT_CHECK_FAILED;
  return EXIT_OK;
}

/**
 * Replays `workload` on `backend`, yielding one result per step. The backend
 * is started here and closed when the iteration ends, however it ends.
 */
export async function* replay(
  workload: Workload,
  backend: Backend,
  options: ReplayOptions = {},
): AsyncGenerator<StepResult, void, undefined> {
  const session = new ReplaySession(workload, backend, options);
  try {
    // The `ksm:` settings go one by one through setSysfs, so that one the kernel
    // refuses is reported with its errno like any refused setup call.
    await backend.start([]);
    const refusals: SetupRefusal[] = [];
    for (const { name, value } of workload.ksm) {
      const result = await attempt(() => backend.setSysfs(name, value));
      if (!result.ok) refusals.push({ op: 'set', process: name, errno: result.errno });
    }
    refusals.push(...(await session.setUp()));
    const snapshot = await backend.counters();
    const info = backend.info();
    const start: ReplayStart = {
      event: 'start',
      workload: workload.name,
      backend: info.backend,
      kernelVersion: info.kernelVersion,
      settings: settingsOf(snapshot.ksm),
      ...(refusals.length > 0 ? { setup: refusals } : {}),
    };
    options.onStart?.(start);
    for (const [index, step] of workload.steps.entries()) {
      yield await session.runStep(step, index + 1);
    }
  } finally {
    await backend.close();
  }
}

export interface ReplayOutcome {
  readonly start: ReplayStart;
  readonly results: readonly StepResult[];
  readonly exitStatus: ReplayExitStatus;
}

/** `replay` run to the end, collected. */
export async function runReplay(
  workload: Workload,
  backend: Backend,
  options: ReplayOptions = {},
): Promise<ReplayOutcome> {
  let start: ReplayStart | undefined;
  const results: StepResult[] = [];
  const onStart = (event: ReplayStart): void => {
    start = event;
    options.onStart?.(event);
  };
  for await (const result of replay(workload, backend, { ...options, onStart })) results.push(result);
  assert(start !== undefined, 'runReplay: replay ended without its start event');
  return { start, results, exitStatus: exitStatusOf(results) };
}

function settingsOf(ksm: KsmCounters): KsmCounters {
  const settings: Record<string, number | string> = {};
  for (const name of WRITABLE_SYSFS_NAMES) {
    const value = ksm[name];
    if (value !== undefined) settings[name] = value;
  }
  return settings;
}

const ERRNO_NAMES = {
  EINVAL: true,
  EBUSY: true,
  ENOMEM: true,
  EPERM: true,
  ESRCH: true,
  EAGAIN: true,
  EACCES: true,
  ERANGE: true,
  EINTR: true,
  EFAULT: true,
  EEXIST: true,
  ENOENT: true,
} as const satisfies Record<ErrnoName, true>;

/** The errno name of an error a backend threw (an ErrnoError, or Node's own), if it has one. */
export function errnoOf(error: unknown): ErrnoName | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && Object.hasOwn(ERRNO_NAMES, code) ? (code as ErrnoName) : undefined;
}

async function attempt(call: () => Promise<OpResult>): Promise<OpResult> {
  try {
    return await call();
  } catch (error) {
    const errno = errnoOf(error);
    if (errno === undefined) throw error;
    return { ok: false, errno };
  }
}

/** The first refusal of a step that makes several calls; the later calls still run. */
class StepOutcome {
  errno: ErrnoName | undefined;

  note(result: OpResult): boolean {
    if (!result.ok && this.errno === undefined) this.errno = result.errno;
    return result.ok;
  }
}

class ReplaySession {
  private readonly layout = new AddressLayout();
  private readonly ledger: PageLedger;
  private readonly cache: TagPageCache;
  private readonly writeChunkPages: number;

  constructor(
    private readonly workload: Workload,
    private readonly backend: Backend,
    options: ReplayOptions,
  ) {
    this.cache = options.tagCache ?? sharedTagPageCache;
    this.ledger = new PageLedger(this.cache);
    this.writeChunkPages = options.writeChunkPages ?? 256;
    assert(
      Number.isSafeInteger(this.writeChunkPages) && this.writeChunkPages >= 1,
      'writeChunkPages must be >= 1',
    );
  }

  async setUp(): Promise<SetupRefusal[]> {
    const refusals: SetupRefusal[] = [];
    const noteRefusal = (result: OpResult, refusal: Omit<SetupRefusal, 'errno'>): void => {
      if (!result.ok) refusals.push({ ...refusal, errno: result.errno });
    };
    for (const process of this.workload.processes) {
      const spawned = await attempt(() =>
        this.backend.spawn(process.name, {
          memoryMerge: process.memoryMerge,
          ...(process.identity === undefined ? {} : { identity: process.identity }),
        }),
      );
      noteRefusal(spawned, { op: 'spawn', process: process.name });
      this.layout.spawn(process.name);
      this.ledger.spawn(process.name);
      for (const region of process.regions) {
        const observe = (op: SetupRefusal['op'], result: OpResult): void => {
          noteRefusal(result, { op, process: process.name, region: region.name });
        };
        await this.mapRegion(process.name, region, { step: 0, callBackend: spawned.ok, observe });
      }
    }
    return refusals;
  }

  /**
   * Places the region in the layout and the ledger (they follow the workload,
   * whatever the backend answers, so addresses never depend on the backend),
   * then mmap, fill in page order, madvise, mlock; `observe` sees each call's result.
   */
  private async mapRegion(
    process: string,
    region: RegionSpec,
    options: {
      readonly step: number;
      readonly callBackend: boolean;
      readonly observe: (op: 'mmap' | 'write' | 'madvise' | 'mlock', result: OpResult) => void;
    },
  ): Promise<void> {
    const { step, observe } = options;
    const address = this.layout.place(process, region.name, region.pageCount);
    this.ledger.map(process, region.name, { pageCount: region.pageCount, shared: region.shared });
    if (!options.callBackend) return;
    const mapping = {
      name: region.name,
      address,
      pageCount: region.pageCount,
      shared: region.shared,
      thp: region.thp,
    };
    const mapped = await attempt(() => this.backend.mmap(process, mapping));
    observe('mmap', mapped);
    if (!mapped.ok) return;
    let regionPageIndex = 0;
    for (const run of region.content) {
      const placement = this.placement(process, region.name, regionPageIndex, step);
      observe('write', await this.writeRun(run.spec, placement, run.pageCount));
      regionPageIndex += run.pageCount;
    }
    if (region.mergeable)
      observe('madvise', await attempt(() => this.backend.madvise(process, region.name, 'mergeable')));
    if (region.mlock) observe('mlock', await attempt(() => this.backend.mlock(process, region.name)));
  }

  private placement(
    process: string,
    region: string,
    regionPageIndex: number,
    step: number,
  ): ContentPlacement {
    return { process, region, regionPageIndex, step, baseDir: this.workload.baseDir };
  }

  /** Writes a run in page order, at most `writeChunkPages` at a time; the first refusal is returned, the rest still written. */
  private async writeRun(
    spec: ContentSpec,
    placement: ContentPlacement,
    pageCount: number,
  ): Promise<OpResult> {
    const outcome = new StepOutcome();
    for (let firstRunPage = 0; firstRunPage < pageCount; firstRunPage += this.writeChunkPages) {
      const span = { firstRunPage, pageCount: Math.min(this.writeChunkPages, pageCount - firstRunPage) };
      const bytes = contentPages(spec, placement, span, this.cache);
      const pageIndex = placement.regionPageIndex + firstRunPage;
      const written = await attempt(() =>
        this.backend.write(placement.process, placement.region, pageIndex, bytes),
      );
      if (outcome.note(written)) this.ledger.record(spec, placement, span);
    }
    return outcome.errno === undefined ? { ok: true } : { ok: false, errno: outcome.errno };
  }

  async runStep(step: Step, stepNumber: number): Promise<StepResult> {
    const outcome = new StepOutcome();
    let failures: StepFailure[] = [];
    switch (step.op) {
      case 'scan':
        outcome.note(
          await attempt(async () => {
            await this.backend.scan(step.passes);
            return { ok: true };
          }),
        );
        break;
      case 'batch':
        outcome.note(await attempt(() => this.backend.batch(step.pageCount)));
        break;
      case 'wait':
        await this.backend.wait(step.ms);
        break;
      case 'write': {
        let regionPageIndex = step.pageIndex;
        for (const run of step.content) {
          const placement = this.placement(step.process, step.region, regionPageIndex, stepNumber);
          outcome.note(await this.writeRun(run.spec, placement, run.pageCount));
          regionPageIndex += run.pageCount;
        }
        break;
      }
      case 'read':
        failures = await this.read(step, stepNumber, outcome);
        break;
      case 'madvise':
        if (outcome.note(await attempt(() => this.backend.madvise(step.process, step.region, step.advice)))) {
          if (step.advice === 'dontneed') this.ledger.dropPages(step.process, step.region);
        }
        break;
      case 'prctl':
        outcome.note(await attempt(() => this.backend.prctl(step.process, step.memoryMerge)));
        break;
      case 'mmap':
        await this.mapRegion(step.process, step.region, {
          step: stepNumber,
          callBackend: true,
          observe: (_op, result) => outcome.note(result),
        });
        break;
      case 'munmap':
        outcome.note(await attempt(() => this.backend.munmap(step.process, step.region)));
        this.layout.unmap(step.process, step.region);
        this.ledger.unmap(step.process, step.region);
        break;
      case 'fork':
        outcome.note(await attempt(() => this.backend.fork(step.process, step.child)));
        this.layout.fork(step.process, step.child);
        this.ledger.fork(step.process, step.child);
        break;
      case 'exit':
        outcome.note(await attempt(() => this.backend.exit(step.process)));
        this.layout.exit(step.process);
        this.ledger.exit(step.process);
        break;
      case 'mprotect':
        outcome.note(await attempt(() => this.backend.mprotect(step.process, step.region, step.prot)));
        break;
      case 'exec':
        outcome.note(await attempt(() => this.backend.exec(step.process)));
        this.layout.exec(step.process);
        this.ledger.exec(step.process);
        break;
      case 'set':
        for (const { name, value } of step.settings) {
          const options = step.as === undefined ? {} : { as: step.as };
          outcome.note(await attempt(() => this.backend.setSysfs(name, value, options)));
        }
        break;
      case 'expect':
        break;
      default:
        assertNever(step, 'step');
    }
    const snapshot = await this.backend.counters();
    if (step.op === 'expect') failures = expectFailures(step.counters, snapshot, stepNumber);
    return {
      step: stepNumber,
      op: step.op,
      ok: outcome.errno === undefined,
      ...(outcome.errno === undefined ? {} : { errno: outcome.errno }),
      ksm: snapshot.ksm,
      processes: snapshot.processes,
      ...(failures.length > 0 ? { failures } : {}),
    };
  }

  private async read(
    step: Step & { op: 'read' },
    stepNumber: number,
    outcome: StepOutcome,
  ): Promise<ReadFailure[]> {
    const { process, region, pageIndex, pageCount } = step;
    let bytes: Uint8Array;
    try {
      bytes = await this.backend.read(process, region, pageIndex, pageCount);
    } catch (error) {
      const errno = errnoOf(error);
      if (errno === undefined) throw error;
      outcome.note({ ok: false, errno });
      return [];
    }
    assert(
      bytes.length === pageCount * PAGE_SIZE_BYTES,
      `backend.read returned ${bytes.length} bytes for ${pageCount} pages`,
    );
    const failures: ReadFailure[] = [];
    for (let i = 0; i < pageCount; i++) {
      const page = bytes.subarray(i * PAGE_SIZE_BYTES, (i + 1) * PAGE_SIZE_BYTES);
      const expected = this.ledger.expectedPage(process, region, pageIndex + i);
      if (Buffer.compare(page, expected.bytes) === 0) continue;
      failures.push({
        kind: 'read',
        step: stepNumber,
        process,
        region,
        page: pageIndex + i,
        expected: expected.description,
        actual: describePageBytes(page),
      });
    }
    return failures;
  }
}

function expectFailures(
  counters: readonly ExpectedCounter[],
  snapshot: CountersSnapshot,
  stepNumber: number,
): ExpectFailure[] {
  const failures: ExpectFailure[] = [];
  for (const { counter, value } of counters) {
    const ref = parseCounterRef(counter);
    assert(ref !== undefined, `expect: counter "${counter}" passed validation but does not parse`);
    const actual =
      ref.scope === 'ksm' ? snapshot.ksm[ref.name] : snapshot.processes[ref.process]?.[ref.field];
    if (actual !== value) {
      failures.push({ kind: 'expect', step: stepNumber, counter, expected: value, actual: actual ?? null });
    }
  }
  return failures;
}
