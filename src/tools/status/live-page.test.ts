/**
 * The live page in a real browser: Debian's chromium driven by playwright-core
 * against `ksmkit status --serve 0` on this machine. Under the machine-wide
 * lock (SysfsGuard restores every setting), a process started by `ksmkit exec`
 * merges 512 equal pages; the page's charts must draw and then move with it,
 * its process table must list it and sort, no request may leave the server's
 * origin, and nothing may be logged as an error (a policy violation would be).
 * Then the same page served by user nobody: it says what is hidden and why.
 *
 * And the page in Firefox (Debian's firefox-esr, over WebDriver BiDi), on
 * fixture directories: it connects, draws, and follows a counter that changes.
 *
 * Screenshots go to a temporary directory, or to $KSMKIT_SCREENSHOT_DIR (the
 * README's come from `KSMKIT_SCREENSHOT_DIR=docs node scripts/test.mjs
 * src/tools/status/live-page.test.ts`).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Browser, chromium, type Page } from 'playwright-core';
import { writeKsmOrThrow } from '../../backend/kernel/ksm-sysfs.ts';
import { type ServeChild, startServe } from './live-load.ts';
import { DEFAULT_PAGE_DIR } from './serve.ts';
import { acquireGuard, host618, mergeSkip, nobodySkip, startFiller } from './test-fixtures.ts';
import type { FirefoxRun } from './test-support.ts';

const CHROMIUM_PATHS = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];
const FIREFOX_PATHS = ['/usr/bin/firefox-esr', '/usr/bin/firefox'];

function chromiumPath(): string | undefined {
  const fromEnv = process.env.KSMKIT_CHROMIUM;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return CHROMIUM_PATHS.find((p) => existsSync(p));
}

function browserSkip(): string | false {
  if (chromiumPath() === undefined) return 'no chromium (apt-get install -y chromium; .ci/run does it)';
  if (!existsSync(join(DEFAULT_PAGE_DIR, 'index.html'))) return 'the live page is not built (npm run build)';
  return mergeSkip();
}

/** Flags for a quiet headless browser that makes no request of its own. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
];

function screenshotDir(): string {
  const dir = process.env.KSMKIT_SCREENSHOT_DIR;
  if (dir === undefined || dir === '') return mkdtempSync(join(tmpdir(), 'ksmkit-live-'));
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** `ksmkit status --serve 0` on this host, a reading every 0.5 s. */
function startServer(options: { asNobody?: boolean } = {}): Promise<ServeChild> {
  return startServe(
    ['--interval', '0.5'],
    options.asNobody === true ? { uid: 65534, gid: 65534, env: { ...process.env, HOME: '/tmp' } } : {},
  );
}

interface Watched {
  readonly offOrigin: string[];
  readonly problems: string[];
}

/** Aborts and records every request to anywhere but `origin`; records console errors and page errors. */
async function watch(page: Page, origin: string): Promise<Watched> {
  const w: Watched = { offOrigin: [], problems: [] };
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (new URL(url).origin === origin) return route.continue();
    w.offOrigin.push(url);
    return route.abort();
  });
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith('data:') && new URL(url).origin !== origin) w.offOrigin.push(url);
  });
  page.on('console', (m) => {
    // The test's own pixel reads (chartState) draw Chromium's readback hint: not the page's doing.
    if (m.type() === 'warning' && /^Canvas2D: Multiple readback operations/.test(m.text())) return;
    if (m.type() === 'error' || m.type() === 'warning') w.problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => w.problems.push(`page error: ${e.message}`));
  return w;
}

/** The four charts: their point counts, last values, and how many pixels of their canvases are drawn. */
function chartState(page: Page) {
  return page.$$eval('.plot', (plots) =>
    plots.map((el) => {
      const canvas = el.querySelector('canvas');
      let inked = 0;
      let picture = '';
      if (canvas !== null) {
        const ctx = canvas.getContext('2d')!;
        const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
        for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) inked++;
        picture = canvas.toDataURL();
      }
      return {
        id: el.id,
        points: Number(el.getAttribute('data-points')),
        last: el.getAttribute('data-last'),
        inked,
        picture,
        width: canvas?.width ?? 0,
      };
    }),
  );
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

