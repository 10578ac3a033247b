/**
 * Reading and hashing pages, in this thread or in worker threads.
 *
 * A job is a file (/proc/PID/mem or a dump file) and a list of segments
 * (position, pages). Its result is one 64-bit key and one flag per page
 * (PAGE_DATA, PAGE_ZERO, PAGE_UNREADABLE), in segment order. The caller counts
 * the keys (the content table stays in one thread) while the workers read and
 * hash the next jobs: reading /proc/PID/mem is a kernel copy that runs at
 * 3–5 GB/s in one thread, so two readers and a counter roughly double the
 * throughput on two cores.
 *
 * The workers are driven through shared memory and Atomics.wait, so the
 * whole estimate stays synchronous (no event loop turn is needed to read).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ANALYSIS_STRIDE, analyzePages, TIMING_ENTRIES } from '../compress/native.ts';
import { PAGE_BYTES } from './model.ts';
import { hashPage, PAGE_UNREADABLE } from './page-counter.ts';

export const DEFAULT_READ_BYTES = 4 << 20;
/** Most segments one job carries. */
export const MAX_SEGMENTS = 4096;
const PATH_BYTES = 4096;

export interface Job<T> {
  readonly path: string;
  /** Positions (bytes) and page counts, flattened: [pos0, pages0, pos1, pages1, …]. */
  readonly segments: Float64Array;
  readonly segmentCount: number;
  readonly pages: number;
  /** The caller's own data for this job (frames of the pages, …). */
  readonly tag: T;
}

export interface JobResult {
  readonly keys: Uint32Array;
  readonly flags: Uint8Array;
  /** Each page's first two bytes, big-endian (the start of its memcmp order: a twin keeps it). */
  readonly prefixes: Uint16Array;
  readonly pages: number;
  /** With compression analysis (estimate --compare): per page, analyzePages()'s entries, and the job's CPU timing. */
  readonly analysis?: PageAnalysis;
  /** Reading in this thread: the pages themselves, page i at i × 4096 (valid until the next job). */
  readonly data?: Uint8Array;
}

/** Page i of a result read in this thread. */
export function pageOf(result: JobResult, i: number): Uint8Array {
  if (result.data === undefined) throw new Error('pageOf: the pages were read in another thread');
  return result.data.subarray(i * PAGE_BYTES, (i + 1) * PAGE_BYTES);
}

/** Where a reader puts the compression analysis of a job's pages (compress/native.ts). */
export interface PageAnalysis {
  /** ANALYSIS_STRIDE entries a page, in the order of the job's pages. */
  readonly pages: Int32Array;
  /** TIMING_ENTRIES: what analysing this job's pages cost. */
  readonly timing: Float64Array;
}

function newAnalysis(maxPages: number): PageAnalysis {
  return { pages: new Int32Array(maxPages * ANALYSIS_STRIDE), timing: new Float64Array(TIMING_ENTRIES) };
}

export interface PageReader {
  /** Pages per job at most. */
  readonly maxPages: number;
  /** Runs every job; `onResult` sees each result before its buffers are reused, in no particular order. */
  run<T>(jobs: Iterable<Job<T>>, onResult: (job: Job<T>, result: JobResult) => void): void;
  close(): void;
}

/** Reads and hashes one job into keys/flags; `files` caches the open file. */
export class JobExecutor {
  private path = '';
  private fd = -1;
  /** Page i of the last job at i × 4096. */
  readonly buf: Buffer;

  constructor(readonly maxPages: number) {
    this.buf = Buffer.from(new ArrayBuffer(maxPages * PAGE_BYTES));
  }

