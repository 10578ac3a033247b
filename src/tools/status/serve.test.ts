/**
 * `ksmkit status --serve PORT`: GET /metrics on a loopback address, read fresh
 * on every scrape; the live page's files at / and its readings at /events
 * (one reading per interval however many pages are open); read-only, Host
 * checked, 404 elsewhere; the command line prints the URLs, warns loudly off
 * loopback, and stops cleanly on SIGINT. Ephemeral ports, fixture
 * directories: runs anywhere.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LiveSampler } from './live.ts';
import { openEvents, sampleOf, startServe } from './live-load.ts';
import { LIVE_PROTOCOL_VERSION, LIVE_SERIES, type LiveHello, type LiveTick } from './live-protocol.ts';
import { PROMETHEUS_CONTENT_TYPE } from './prometheus.ts';
import { hostOfHeader, serveStatus } from './serve.ts';
import { host618, parseExposition, spawnCli } from './test-fixtures.ts';

test('GET /metrics: the exposition, read fresh at each scrape; other paths 404, other methods 405', async () => {
  const f = host618();
  const server = await serveStatus({ port: 0, sources: f.sources });
  try {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    assert.notEqual(server.port, 0);
    const first = await fetch(server.url);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('content-type'), PROMETHEUS_CONTENT_TYPE);
    const families = parseExposition(await first.text());
    assert.equal(families.get('ksm_pages_sharing')!.samples[0]!.value, 500);

    f.setKsm('pages_sharing', '777');
    const second = parseExposition(await (await fetch(`${server.url}?x=1`)).text());
    assert.equal(
      second.get('ksm_pages_sharing')!.samples[0]!.value,
      777,
      'each scrape reads the files again',
    );

    const elsewhere = await fetch(server.url.replace('/metrics', '/nope'));
    assert.equal(elsewhere.status, 404);
    await elsewhere.text();
    const post = await fetch(server.url, { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    assert.match(await post.clone().text(), /read-only/);
    await post.text();
    const head = await fetch(server.url, { method: 'HEAD' });
    assert.equal(head.status, 200);
  } finally {
    await server.close();
    f.cleanup();
  }
});

test('the listening address is loopback by default', async () => {
  const f = host618();
  const server = await serveStatus({ port: 0, sources: f.sources });
  try {
    const address = server.server.address();
    assert.ok(address !== null && typeof address === 'object');
    assert.equal(address.address, '127.0.0.1');
  } finally {
    await server.close();
    f.cleanup();
  }
});

test('ksmkit status --serve 0: prints the URL, serves it, exits 0 on SIGINT', async () => {
  const f = host618();
  const child = spawnCli([
    'status',
    '--serve',
    '0',
    '--sysfs-dir',
    f.sources.ksmDir,
    '--proc-dir',
    f.sources.procDir,
  ]);
  try {
    let stdout = '';
    child.stdout!.setEncoding('utf8');
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (d: string) => {
        stdout += d;
        const m = /serving Prometheus metrics at (http:\/\/\S+\/metrics)/.exec(stdout);
        if (m !== null) resolve(m[1]!);
      });
      child.once('exit', (code) => reject(new Error(`exited ${code} before serving: ${stdout}`)));
    });
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const families = parseExposition(await (await fetch(url)).text());
    assert.equal(families.get('ksm_process_profit_bytes')!.samples.length, 3);
    const exited = once(child, 'exit');
    child.kill('SIGINT');
    const [code, signal] = await exited;
    assert.deepEqual([code, signal], [0, null]);
  } finally {
    child.kill('SIGKILL');
    f.cleanup();
  }
});

test('ksmkit status --serve on a port in use: a clear error, exit 1', async () => {
  const f = host618();
  const server = await serveStatus({ port: 0, sources: f.sources });
  try {
    const child = spawnCli(['status', '--serve', String(server.port)]);
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const [code] = await once(child, 'close');
    assert.equal(code, 1);
    assert.match(stderr, new RegExp(`cannot serve on 127\\.0\\.0\\.1:${server.port}: the port is in use`));
  } finally {
    await server.close();
    f.cleanup();
  }
});

/** A built page in a temporary directory: an index and one asset. */
function pageDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'ksmkit-page-'));
  mkdirSync(join(dir, 'assets'));
  writeFileSync(
    join(dir, 'index.html'),
    '<!doctype html><title>live</title><script src="./assets/app-1.js"></script>',
  );
  writeFileSync(join(dir, 'assets/app-1.js'), 'console.log(1)');
  writeFileSync(join(dir, 'notes.txt'), 'not a page file');
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