test('the live page in chromium: charts draw and move as a process merges, the table lists it, nothing leaves the machine', {
  skip: browserSkip(),
  timeout: 240_000,
}, async () => {
  const shots = screenshotDir();
  const guard = await acquireGuard();
  let browser: Browser | undefined;
  let filler: Awaited<ReturnType<typeof startFiller>> | undefined;
  let server: ServeChild | undefined;
  try {
    // ksmd held still while the page takes its first readings.
    writeKsmOrThrow('run', '0');
    server = await startServer();
    const origin = new URL(server.url).origin;
    browser = await chromium.launch({ executablePath: chromiumPath()!, args: CHROMIUM_ARGS });
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const watched = await watch(page, origin);
    await page.goto(server.url);
    await page.waitForSelector('[data-connection="live"]');
    const first = await waitFor('two readings on every chart', 10_000, async () => {
      const s = await chartState(page);
      return s.length === 4 && s.every((c) => c.points >= 2) ? s : undefined;
    });
    assert.deepEqual(
      first.map((c) => c.id),
      ['chart-profit', 'chart-pages', 'chart-cpu', 'chart-scan'],
    );
    for (const c of first) assert.ok(c.width > 300 && c.inked > 500, `${c.id} drew (${c.inked} pixels)`);
    const sharingBefore = Number(first[1]!.last);

    filler = await startFiller();
    writeKsmOrThrow('pages_to_scan', '5000');
    writeKsmOrThrow('sleep_millisecs', '10');
    writeKsmOrThrow('run', '1');
    const row = await waitFor('the filler in the table with its pages merged', 60_000, async () => {
      const cells = await page
        .$$eval(`#processes tr[data-pid="${filler!.pid}"] td`, (tds) => tds.map((td) => td.textContent ?? ''))
        .catch(() => []);
      return cells.length > 0 && Number(cells[2]) >= 500 ? cells : undefined;
    });
    assert.match(row[1]!, /node -e/, 'the command line');
    assert.ok(Number(row[3]) >= 500, `rmap items ${row[3]}`);
    assert.match(row[5]!, /KiB|MiB/, `profit ${row[5]}`);
    assert.deepEqual(row.slice(6), ['yes', 'yes'], 'mergeable, merge_any');
    const moved = await waitFor('the pages chart to show the merge', 20_000, async () => {
      const s = await chartState(page);
      return Number(s[1]!.last) >= sharingBefore + 500 ? s : undefined;
    });
    for (const [i, c] of moved.entries()) {
      assert.ok(c.points > first[i]!.points, `${c.id} has more points`);
      assert.notEqual(c.picture, first[i]!.picture, `${c.id} redrew`);
    }
    assert.ok(Number(moved[0]!.last) > 0, 'general_profit rose');
    assert.match((await page.textContent('[data-tile="memory saved"]')) ?? '', /KiB|MiB|GiB/);
    assert.match((await page.textContent('.marks')) ?? '', /run 0 → 1/);
    assert.match((await page.textContent('#scan-time')) ?? '', /A full scan at these settings/);

    // Sortable: by PID ascending, then back to profit, highest first.
    await page.click('#processes thead button:has-text("PID")');
    assert.equal(await page.getAttribute('#processes th:nth-child(1)', 'aria-sort'), 'descending');
    await page.click('#processes thead button:has-text("PID")');
    assert.equal(await page.getAttribute('#processes th:nth-child(1)', 'aria-sort'), 'ascending');
    const pids = await page.$$eval('#processes tbody tr', (rows) =>
      rows.map((r) => Number(r.getAttribute('data-pid'))),
    );
    assert.deepEqual(
      pids,
      [...pids].sort((a, b) => a - b),
    );
    await page.click('#processes thead button:has-text("profit")');
    assert.equal(await page.getAttribute('#processes th:nth-child(6)', 'aria-sort'), 'descending');

    await page.$eval('#processes', (t) => t.parentElement!.scrollTo(0, 0));
    const tableOverflow = await page.$eval('#processes', (t) => t.scrollWidth - t.parentElement!.clientWidth);
    assert.ok(tableOverflow <= 0, `the process table fits at 1400 px (${tableOverflow} px too wide)`);
    await sleep(1500);
    await page.screenshot({ path: join(shots, 'live-page.png'), fullPage: true });
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
    const phoneWatched = await watch(phone, origin);
    await phone.goto(server.url);
    await phone.waitForSelector(`#processes tr[data-pid="${filler.pid}"]`);
    const overflow = Number(await phone.evaluate('document.documentElement.scrollWidth - window.innerWidth'));
    assert.ok(overflow <= 0, `the page fits a phone's width (${overflow} px too wide)`);
    await phone.screenshot({ path: join(shots, 'live-page-phone.png'), fullPage: true });

    for (const w of [watched, phoneWatched]) {
      assert.deepEqual(w.offOrigin, [], 'no request leaves the server');
      assert.deepEqual(w.problems, [], 'no error in the console');
    }
    console.log(`# screenshots in ${shots}`);
  } finally {
    await browser?.close();
    await server?.stop();
    if (filler !== undefined && filler.child.exitCode === null) {
      const exited = once(filler.child, 'exit');
      filler.child.kill('SIGTERM');
      await exited;
    }
    guard.release();
  }
  assert.equal(readFileSync('/sys/kernel/mm/ksm/run', 'latin1').trim(), guard.saved.get('run'));
});

