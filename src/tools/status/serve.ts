/**
 * `ksmkit status --serve PORT`: the live page at /, its readings as
 * server-sent events at /events (one reading per interval for every open page,
 * see live.ts), and the Prometheus exposition at /metrics (read fresh on every
 * scrape). Read-only: GET and HEAD, nothing else. On a loopback address unless
 * told otherwise; there, a request naming any other host is refused, so a web
 * page elsewhere cannot read this one through DNS rebinding.
 *
 * The page is the bundle `npm install` builds into dist/web/live (vite.config
 * in src/web/live); it is read once at start, and every file of it is served
 * from memory by its exact path, so nothing else on disk can be reached.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LiveEvents, LiveSampler } from './live.ts';
import { type ExtraFamily, formatPrometheus, PROMETHEUS_CONTENT_TYPE } from './prometheus.ts';
import { HOST_SOURCES, readSnapshot, type SnapshotOptions, type StatusSources } from './snapshot.ts';

export const DEFAULT_SERVE_HOST = '127.0.0.1';
export const DEFAULT_SERVE_INTERVAL_MS = 2000;

/** Where the package's build puts the page (the same from src/ and from dist/). */
export const DEFAULT_PAGE_DIR = fileURLToPath(new URL('../../../dist/web/live/', import.meta.url));

export const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

export interface ServeOptions {
  /** 0 picks a free port. */
  readonly port: number;
  readonly host?: string;
  readonly sources?: StatusSources;
  readonly snapshot?: SnapshotOptions;
  /** Between two readings for the page (default 2 s). */
  readonly intervalMs?: number;
  /** The built page (default dist/web/live). */
  readonly pageDir?: string;
  /** Open pages served at once. */
  readonly maxClients?: number;
  /** The sampler, when a test wants its own (fake ksmd CPU, short history). */
  readonly sampler?: LiveSampler;
}

export interface StatusServer {
  readonly server: Server;
  readonly port: number;
  /** http://HOST:PORT/metrics (IPv6 hosts in brackets). */
  readonly url: string;
  /** http://HOST:PORT/: the live page. */
  readonly pageUrl: string;
  /** Whether the page was built (false: / says how to build it). */
  readonly pageBuilt: boolean;
  readonly sampler: LiveSampler;
  readonly events: LiveEvents;
  close(): Promise<void>;
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

/** Nothing but this server: no script, style, image or connection from anywhere else. */
const PAGE_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const PAGE_HEADERS = {
  'content-security-policy': PAGE_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
} as const;

interface PageFile {
  readonly body: Buffer;
  readonly type: string;
}

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? listFiles(path) : [path];
  });
}