  execute(
    path: string,
    segments: Float64Array,
    segmentCount: number,
    keys: Uint32Array,
    flags: Uint8Array,
    prefixes: Uint16Array,
    analysis?: PageAnalysis,
  ): number {
    analysis?.timing.fill(0);
    if (path !== this.path) {
      this.closeFile();
      this.fd = openSync(path, 'r');
      this.path = path;
    }
    let index = 0;
    for (let s = 0; s < segmentCount; s++) {
      const position = segments[2 * s]!;
      const pages = segments[2 * s + 1]!;
      let done = 0;
      while (done < pages) {
        let got = 0;
        try {
          got = Math.floor(
            readSync(
              this.fd,
              this.buf,
              index * PAGE_BYTES,
              (pages - done) * PAGE_BYTES,
              position + done * PAGE_BYTES,
            ) / PAGE_BYTES,
          );
        } catch {
          got = 0;
        }
        if (got === 0) {
          // The page went away (the process changed, EIO) or the file ended: skip it, go on with the next.
          flags[index++] = PAGE_UNREADABLE;
          done++;
          continue;
        }
        if (analysis !== undefined) {
          analyzePages(
            this.buf.subarray(index * PAGE_BYTES, (index + got) * PAGE_BYTES),
            analysis.pages.subarray(index * ANALYSIS_STRIDE, (index + got) * ANALYSIS_STRIDE),
            analysis.timing,
          );
        }
        for (let i = 0; i < got; i++) {
          flags[index] = hashPage(this.buf, index * PAGE_BYTES, keys, index);
          prefixes[index] = (this.buf[index * PAGE_BYTES]! << 8) | this.buf[index * PAGE_BYTES + 1]!;
          index++;
        }
        done += got;
      }
    }
    return index;
  }

  closeFile(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.path = '';
  }
}

/** Everything in this thread. */
export class InlineReader implements PageReader {
  private readonly executor: JobExecutor;
  private readonly keys: Uint32Array;
  private readonly flags: Uint8Array;
  private readonly prefixes: Uint16Array;
  private readonly analysis: PageAnalysis | undefined;

  constructor(
    readonly maxPages: number,
    analyze = false,
  ) {
    this.executor = new JobExecutor(maxPages);
    this.keys = new Uint32Array(2 * maxPages);
    this.flags = new Uint8Array(maxPages);
    this.prefixes = new Uint16Array(maxPages);
    this.analysis = analyze ? newAnalysis(maxPages) : undefined;
  }

  run<T>(jobs: Iterable<Job<T>>, onResult: (job: Job<T>, result: JobResult) => void): void {
    try {
      for (const job of jobs) {
        const { keys, flags, prefixes, analysis } = this;
        const pages = this.executor.execute(
          job.path,
          job.segments,
          job.segmentCount,
          keys,
          flags,
          prefixes,
          analysis,
        );
        const data = this.executor.buf;
        onResult(job, {
          keys,
          flags,
          prefixes,
          pages,
          data,
          ...(analysis !== undefined ? { analysis } : {}),
        });
      }
    } finally {
      this.executor.closeFile();
    }
  }

  close(): void {
    this.executor.closeFile();
  }
}

// Control words of a worker (Int32Array on shared memory).
const CTL_POSTED = 0;
const CTL_DONE = 1;
const CTL_SEGMENTS = 2;
const CTL_PATH_LENGTH = 3;
const CTL_EXIT = 4;
const CTL_PAGES = 5;
const CTL_ERROR = 6;
const CTL_READY = 7;
const CTL_WORDS = 8;

export interface WorkerShared {
  readonly ctl: SharedArrayBuffer;
  readonly segments: SharedArrayBuffer;
  readonly path: SharedArrayBuffer;
  readonly keys: SharedArrayBuffer;
  readonly flags: SharedArrayBuffer;
  readonly prefixes: SharedArrayBuffer;
  /** With compression analysis: PageAnalysis.pages and .timing. */
  readonly analysisPages?: SharedArrayBuffer;
  readonly analysisTiming?: SharedArrayBuffer;
  readonly maxPages: number;
}

