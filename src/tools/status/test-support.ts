/**
 * Drives Debian's firefox-esr over WebDriver BiDi (the W3C protocol Firefox
 * speaks natively; playwright-core's Firefox needs its own patched build, and
 * its BiDi mode asks for commands this ESR lacks). Run as a script, because
 * Node 20's WebSocket needs a flag at start:
 *
 *   node --experimental-websocket --import tsx test-support.ts FIREFOX URL EXPECTED_PAGES_SHARING SCREENSHOT
 *
 * Opens URL at 1400 px, waits for the live page to connect and draw, then for
 * the pages chart's last pages_sharing to read EXPECTED (the caller changes
 * it when the driver says "first look taken" on stderr), takes a screenshot, and prints one JSON object: what was seen, every
 * request the page made, every console entry.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface FirefoxRun {
  readonly connected: boolean;
  /** Per chart: id, points, canvas width, at the first look and once the expected value showed. */
  readonly first: ReadonlyArray<{ id: string; points: number; width: number; last: string }>;
  readonly moved: ReadonlyArray<{ id: string; points: number; width: number; last: string }> | null;
  readonly requests: readonly string[];
  readonly logs: readonly string[];
}

interface BidiMessage {
  readonly id?: number;
  readonly type?: string;
  readonly method?: string;
  readonly params?: Record<string, unknown>;
  readonly result?: Record<string, unknown>;
  readonly error?: string;
  readonly message?: string;
}

class Bidi {
  private next = 1;
  private readonly pending = new Map<number, (m: BidiMessage) => void>();
  readonly events: BidiMessage[] = [];

  private constructor(private readonly socket: WebSocket) {
    socket.addEventListener('message', (e) => {
      const m = JSON.parse(String(e.data)) as BidiMessage;
      if (m.id !== undefined && this.pending.has(m.id)) {
        this.pending.get(m.id)!(m);
        this.pending.delete(m.id);
      } else if (m.type === 'event') this.events.push(m);
    });
  }

  static open(url: string): Promise<Bidi> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url);
      socket.addEventListener('open', () => resolve(new Bidi(socket)));
      socket.addEventListener('error', () => reject(new Error(`cannot open ${url}`)));
    });
  }

  send(method: string, params: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, (m) =>
        m.type === 'error'
          ? reject(new Error(`${method}: ${m.error}: ${m.message}`))
          : resolve(m.result ?? {}),
      );
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  close(): void {
    this.socket.close();
  }
}

async function startFirefox(path: string, profile: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    path,
    ['--headless', '--no-remote', '--profile', profile, '--remote-debugging-port', '0'],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, HOME: profile, MOZ_CRASHREPORTER_DISABLE: '1' },
    },
  );
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      const m = /WebDriver BiDi listening on (ws:\/\/\S+)/.exec(err);
      if (m !== null) resolve(`${m[1]}/session`);
    });
    child.once('exit', (code) => reject(new Error(`firefox exited ${code}: ${err}`)));
  });
  return { child, url };
}

const CHARTS_JS = `JSON.stringify([...document.querySelectorAll('.plot')].map((el) => ({
  id: el.id, points: Number(el.getAttribute('data-points')), last: el.getAttribute('data-last') ?? '',
  width: el.querySelector('canvas')?.width ?? 0 })))`;

async function evaluate(bidi: Bidi, context: string, expression: string): Promise<string> {
  const r = await bidi.send('script.evaluate', { expression, target: { context }, awaitPromise: false });
  const value = (r.result as { type: string; value?: unknown } | undefined)?.value;
  return typeof value === 'string' ? value : '';
}

async function main(): Promise<void> {
  const [firefoxPath, pageUrl, expected, screenshot] = process.argv.slice(2);
  if (
    firefoxPath === undefined ||
    pageUrl === undefined ||
    expected === undefined ||
    screenshot === undefined
  ) {
    throw new Error('usage: test-support.ts FIREFOX URL EXPECTED_PAGES_SHARING SCREENSHOT');
  }
  const profile = mkdtempSync(join(tmpdir(), 'ksmkit-firefox-'));
  const firefox = await startFirefox(firefoxPath, profile);
  try {
    const bidi = await Bidi.open(firefox.url);
    await bidi.send('session.new', { capabilities: {} });
    await bidi.send('session.subscribe', { events: ['network.beforeRequestSent', 'log.entryAdded'] });
    const tree = await bidi.send('browsingContext.getTree', {});
    const context = (tree.contexts as Array<{ context: string }>)[0]!.context;
    await bidi.send('browsingContext.setViewport', { context, viewport: { width: 1400, height: 1000 } });
    await bidi.send('browsingContext.navigate', { context, url: pageUrl, wait: 'complete' });
    const poll = async (what: string, test: () => Promise<boolean>): Promise<boolean> => {
      for (let i = 0; i < 100; i++) {
        if (await test()) return true;
        await sleep(200);
      }
      process.stderr.write(`firefox: timed out waiting for ${what}\n`);
      return false;
    };
    const connected = await poll(
      'the page to connect',
      async () =>
        (await evaluate(
          bidi,
          context,
          `document.querySelector('[data-connection]')?.dataset.connection ?? ''`,
        )) === 'live',
    );
    let first: FirefoxRun['first'] = [];
    await poll('two readings', async () => {
      first = JSON.parse((await evaluate(bidi, context, CHARTS_JS)) || '[]') as FirefoxRun['first'];
      return first.length === 4 && first.every((c) => c.points >= 2);
    });
    // The caller changes the counter once it reads this line.
    process.stderr.write('firefox: first look taken\n');
    let moved: FirefoxRun['moved'] = null;
    await poll(`pages_sharing ${expected}`, async () => {
      const now = JSON.parse((await evaluate(bidi, context, CHARTS_JS)) || '[]') as NonNullable<
        FirefoxRun['moved']
      >;
      if (now[1]?.last !== expected) return false;
      moved = now;
      return true;
    });
    const shot = await bidi.send('browsingContext.captureScreenshot', { context });
    writeFileSync(screenshot, Buffer.from(String(shot.data), 'base64'));
    const requests = bidi.events
      .filter((e) => e.method === 'network.beforeRequestSent')
      .map((e) => String((e.params?.request as { url?: string } | undefined)?.url));
    const logs = bidi.events
      .filter((e) => e.method === 'log.entryAdded')
      .map((e) => `${String(e.params?.level)}: ${String(e.params?.text)}`);
    const run: FirefoxRun = { connected, first, moved, requests, logs };
    process.stdout.write(JSON.stringify(run));
    await bidi.send('session.end', {}).catch(() => undefined);
    bidi.close();
  } finally {
    firefox.child.kill('SIGKILL');
    rmSync(profile, { recursive: true, force: true });
  }
}

await main();
