/**
 * `ksmkit status --serve PORT`: GET /metrics on a loopback address, read fresh
 * on every scrape, 404 elsewhere; the command line prints the URL and stops
 * cleanly on SIGINT. Ephemeral ports, fixture directories: runs anywhere.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { PROMETHEUS_CONTENT_TYPE } from './prometheus.ts';
import { serveStatus } from './serve.ts';
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

    const root = await fetch(server.url.replace('/metrics', '/'));
    assert.equal(root.status, 404);
    await root.text();
    const post = await fetch(server.url, { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
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
