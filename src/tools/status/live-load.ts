/**
 * Load on one `ksmkit status --serve`: N pages held open on /events and
 * Prometheus scrapes of /metrics at a fixed rate, for a while, on loopback
 * only. Counts every error (a refused connection, a status other than 200, a
 * page that lost its stream, a scrape that did not parse) and samples the
 * server's own memory from /metrics (process_resident_memory_bytes,
 * nodejs_heap_used_bytes) as it goes. Used by bench/live-load.ts (the 60 s
 * run) and by a short test.
 */
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

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
  /** How often the server's memory is sampled. */
  readonly memoryEveryMs?: number;
}

export interface MemorySample {
  readonly atMs: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
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
  readonly memory: readonly MemorySample[];
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
  const memory: MemorySample[] = [];
  const started = performance.now();
  let scrapes = 0;
  let scrapeErrors = 0;
  let serverPagesMidRun: number | undefined;
  let nextMemoryMs = 0;
  const inFlight = new Set<Promise<void>>();
  const periodMs = 1000 / options.scrapesPerSecond;
  for (let k = 0; ; k++) {
    const dueMs = k * periodMs;
    if (dueMs >= options.durationMs) break;
    const waitMs = dueMs - (performance.now() - started);
    if (waitMs > 0) await sleep(waitMs);
    const atMs = performance.now() - started;
    const takeMemory = atMs >= nextMemoryMs;
    if (takeMemory) nextMemoryMs += options.memoryEveryMs ?? 5000;
    const midRun = serverPagesMidRun === undefined && atMs >= options.durationMs / 2;
    scrapes++;
    const p = scrape(metricsUrl)
      .then((body) => {
        if (takeMemory) {
          memory.push({
            atMs,
            rssBytes: sampleOf(body, 'process_resident_memory_bytes') ?? Number.NaN,
            heapUsedBytes: sampleOf(body, 'nodejs_heap_used_bytes') ?? Number.NaN,
          });
        }
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
    memory,
    errors,
  };
}
