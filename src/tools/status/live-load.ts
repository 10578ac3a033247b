/**
 * Load on one live-page server: N pages held open on /events and Prometheus
 * scrapes of /metrics at a fixed rate, for a while, on loopback only. Counts
 * every error (a refused connection, a status other than 200, a page that lost
 * its stream, a scrape that did not parse). The load runs in a child process
 * and the server in this one, so that this process's memory, sampled after a
 * forced collection, is the server's own. Used by bench/live-load.ts (the
 * 60 s run) and by a short test. Also: `startServe`, the real command in a
 * child, for the browser test.
 */
import { type SpawnOptions, spawn } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const CLI = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));

export interface ServeChild {
  readonly pid: number;
  /** http://127.0.0.1:PORT/ */
  readonly url: string;
  /** What it wrote so far, both streams. */
  output(): string;
  /** SIGINT, and its exit code once it has gone. */
  stop(): Promise<number | null>;
}

/** Runs `ksmkit status --serve 0 ARGS...` (from the sources, via tsx) and waits for its page URL. */
export async function startServe(args: readonly string[], options: SpawnOptions = {}): Promise<ServeChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'status', '--serve', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...options,
  });
  let out = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stdout!.setEncoding('utf8');
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: string) => {
      out += d;
      const m = /live page at (http:\/\/\S+\/),/.exec(out);
      if (m !== null) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`status --serve exited ${code}: ${out}`)));
  });
  return {
    pid: child.pid!,
    url,
    output: () => out,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = once(child, 'exit');
      child.kill('SIGINT');
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
}

/** One server-sent event. */
export interface SseEvent {
  readonly event: string;
  readonly data: string;
}

export interface SseStream {
  readonly status: number;
  /** Resolves when the server ends the stream or it fails; with the error, if any. */
  readonly ended: Promise<Error | undefined>;
  close(): void;
}

