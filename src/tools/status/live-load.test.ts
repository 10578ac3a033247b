/**
 * The load test, short: 50 pages on /events and Prometheus scrapes at 10/s
 * for 8 s against one server on 127.0.0.1 (this process; the load from a
 * child). No error, every page gets the readings, the server counts 50 pages,
 * and its memory after a full collection stays flat. The 60 s run is
 * `npm run bench:live`. Fixture directories: runs anywhere.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatLoad, judgeLoad, loadWithMemory, runLoad } from './live-load.ts';
import { serveStatus } from './serve.ts';
import { host618 } from './test-fixtures.ts';

test('50 pages and 10 scrapes a second for 8 s: no error, memory flat', { timeout: 60_000 }, async () => {
  const f = host618();
  const server = await serveStatus({ port: 0, sources: f.sources, intervalMs: 250 });
  try {
    const seconds = 8;
    const { result, memory } = await loadWithMemory(
      { baseUrl: server.pageUrl, pages: 50, scrapesPerSecond: 10, durationMs: seconds * 1000 },
      1000,
    );
    const verdict = judgeLoad(result, memory, { warmupMs: 2000, minTicksPerPage: (seconds / 0.25) * 0.7 });
    const report = formatLoad(result, verdict, seconds).join('\n');
    console.log(report);
    assert.equal(result.scrapes, 80);
    assert.deepEqual(verdict.failures, [], report);
    for (let i = 0; i < 20 && server.events.size > 0; i++) await sleep(100);
    assert.equal(server.events.size, 0, 'every page went away when the load ended');
  } finally {
    await server.close();
    f.cleanup();
  }
});

test('the load runs on loopback only', async () => {
  await assert.rejects(
    runLoad({ baseUrl: 'http://192.0.2.1:9/', pages: 1, scrapesPerSecond: 1, durationMs: 1000 }),
    /the load runs on loopback only, not 192\.0\.2\.1/,
  );
});