test('GET /: the built page with a policy that lets nothing load from elsewhere; its assets by exact path', async () => {
  const f = host618();
  const page = pageDir();
  const server = await serveStatus({ port: 0, sources: f.sources, pageDir: page.dir });
  try {
    assert.equal(server.pageUrl, `http://127.0.0.1:${server.port}/`);
    const root = await fetch(server.pageUrl);
    assert.equal(root.status, 200);
    assert.equal(root.headers.get('content-type'), 'text/html; charset=utf-8');
    const policy = root.headers.get('content-security-policy')!;
    assert.match(policy, /default-src 'none'/);
    assert.match(policy, /connect-src 'self'/);
    assert.match(policy, /script-src 'self'(;|$)/);
    assert.equal(root.headers.get('x-content-type-options'), 'nosniff');
    assert.match(await root.text(), /<title>live<\/title>/);
    const asset = await fetch(`${server.pageUrl}assets/app-1.js`);
    assert.equal(asset.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal(await asset.text(), 'console.log(1)');
    for (const path of ['notes.txt', 'index.html', 'assets/../../serve.ts', '%2e%2e/package.json']) {
      const r = await fetch(`${server.pageUrl}${path}`);
      assert.equal(r.status, 404, path);
      await r.text();
    }
  } finally {
    await server.close();
    page.cleanup();
    f.cleanup();
  }
});

test('GET / before the page is built: 503 saying how to build it', async () => {
  const f = host618();
  const server = await serveStatus({ port: 0, sources: f.sources, pageDir: join(f.dir, 'no-such-dir') });
  try {
    assert.equal(server.pageBuilt, false);
    const r = await fetch(server.pageUrl);
    assert.equal(r.status, 503);
    assert.match(await r.text(), /not built: run `npm install`/);
  } finally {
    await server.close();
    f.cleanup();
  }
});

test('a request naming another host is refused (DNS rebinding); loopback names are served', async () => {
  const f = host618();
  const server = await serveStatus({ port: 0, sources: f.sources });
  try {
    const get = (host: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port: server.port, path: '/metrics', headers: { host } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end();
      });
    assert.equal(await get(`evil.example:${server.port}`), 421);
    assert.equal(await get(`localhost:${server.port}`), 200);
    assert.equal(await get(`127.0.0.1:${server.port}`), 200);
    assert.equal(await get(`[::1]:${server.port}`), 200);
  } finally {
    await server.close();
    f.cleanup();
  }
  assert.equal(hostOfHeader('[::1]:8080'), '::1');
  assert.equal(hostOfHeader('example.com:80'), 'example.com');
  assert.equal(hostOfHeader('example.com'), 'example.com');
});