test('the live page served by user nobody: says it is not root and what that hides', {
  skip: browserSkip() || nobodySkip(),
  timeout: 60_000,
}, async () => {
  const server = await startServer({ asNobody: true });
  const browser = await chromium.launch({ executablePath: chromiumPath()!, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const watched = await watch(page, new URL(server.url).origin);
    await page.goto(server.url);
    await page.waitForSelector('#visibility');
    const banner = (await page.textContent('#visibility')) ?? '';
    assert.match(banner, /Running as uid 65534, not root/);
    assert.match(
      banner,
      /\d+ process(es)? not shown: reading another user's \/proc\/PID\/ksm_stat needs root/,
    );
    assert.doesNotMatch(banner, /ksmd CPU/, "ksmd's schedstat is world-readable");
    await waitFor('a ksmd CPU figure', 10_000, async () => {
      const cpu = (await page.textContent('[data-tile="ksmd CPU"]')) ?? '';
      return /%/.test(cpu) ? cpu : undefined;
    });
    assert.deepEqual(watched.offOrigin, []);
    assert.deepEqual(watched.problems, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});

function firefoxSkip(): string | false {
  if (!existsSync(join(DEFAULT_PAGE_DIR, 'index.html'))) return 'the live page is not built (npm run build)';
  return FIREFOX_PATHS.some((p) => existsSync(p)) ? false : 'no firefox-esr (apt-get install -y firefox-esr)';
}

test('the live page in Firefox: connects, draws, follows a changing counter, asks nothing of elsewhere', {
  skip: firefoxSkip(),
  timeout: 120_000,
}, async () => {
  const f = host618();
  const dirs = ['--sysfs-dir', f.sources.ksmDir, '--proc-dir', f.sources.procDir];
  const server = await startServe(['--interval', '0.5', ...dirs]);
  // A fixture host (no ksmd, made-up processes): its picture is not one for the README.
  const shots = mkdtempSync(join(tmpdir(), 'ksmkit-live-'));
  try {
    const driver = spawn(
      process.execPath,
      [
        '--experimental-websocket',
        '--no-warnings',
        '--import',
        'tsx',
        new URL('./test-support.ts', import.meta.url).pathname,
        FIREFOX_PATHS.find((p) => existsSync(p))!,
        server.url,
        '777',
        join(shots, 'live-page-firefox.png'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    driver.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    await new Promise<void>((resolve, reject) => {
      driver.stderr!.setEncoding('utf8').on('data', (d: string) => {
        err += d;
        if (err.includes('firefox: first look taken')) resolve();
      });
      driver.once('exit', (code) => reject(new Error(`the Firefox driver exited ${code}: ${err}`)));
    });
    f.setKsm('pages_sharing', '777');
    const [code] = await once(driver, 'close');
    assert.equal(code, 0, err);
    const run = JSON.parse(out) as FirefoxRun;
    assert.equal(run.connected, true);
    assert.deepEqual(
      run.first.map((c) => c.id),
      ['chart-profit', 'chart-pages', 'chart-cpu', 'chart-scan'],
    );
    assert.ok(
      run.first.every((c) => c.width > 300 && c.points >= 2),
      JSON.stringify(run.first),
    );
    assert.equal(run.first[1]!.last, '500');
    assert.ok(run.moved !== null, `the pages chart never showed 777: ${err}`);
    assert.ok(run.moved.every((c, i) => c.points > run.first[i]!.points));
    const origin = new URL(server.url).origin;
    assert.ok(run.requests.length >= 3, JSON.stringify(run.requests));
    assert.deepEqual(
      // A data: URL carries its content inline (the favicon's, a font of Firefox's own): no request goes out.
      run.requests.filter((u) => !u.startsWith('data:') && new URL(u).origin !== origin),
      [],
      'no request leaves the server',
    );
    assert.deepEqual(
      run.logs.filter((l) => /^(error|warn)/.test(l)),
      [],
    );
  } finally {
    await server.stop();
    f.cleanup();
    rmSync(shots, { recursive: true, force: true });
  }
});