/** Opens an event stream and calls `onEvent` for each event as it completes. */
export function openEvents(url: string, onEvent: (e: SseEvent) => void): Promise<SseStream> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream' } }, (res) => {
      let buffer = '';
      let endedBy: Error | undefined;
      let closedByUs = false;
      const ended = new Promise<Error | undefined>((done) => {
        res.on('error', (e) => {
          endedBy = e;
        });
        res.on('close', () =>
          done(closedByUs ? undefined : (endedBy ?? new Error('the server ended the stream'))),
        );
      });
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length > 0) onEvent({ event, data: data.join('\n') });
        }
      });
      resolve({
        status: res.statusCode ?? 0,
        ended,
        close: () => {
          closedByUs = true;
          req.destroy();
        },
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** One sample of a Prometheus exposition, by name (no labels), or undefined. */
export function sampleOf(exposition: string, name: string): number | undefined {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(exposition);
  return m === null ? undefined : Number(m[1]);
}

export interface LoadOptions {
  /** The server's base URL, http://127.0.0.1:PORT (loopback only). */
  readonly baseUrl: string;
  readonly pages: number;
  readonly scrapesPerSecond: number;
  readonly durationMs: number;
}

export interface MemorySample {
  readonly atMs: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  /** Memory outside the V8 heap that V8 knows of (Buffers, sockets' ArrayBuffers). */
  readonly externalBytes: number;
}

export interface LoadResult {
  readonly pages: number;
  readonly scrapes: number;
  readonly scrapeErrors: number;
  /** Pages that could not connect or lost their stream before the end. */
  readonly pageErrors: number;
  /** Ticks received, all pages together. */
  readonly ticks: number;
  /** The fewest ticks one page received. */
  readonly fewestTicks: number;
  /** The server's count of open pages, read mid-run. */
  readonly serverPagesMidRun: number | undefined;
  readonly errors: readonly string[];
}

async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  const body = await res.text();
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  if (sampleOf(body, 'ksm_available') === undefined) throw new Error('/metrics has no ksm_available');
  return body;
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const base = new URL(options.baseUrl);
  if (!/^(127\.\d+\.\d+\.\d+|\[::1\]|localhost)$/.test(base.hostname)) {
    throw new Error(`the load runs on loopback only, not ${base.hostname}`);
  }
  const errors: string[] = [];
  const note = (e: string): void => {
    if (errors.length < 20) errors.push(e);
  };
  const ticks = new Array<number>(options.pages).fill(0);
  const streams: SseStream[] = [];
  let stopping = false;
  let pageErrors = 0;
  for (let i = 0; i < options.pages; i++) {
    try {
      const s = await openEvents(new URL('/events', base).href, (e) => {
        if (e.event === 'tick') ticks[i]!++;
      });
      if (s.status !== 200) throw new Error(`/events answered ${s.status}`);
      streams.push(s);
      void s.ended.then((e) => {
        if (e !== undefined && !stopping) {
          pageErrors++;
          note(`page ${i}: ${e.message}`);
        }
      });
    } catch (e) {
      pageErrors++;
      note(`page ${i}: ${(e as Error).message}`);
    }
  }
  const metricsUrl = new URL('/metrics', base).href;
  const started = performance.now();
  let scrapes = 0;
  let scrapeErrors = 0;
  let serverPagesMidRun: number | undefined;
  const inFlight = new Set<Promise<void>>();
  const periodMs = 1000 / options.scrapesPerSecond;
  for (let k = 0; ; k++) {
    const dueMs = k * periodMs;
    if (dueMs >= options.durationMs) break;
    const waitMs = dueMs - (performance.now() - started);
    if (waitMs > 0) await sleep(waitMs);
    const atMs = performance.now() - started;
    const midRun = serverPagesMidRun === undefined && atMs >= options.durationMs / 2;
    scrapes++;
    const p = scrape(metricsUrl)
      .then((body) => {
        if (midRun) serverPagesMidRun = sampleOf(body, 'ksmkit_live_pages');
      })
      .catch((e: Error) => {
        scrapeErrors++;
        note(`scrape ${k}: ${e.message}`);
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  }
  await Promise.all(inFlight);
  stopping = true;
  for (const s of streams) s.close();
  return {
    pages: options.pages,
    scrapes,
    scrapeErrors,
    pageErrors,
    ticks: ticks.reduce((a, b) => a + b, 0),
    fewestTicks: Math.min(...ticks),
    serverPagesMidRun,
    errors,
  };
}

const LOAD_CHILD = `
const { runLoad } = await import(${JSON.stringify(import.meta.url)});
const result = await runLoad(JSON.parse(process.argv[1]));
process.stdout.write(JSON.stringify(result));
`;

/** runLoad in a child process: its sockets and buffers are not counted as the server's memory. */
export async function runLoadInChild(options: LoadOptions): Promise<LoadResult> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', LOAD_CHILD, JSON.stringify(options)],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new Error(`the load process exited ${code}: ${err.trim()}`);
  return JSON.parse(out) as LoadResult;
}

/** A full collection now (V8's gc, reached without --expose-gc on the command line). */
export function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** This process's memory after a full collection. */
export function memoryNow(atMs: number): MemorySample {
  collectGarbage();
  const m = process.memoryUsage();
  return { atMs, rssBytes: m.rss, heapUsedBytes: m.heapUsed, externalBytes: m.external };
}

/** The load in a child against a server in this process, this process's memory sampled every `everyMs`. */
export async function loadWithMemory(
  options: LoadOptions,
  everyMs: number,
): Promise<{ result: LoadResult; memory: MemorySample[] }> {
  const started = performance.now();
  const memory: MemorySample[] = [memoryNow(0)];
  const timer = setInterval(() => memory.push(memoryNow(performance.now() - started)), everyMs);
  try {
    const result = await runLoadInChild(options);
    memory.push(memoryNow(performance.now() - started));
    return { result, memory };
  } finally {
    clearInterval(timer);
  }
}

/**
 * How much the server's memory may grow over a load run and still count as
 * flat. The heap and the external memory (after a full collection) are what a
 * leak would grow; RSS also takes one-off steps as V8 and malloc keep pages
 * they freed (measured: one step of about 12 MiB near the first minute, then
 * level for the next minute), hence its wider bound.
 */
export const FLAT_RSS_BYTES = 32 * 2 ** 20;
export const FLAT_HEAP_BYTES = 4 * 2 ** 20;
export const FLAT_EXTERNAL_BYTES = 4 * 2 ** 20;

export interface LoadVerdict {
  /** Memory at the first sample after the warm-up, and at the last. */
  readonly start: MemorySample;
  readonly end: MemorySample;
  readonly failures: readonly string[];
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** No error, every page kept up, the server counted every page, and memory flat. */
export function judgeLoad(
  r: LoadResult,
  memory: readonly MemorySample[],
  options: { warmupMs: number; minTicksPerPage: number },
): LoadVerdict {
  const failures: string[] = [];
  if (r.scrapeErrors > 0) failures.push(`${r.scrapeErrors} of ${r.scrapes} scrapes failed`);
  if (r.pageErrors > 0) failures.push(`${r.pageErrors} of ${r.pages} pages lost their stream`);
  if (r.fewestTicks < options.minTicksPerPage) {
    failures.push(`a page got ${r.fewestTicks} readings, fewer than ${options.minTicksPerPage}`);
  }
  if (r.serverPagesMidRun !== r.pages)
    failures.push(`the server counted ${r.serverPagesMidRun} pages, not ${r.pages}`);
  const after = memory.filter((m) => m.atMs >= options.warmupMs);
  if (after.length < 2) throw new Error(`only ${after.length} memory samples after the warm-up: run longer`);
  const start = after[0]!;
  const end = after[after.length - 1]!;
  if (end.rssBytes - start.rssBytes > FLAT_RSS_BYTES) {
    failures.push(`RSS grew ${mib(end.rssBytes - start.rssBytes)} (over ${mib(FLAT_RSS_BYTES)})`);
  }
  if (end.heapUsedBytes - start.heapUsedBytes > FLAT_HEAP_BYTES) {
    failures.push(
      `the heap grew ${mib(end.heapUsedBytes - start.heapUsedBytes)} (over ${mib(FLAT_HEAP_BYTES)})`,
    );
  }
  return { start, end, failures };
}

/** The run in a few lines. */
export function formatLoad(r: LoadResult, v: LoadVerdict, seconds: number): string[] {
  return [
    `${r.pages} pages on /events, ${r.scrapes} scrapes of /metrics in ${seconds} s`,
    `errors: ${r.scrapeErrors} scrapes, ${r.pageErrors} pages; readings per page: at least ${r.fewestTicks} ` +
      `(${r.ticks} in all); pages the server counted mid-run: ${r.serverPagesMidRun}`,
    `server (after a full collection) at ${(v.start.atMs / 1000).toFixed(0)} s: RSS ${mib(v.start.rssBytes)}, ` +
      `heap ${mib(v.start.heapUsedBytes)}, external ${mib(v.start.externalBytes)}; at ` +
      `${(v.end.atMs / 1000).toFixed(0)} s: RSS ${mib(v.end.rssBytes)}, heap ${mib(v.end.heapUsedBytes)}, ` +
      `external ${mib(v.end.externalBytes)}`,
    ...r.errors.map((e) => `  ${e}`),
    v.failures.length === 0 ? 'verdict: no error, memory flat' : `verdict: FAILED: ${v.failures.join('; ')}`,
  ];
}
