/**
 * The commands in a real terminal (a pseudo-terminal from util-linux
 * `script`): Ctrl-C typed mid-run leaves the cursor shown and line wrap on,
 * NO_COLOR leaves no colour anywhere (table borders and headers included),
 * and tables fit 80 columns.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { fitWidths, textTable } from '../report/table.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
const skip = hasScript ? false : 'util-linux `script` is not installed (it makes the pseudo-terminal)';

/** A colour or style escape (SGR), built from ESC so that the source holds no control character. */
const SGR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`);
const CURSOR_HIDDEN = '\x1b[?25l';
const CURSOR_SHOWN = '\x1b[?25h';
const WRAP_OFF = '\x1b[?7l';
const WRAP_ON = '\x1b[?7h';

/** Every hide (or wrap off) is followed later by its undoing. */
function assertRestored(output: string): void {
  for (const [off, on] of [
    [CURSOR_HIDDEN, CURSOR_SHOWN],
    [WRAP_OFF, WRAP_ON],
  ] as const) {
    const lastOff = output.lastIndexOf(off);
    if (lastOff >= 0) assert.ok(output.indexOf(on, lastOff) > lastOff, `${JSON.stringify(off)} is undone`);
  }
}

/** Runs ksmkit in an 80-column pseudo-terminal; `interruptWhen` types Ctrl-C once the output matches it. */
async function inTerminal(
  args: readonly string[],
  options: { env?: Record<string, string>; interruptWhen?: RegExp } = {},
): Promise<{ output: string; exit: number | null }> {
  const command = `stty cols 80 rows 40; exec ${process.execPath} --import tsx ${MAIN} ${args.join(' ')}`;
  const child = spawn('script', ['-qfec', command, '/dev/null'], {
    cwd: ROOT,
    env: { ...process.env, TERM: 'xterm', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 90_000;
  if (options.interruptWhen !== undefined) {
    while (!options.interruptWhen.test(output) && child.exitCode === null && Date.now() < deadline)
      await sleep(20);
    child.stdin.write('\x03');
  }
  const timer = new AbortController();
  const exit = await Promise.race([
    exited,
    sleep(90_000, undefined, { signal: timer.signal }).then(
      () => 'timeout' as const,
      () => null,
    ),
  ]);
  timer.abort();
  if (exit === 'timeout') {
    child.kill('SIGKILL');
    assert.fail(`no exit within 90 s: ${output.slice(-500)}`);
  }
  return { output, exit };
}

describe('in a terminal', { skip }, () => {
  test('Ctrl-C during simulate: the cursor and line wrap are as they were', async () => {
    const { output } = await inTerminal(['simulate', 'kvm-clones', '--no-verdict-sweep'], {
      interruptWhen: /simulating .*\d+%/,
    });
    assert.match(output, /simulating/, 'the progress bar was drawn');
    assert.doesNotMatch(output, /Report|Verdict/, 'the run was interrupted');
    assertRestored(output);
  });

  test('Ctrl-C during status --watch: the hidden cursor comes back', async () => {
    const { output } = await inTerminal(['status', '--watch', '--interval', '0.2'], {
      interruptWhen: /pages_shared|not in this kernel/,
    });
    assertRestored(output);
  });

  test('NO_COLOR: no colour in the summary, its borders and headers; tables within 80 columns', async () => {
    const { output, exit } = await inTerminal(
      ['simulate', 'zero-heavy', '--duration', '2min', '--no-verdict-sweep', '--no-progress'],
      { env: { NO_COLOR: '1' } },
    );
    assert.equal(exit, 0, output.slice(-500));
    assert.doesNotMatch(output, SGR);
    const lines = output.split(/\r?\n/);
    assert.ok(lines.filter((l) => /^[│┌└├]/.test(l)).length > 10, 'the summary table was printed');
    assert.ok(
      lines.some((l) => /^\s+time\s+scans\s+shared/.test(l)),
      'the live rows, under short names',
    );
    // Tables and the live rows; prose lines (the verdict) wrap at word boundaries, as text does.
    for (const line of lines.filter((l) => /^[│┌└├]|^\s+(time|\d\d:\d\d)/.test(l)))
      assert.ok([...line].length <= 80, `${[...line].length} columns: ${line}`);
  });

  test('with colour allowed, the table has colour (the NO_COLOR test can fail)', async () => {
    const { output } = await inTerminal(
      ['simulate', 'zero-heavy', '--duration', '2min', '--no-verdict-sweep', '--no-progress'],
      { env: { FORCE_COLOR: '1' } },
    );
    assert.match(output, SGR);
  });
});

describe('tables fitted to a width', () => {
  test('the widest columns narrow first, and cells wrap instead of the terminal', () => {
    assert.equal(fitWidths([10, 20], 80), undefined, 'fits: left alone');
    assert.deepEqual(fitWidths([12, 60, 40], 80), [12, 32, 32]);
    const text = textTable({ head: ['name', 'what'], color: false, width: 40 }, [
      ['pages_to_scan', 'how many pages ksmd scans in one batch before it sleeps for sleep_millisecs'],
    ]);
    for (const line of text.split('\n')) assert.ok([...line].length <= 40, line);
    assert.match(text, /sleep_millisecs/);
    assert.doesNotMatch(text, SGR, 'no colour asked, none given');
    assert.match(textTable({ head: ['a'], color: true }, [['1']]), SGR);
  });

  test('a table too wide even at its narrowest columns is stacked: a block per row, a line per column', () => {
    const head = Array.from({ length: 10 }, (_, i) => `column ${i}`);
    const rows = [head.map((_, i) => `${i}2.5 GiB`), head.map((_, i) => `row two ${i}`)];
    const text = textTable({ head, color: false, width: 80 }, rows);
    for (const line of text.split('\n')) assert.ok([...line].length <= 80, line);
    assert.match(text, /^column 0 {2}02\.5 GiB$/m, 'every figure whole, beside its column');
    assert.match(text, /^column 9 {2}row two 9$/m);
    assert.equal(text.split('\n\n').length, 2, 'one block per row');
    assert.equal(
      textTable({ head, color: false, width: 200 }, rows).split('\n\n').length,
      1,
      'wide enough: a table',
    );
  });
});