/** The worker's side: wait for a job, run it, report, until told to exit. */
export function workerLoop(shared: WorkerShared): void {
  const ctl = new Int32Array(shared.ctl);
  const segments = new Float64Array(shared.segments);
  const pathBytes = new Uint8Array(shared.path);
  const keys = new Uint32Array(shared.keys);
  const flags = new Uint8Array(shared.flags);
  const prefixes = new Uint16Array(shared.prefixes);
  const executor = new JobExecutor(shared.maxPages);
  const analysis: PageAnalysis | undefined =
    shared.analysisPages !== undefined && shared.analysisTiming !== undefined
      ? { pages: new Int32Array(shared.analysisPages), timing: new Float64Array(shared.analysisTiming) }
      : undefined;
  let seen = 0;
  Atomics.store(ctl, CTL_READY, 1);
  Atomics.notify(ctl, CTL_READY);
  for (;;) {
    Atomics.wait(ctl, CTL_POSTED, seen);
    seen = Atomics.load(ctl, CTL_POSTED);
    if (Atomics.load(ctl, CTL_EXIT) === 1) break;
    try {
      const path = Buffer.from(pathBytes.slice(0, ctl[CTL_PATH_LENGTH]!)).toString('utf8');
      ctl[CTL_PAGES] = executor.execute(path, segments, ctl[CTL_SEGMENTS]!, keys, flags, prefixes, analysis);
      ctl[CTL_ERROR] = 0;
    } catch {
      // The file could not be opened: every page of the job is unreadable.
      let pages = 0;
      for (let s = 0; s < ctl[CTL_SEGMENTS]!; s++) pages += segments[2 * s + 1]!;
      flags.fill(PAGE_UNREADABLE, 0, pages);
      ctl[CTL_PAGES] = pages;
      ctl[CTL_ERROR] = 1;
      executor.closeFile();
    }
    Atomics.store(ctl, CTL_DONE, seen);
    Atomics.notify(ctl, CTL_DONE);
  }
  executor.closeFile();
}

interface Slot<T> {
  readonly worker: Worker;
  readonly ctl: Int32Array;
  readonly segments: Float64Array;
  readonly path: Uint8Array;
  readonly keys: Uint32Array;
  readonly flags: Uint8Array;
  readonly prefixes: Uint16Array;
  readonly analysis: PageAnalysis | undefined;
  seq: number;
  job: Job<T> | undefined;
}

/** Reads and hashes in `threads` worker threads; counts in the caller's. */
export class WorkerReader implements PageReader {
  private readonly slots: Slot<unknown>[] = [];

