/**
 * `ksmkit status --serve PORT`: the Prometheus exposition at /metrics, read
 * fresh on every scrape, on a loopback address unless told otherwise.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readTuneMetrics } from '../tune/metrics.ts';
import { formatPrometheus, PROMETHEUS_CONTENT_TYPE } from './prometheus.ts';
import { HOST_SOURCES, readSnapshot, type SnapshotOptions, type StatusSources } from './snapshot.ts';

export const DEFAULT_SERVE_HOST = '127.0.0.1';

export interface ServeOptions {
  /** 0 picks a free port. */
  readonly port: number;
  readonly host?: string;
  readonly sources?: StatusSources;
  readonly snapshot?: SnapshotOptions;
  /** The `ksmkit tune` daemon's metrics file, appended when present. */
  readonly tuneMetricsFile?: string;
}

export interface MetricsServer {
  readonly server: Server;
  readonly port: number;
  /** http://HOST:PORT/metrics (IPv6 hosts in brackets). */
  readonly url: string;
  close(): Promise<void>;
}

function urlOf(host: string, port: number): string {
  const h = host.includes(':') ? `[${host}]` : host;
  return `http://${h}:${port}/metrics`;
}

export function serveMetrics(options: ServeOptions): Promise<MetricsServer> {
  const host = options.host ?? DEFAULT_SERVE_HOST;
  const sources = options.sources ?? HOST_SOURCES;
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('not found: ksmkit serves /metrics only\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain; charset=utf-8', allow: 'GET, HEAD' });
      res.end('method not allowed: GET /metrics\n');
      return;
    }
    let body: string;
    try {
      body =
        formatPrometheus(readSnapshot(sources, options.snapshot)) +
        readTuneMetrics(options.tuneMetricsFile ?? '');
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`ksmkit: cannot read KSM state: ${(e as Error).message}\n`);
      return;
    }
    res.writeHead(200, {
      'content-type': PROMETHEUS_CONTENT_TYPE,
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      const port = (server.address() as AddressInfo).port;
      resolve({
        server,
        port,
        url: urlOf(host, port),
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((e) => (e === undefined ? done() : fail(e)));
            server.closeAllConnections();
          }),
      });
    });
  });
}