/** Every file of the built page by its URL path; empty when the page was not built. */
export function loadPage(dir: string): Map<string, PageFile> {
  const files = new Map<string, PageFile>();
  let paths: string[];
  try {
    paths = listFiles(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return files;
    throw e;
  }
  for (const path of paths) {
    const type = CONTENT_TYPES[extname(path)];
    if (type === undefined) continue;
    const url = `/${relative(dir, path).split(sep).join('/')}`;
    files.set(url === '/index.html' ? '/' : url, { body: readFileSync(path), type });
  }
  return files;
}

function urlOf(host: string, port: number, path: string): string {
  const h = host.includes(':') ? `[${host}]` : host;
  return `http://${h}:${port}${path}`;
}

/** The host part of a Host header ("[::1]:8080" → "::1"). */
export function hostOfHeader(header: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(header);
  if (bracketed !== null) return bracketed[1]!;
  return header.replace(/:\d+$/, '');
}

function text(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
  res.end(body);
}

function exporterFamilies(sampler: LiveSampler, events: LiveEvents): ExtraFamily[] {
  const families: ExtraFamily[] = [];
  const ksmdCpu = sampler.ksmdCpuSeconds();
  if (ksmdCpu !== null) {
    families.push({
      name: 'ksm_ksmd_cpu_seconds_total',
      type: 'counter',
      help: 'CPU time ksmd has used since boot (/proc/<ksmd>/schedstat)',
      value: ksmdCpu,
    });
  }
  const memory = process.memoryUsage();
  families.push(
    { name: 'ksmkit_live_pages', type: 'gauge', help: 'pages open on the live page now', value: events.size },
    {
      name: 'ksmkit_live_pages_dropped_total',
      type: 'counter',
      help: 'pages dropped for not keeping up with the readings',
      value: events.dropped,
    },
    {
      name: 'process_resident_memory_bytes',
      type: 'gauge',
      help: 'resident memory of this ksmkit server',
      value: memory.rss,
    },
    {
      name: 'nodejs_heap_used_bytes',
      type: 'gauge',
      help: 'V8 heap in use by this ksmkit server',
      value: memory.heapUsed,
    },
  );
  return families;
}

function serveMetrics(req: IncomingMessage, res: ServerResponse, options: ServeOptions, live: Live): void {
  let body: string;
  try {
    body = formatPrometheus(
      readSnapshot(options.sources ?? HOST_SOURCES, options.snapshot),
      exporterFamilies(live.sampler, live.events),
    );
  } catch (e) {
    text(res, 500, `ksmkit: cannot read KSM state: ${(e as Error).message}\n`);
    return;
  }
  res.writeHead(200, {
    'content-type': PROMETHEUS_CONTENT_TYPE,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

interface Live {
  readonly sampler: LiveSampler;
  readonly events: LiveEvents;
  readonly page: ReadonlyMap<string, PageFile>;
}

function handle(req: IncomingMessage, res: ServerResponse, host: string, options: ServeOptions, live: Live) {
  const requested = hostOfHeader(req.headers.host ?? '');
  if (LOOPBACK.test(host) && !LOOPBACK.test(requested) && requested !== host) {
    text(res, 421, `ksmkit serves ${host} only: this request names "${requested}"\n`);
    return;
  }
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    text(res, 405, 'method not allowed: ksmkit status --serve is read-only (GET, HEAD)\n', {
      allow: 'GET, HEAD',
    });
    return;
  }
  if (path === '/metrics') {
    serveMetrics(req, res, options, live);
    return;
  }
  if (path === '/events') {
    if (req.method === 'HEAD') text(res, 200, '', { 'content-type': 'text/event-stream' });
    else live.events.add(res);
    return;
  }
  const file = live.page.get(path);
  if (file === undefined) {
    if (path === '/' && live.page.size === 0) {
      text(res, 503, 'the live page is not built: run `npm install` (or `npm run build`) in ksmkit\n');
      return;
    }
    text(res, 404, 'not found: ksmkit serves /, /events and /metrics\n');
    return;
  }
  res.writeHead(200, {
    ...PAGE_HEADERS,
    'content-type': file.type,
    'content-length': file.body.length,
    // The bundle's file names carry a hash of their content; the page itself is looked up each time.
    'cache-control': path === '/' ? 'no-cache' : 'public, max-age=31536000, immutable',
  });
  res.end(req.method === 'HEAD' ? undefined : file.body);
}

export function serveStatus(options: ServeOptions): Promise<StatusServer> {
  const host = options.host ?? DEFAULT_SERVE_HOST;
  const sampler =
    options.sampler ??
    new LiveSampler({
      intervalMs: options.intervalMs ?? DEFAULT_SERVE_INTERVAL_MS,
      ...(options.sources === undefined ? {} : { sources: options.sources }),
      ...(options.snapshot === undefined ? {} : { snapshot: options.snapshot }),
    });
  const events = new LiveEvents(sampler, options.maxClients);
  const live: Live = { sampler, events, page: loadPage(options.pageDir ?? DEFAULT_PAGE_DIR) };
  const server = createServer((req, res) => handle(req, res, host, options, live));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      sampler.start();
      const port = (server.address() as AddressInfo).port;
      resolve({
        server,
        port,
        url: urlOf(host, port, '/metrics'),
        pageUrl: urlOf(host, port, '/'),
        pageBuilt: live.page.size > 0,
        sampler,
        events,
        close: () =>
          new Promise<void>((done, fail) => {
            sampler.stop();
            events.close();
            server.close((e) => (e === undefined ? done() : fail(e)));
            server.closeAllConnections();
          }),
      });
    });
  });
}
