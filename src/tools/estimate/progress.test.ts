/** The progress line: redrawn in place on a terminal, periodic plain lines otherwise. */
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ProgressLine } from './progress.ts';

const dir = mkdtempSync(join(tmpdir(), 'ksmkit-progress-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function capture(tty: boolean, run: (p: ProgressLine, clock: { t: number }) => void): string {
  const path = join(dir, `out-${tty}`);
  const fd = openSync(path, 'w');
  const clock = { t: 0 };
  try {
    const p = new ProgressLine({
      total: 100 << 20,
      tty,
      fd,
      now: () => clock.t,
      intervalMs: 1000,
      width: 10,
    });
    run(p, clock);
  } finally {
    closeSync(fd);
  }
  return readFileSync(path, 'utf8');
}

test('not a terminal: one line per interval, and a last one', () => {
  const out = capture(false, (p, clock) => {
    p.stage('pid 1');
    for (let i = 0; i < 10; i++) {
      clock.t += 300;
      p.advance(10 << 20);
    }
    p.done();
  });
  const lines = out.trimEnd().split('\n');
  // t=0 (stage), 1200, 2400 (rate limited to one a second), and the final one.
  assert.equal(lines.length, 4);
  assert.match(lines[0]!, /^estimate \[-{10}\] {3}0% 0 MiB\/100 MiB/);
  assert.match(lines.at(-1)!, /^estimate \[#{10}\] 100% 100 MiB\/100 MiB 0\.03 GB\/s pid 1$/);
});

test('a terminal: redrawn in place with \\r, a newline at the end', () => {
  const out = capture(true, (p, clock) => {
    clock.t = 5000;
    p.advance(50 << 20);
    p.done();
    p.done();
  });
  assert.ok(out.startsWith('\r'));
  assert.ok(out.endsWith('\n'));
  assert.equal(out.split('\n').length, 2);
  assert.match(out, /\[#{5}-{5}\] {2}50%/);
});
