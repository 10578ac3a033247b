/**
 * `npm run bench:live`: one live-page server (serveStatus, this process, the
 * real /sys/kernel/mm/ksm and /proc, on 127.0.0.1) under 50 pages held open on
 * /events and Prometheus scrapes at 10/s for 60 s, made by a child process. No
 * error allowed, and the server's memory, sampled after a full collection
 * every 5 s, must stay flat. Exits 1 when it does not.
 *
 *   npm run bench:live -- [--seconds 60] [--pages 50] [--scrapes 10] [--interval 1]
 */
import { parseArgs } from 'node:util';
import { formatLoad, judgeLoad, loadWithMemory } from '../src/tools/status/live-load.ts';
import { serveStatus } from '../src/tools/status/serve.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    pages: { type: 'string', default: '50' },
    scrapes: { type: 'string', default: '10' },
    interval: { type: 'string', default: '1' },
  },
});
const number = (name: keyof typeof values, min: number, max: number): number => {
  const n = Number(values[name]);
  if (!Number.isFinite(n) || n < min || n > max) {
    console.error(`bench:live: --${name} ${values[name]}: must be a number from ${min} to ${max}`);
    process.exit(2);
  }
  return n;
};
const seconds = number('seconds', 10, 3600);
const pages = number('pages', 1, 250);
const scrapes = number('scrapes', 0.1, 100);
const interval = number('interval', 0.1, 60);

const server = await serveStatus({ port: 0, intervalMs: interval * 1000 });
let failed = true;
try {
  console.error(`bench:live: serving ${server.pageUrl}, a reading every ${interval} s`);
  const { result, memory } = await loadWithMemory(
    { baseUrl: server.pageUrl, pages, scrapesPerSecond: scrapes, durationMs: seconds * 1000 },
    5000,
  );
  const verdict = judgeLoad(result, memory, {
    warmupMs: 5000,
    minTicksPerPage: Math.floor((seconds / interval) * 0.8),
  });
  for (const line of formatLoad(result, verdict, seconds)) console.log(line);
  console.log(
    `memory after collection (s: RSS/heap/external MiB): ${memory
      .map(
        (m) =>
          `${(m.atMs / 1000).toFixed(0)}: ${(m.rssBytes / 2 ** 20).toFixed(1)}/${(m.heapUsedBytes / 2 ** 20).toFixed(1)}/${(m.externalBytes / 2 ** 20).toFixed(1)}`,
      )
      .join(', ')}`,
  );
  failed = verdict.failures.length > 0;
} finally {
  await server.close();
}
process.exit(failed ? 1 : 0);