  constructor(
    readonly maxPages: number,
    threads: number,
    analyze = false,
  ) {
    const ext = extname(fileURLToPath(import.meta.url));
    const script = new URL(`./hash-worker${ext}`, import.meta.url);
    // From the TypeScript sources (tsx), a worker does not inherit the loader: register it there first.
    const source =
      ext === '.ts'
        ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})` +
          `.then((m) => { m.register(); return import(${JSON.stringify(script.href)}); })`
        : undefined;
    for (let i = 0; i < threads; i++) {
      const shared: WorkerShared = {
        ctl: new SharedArrayBuffer(CTL_WORDS * 4),
        segments: new SharedArrayBuffer(MAX_SEGMENTS * 2 * 8),
        path: new SharedArrayBuffer(PATH_BYTES),
        keys: new SharedArrayBuffer(maxPages * 8),
        flags: new SharedArrayBuffer(maxPages),
        prefixes: new SharedArrayBuffer(maxPages * 2),
        ...(analyze
          ? {
              analysisPages: new SharedArrayBuffer(maxPages * ANALYSIS_STRIDE * 4),
              analysisTiming: new SharedArrayBuffer(TIMING_ENTRIES * 8),
            }
          : {}),
        maxPages,
      };
      const worker =
        source !== undefined
          ? new Worker(source, { eval: true, workerData: shared })
          : new Worker(script, { workerData: shared });
      worker.unref();
      // Errors surface as a dead thread (see wait()); an unhandled 'error' event would end the process.
      worker.on('error', () => {});
      this.slots.push({
        worker,
        ctl: new Int32Array(shared.ctl),
        segments: new Float64Array(shared.segments),
        path: new Uint8Array(shared.path),
        keys: new Uint32Array(shared.keys),
        flags: new Uint8Array(shared.flags),
        prefixes: new Uint16Array(shared.prefixes),
        analysis:
          shared.analysisPages !== undefined && shared.analysisTiming !== undefined
            ? { pages: new Int32Array(shared.analysisPages), timing: new Float64Array(shared.analysisTiming) }
            : undefined,
        seq: 0,
        job: undefined,
      });
    }
  }

  /**
   * Waits until every thread runs its loop; false if one does not within
   * `timeoutMs`. Asynchronous on purpose: a thread's start may need this
   * thread's event loop (module loader hooks such as tsx's run through it).
   */
  async ready(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (const slot of this.slots) {
      while (Atomics.load(slot.ctl, CTL_READY) !== 1) {
        if (Date.now() > deadline || slot.worker.threadId < 0) return false;
        await sleep(2);
      }
    }
    return true;
  }

  private post<T>(slot: Slot<T>, job: Job<T>): void {
    const path = Buffer.from(job.path, 'utf8');
    if (path.length > PATH_BYTES) throw new Error(`path too long: ${job.path}`);
    slot.path.set(path);
    slot.ctl[CTL_PATH_LENGTH] = path.length;
    slot.segments.set(job.segments.subarray(0, 2 * job.segmentCount));
    slot.ctl[CTL_SEGMENTS] = job.segmentCount;
    slot.job = job;
    slot.seq++;
    Atomics.store(slot.ctl, CTL_POSTED, slot.seq);
    Atomics.notify(slot.ctl, CTL_POSTED);
  }

  private wait<T>(slot: Slot<T>): void {
    // A worker that died (it cannot load, it crashed) would leave us waiting forever: check every second.
    for (;;) {
      const r = Atomics.wait(slot.ctl, CTL_DONE, slot.seq - 1, 1000);
      if (r !== 'timed-out' || Atomics.load(slot.ctl, CTL_DONE) === slot.seq) return;
      if (slot.worker.threadId < 0) throw new Error('estimate: a reader thread died');
    }
  }

  run<T>(jobs: Iterable<Job<T>>, onResult: (job: Job<T>, result: JobResult) => void): void {
    const slots = this.slots as Slot<T>[];
    const it = jobs[Symbol.iterator]();
    const next = (): Job<T> | undefined => {
      const r = it.next();
      return r.done === true ? undefined : r.value;
    };
    let busy = 0;
    for (const slot of slots) {
      const job = next();
      if (job === undefined) break;
      this.post(slot, job);
      busy++;
    }
    // Round robin: the jobs are about the same size, so the oldest one is the next to finish.
    for (let i = 0; busy > 0; i = (i + 1) % slots.length) {
      const slot = slots[i]!;
      if (slot.job === undefined) continue;
      this.wait(slot);
      const job = slot.job;
      slot.job = undefined;
      busy--;
      // Hand the worker its next job before counting this one: it reads while we count.
      const following = next();
      const keys = slot.keys.slice(0, 2 * slot.ctl[CTL_PAGES]!);
      const flags = slot.flags.slice(0, slot.ctl[CTL_PAGES]!);
      const prefixes = slot.prefixes.slice(0, slot.ctl[CTL_PAGES]!);
      const analysis =
        slot.analysis !== undefined
          ? {
              pages: slot.analysis.pages.slice(0, flags.length * ANALYSIS_STRIDE),
              timing: slot.analysis.timing.slice(),
            }
          : undefined;
      if (following !== undefined) {
        this.post(slot, following);
        busy++;
      }
      onResult(job, {
        keys,
        flags,
        prefixes,
        pages: flags.length,
        ...(analysis !== undefined ? { analysis } : {}),
      });
    }
  }

  close(): void {
    for (const slot of this.slots) {
      Atomics.store(slot.ctl, CTL_EXIT, 1);
      Atomics.add(slot.ctl, CTL_POSTED, 1);
      Atomics.notify(slot.ctl, CTL_POSTED);
    }
    this.slots.length = 0;
  }
}

/** Reader threads worth starting here: one per core, at most 4; 0 means read in this thread. */
export function defaultThreads(expectedBytes: number): number {
  // Starting a thread costs tens of milliseconds (more under tsx): not worth it for small inputs.
  if (expectedBytes < 256 << 20) return 0;
  return Math.min(Math.max(availableParallelism(), 1), 4);
}

/** A reader of `threads` threads (0: this one); with `analyze`, results carry the pages' compression analysis. */
export async function openReader(maxPages: number, threads: number, analyze = false): Promise<PageReader> {
  if (threads <= 0) return new InlineReader(maxPages, analyze);
  try {
    const reader = new WorkerReader(maxPages, threads, analyze);
    if (await reader.ready(15_000)) return reader;
    reader.close();
  } catch {
    // No worker threads here: read in this one.
  }
  return new InlineReader(maxPages, analyze);
}