test('GET /events: every open page gets the hello, then the same tick from one reading per interval', async () => {
  const f = host618();
  let reads = 0;
  const sources = {
    ...f.sources,
    readText: (path: string) => {
      if (path.endsWith('/pages_sharing')) reads++;
      return readFileSync(path, 'latin1');
    },
  };
  const sampler = new LiveSampler({ sources, intervalMs: 150, hz: 250, uid: 0, ksmdCpuNs: () => 0 });
  const server = await serveStatus({ port: 0, sources: f.sources, sampler, maxClients: 3 });
  const pages: Array<{ hello: LiveHello | undefined; ticks: LiveTick[] }> = [];
  const streams = [];
  try {
    for (let i = 0; i < 3; i++) {
      const got: { hello: LiveHello | undefined; ticks: LiveTick[] } = { hello: undefined, ticks: [] };
      pages.push(got);
      streams.push(
        await openEvents(`${server.pageUrl}events`, (e) => {
          if (e.event === 'hello') got.hello = JSON.parse(e.data) as LiveHello;
          if (e.event === 'tick') got.ticks.push(JSON.parse(e.data) as LiveTick);
        }),
      );
    }
    assert.deepEqual(
      streams.map((s) => s.status),
      [200, 200, 200],
    );
    const fourth = await fetch(`${server.pageUrl}events`);
    assert.equal(fourth.status, 503, 'no more pages than maxClients');
    await fourth.text();
    const metrics = await (await fetch(server.url)).text();
    assert.equal(sampleOf(metrics, 'ksmkit_live_pages'), 3);
    assert.ok(sampleOf(metrics, 'process_resident_memory_bytes')! > 0);
    f.setKsm('pages_sharing', '900');
    const readsBefore = reads;
    const ticksBefore = pages.map((p) => p.ticks.length);
    await sleep(1000);
    const readings = reads - readsBefore;
    assert.ok(readings >= 3 && readings <= 9, `one reading per 150 ms interval, not per page: ${readings}`);
    for (const [i, p] of pages.entries()) {
      assert.equal(p.hello?.version, LIVE_PROTOCOL_VERSION);
      assert.equal(p.hello?.view.processes[0]?.pid, 100);
      const last = p.ticks.at(-1)!;
      assert.equal(last.point.values[LIVE_SERIES.indexOf('pages_sharing')], 900);
      assert.ok(p.ticks.length - ticksBefore[i]! >= readings - 1, 'every page gets every reading');
    }
    const sameTick = pages.map((p) => JSON.stringify(p.ticks.at(-2)));
    assert.equal(new Set(sameTick).size, 1, 'the pages see the same readings');
  } finally {
    for (const s of streams) s.close();
    await server.close();
    f.cleanup();
  }
});

test('ksmkit status --serve --bind 0.0.0.0: served, with a loud warning on stderr', async () => {
  const f = host618();
  const dirs = ['--sysfs-dir', f.sources.ksmDir, '--proc-dir', f.sources.procDir];
  const server = await startServe(['--bind', '0.0.0.0', '--interval', '0.5', ...dirs]);
  try {
    assert.match(server.url, /^http:\/\/0\.0\.0\.0:\d+\/$/);
    await sleep(200);
    assert.match(server.output(), /a reading every 0\.5 s/);
    assert.match(server.output(), /WARNING: listening on 0\.0\.0\.0, which is NOT a loopback address/);
    assert.match(server.output(), /Leave --bind out to serve 127\.0\.0\.1 only/);
    assert.equal(await server.stop(), 0);
  } finally {
    await server.stop();
    f.cleanup();
  }
});

test("GET /metrics also counts ksmd's CPU seconds (schedstat) and the server's own pages and memory", async () => {
  const f = host618();
  const ksmd = join(f.sources.procDir, '39');
  mkdirSync(ksmd);
  writeFileSync(join(ksmd, 'stat'), '39 (ksmd) S 2 0 0 0 -1 2129984 0 0 0 0 0 0\n');
  writeFileSync(join(ksmd, 'schedstat'), '2500000000 1000 7\n');
  const server = await serveStatus({ port: 0, sources: f.sources });
  try {
    const families = parseExposition(await (await fetch(server.url)).text());
    assert.equal(families.get('ksm_ksmd_cpu_seconds_total')!.samples[0]!.value, 2.5);
    assert.equal(families.get('ksm_ksmd_cpu_seconds_total')!.type, 'counter');
    assert.equal(families.get('ksmkit_live_pages')!.samples[0]!.value, 0);
    assert.ok(families.get('process_resident_memory_bytes')!.samples[0]!.value > 0);
    assert.ok(families.get('nodejs_heap_used_bytes')!.samples[0]!.value > 0);
  } finally {
    await server.close();
    f.cleanup();
  }
});
