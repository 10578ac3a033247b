/**
 * The command line as a new user meets it: every mistake answered by one
 * sentence on stderr naming what was wrong, exit 2 for usage errors (commander's
 * own too), no stack trace, no work started before the check.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const TMP = mkdtempSync(join(tmpdir(), 'ksmkit-cli-'));

interface Ran {
  readonly status: number | null;
  readonly out: string;
  readonly err: string;
  readonly ms: number;
}

export function ksmkit(args: readonly string[], env: Record<string, string> = {}): Ran {
  const started = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 120_000,
  });
  return { status: r.status, out: r.stdout, err: r.stderr, ms: Date.now() - started };
}

/** A usage error: exit 2, one sentence on stderr matching `message`, nothing on stdout, no stack. */
function assertUsage(r: Ran, message: RegExp): void {
  assert.equal(r.status, 2, `exit 2 (stderr: ${r.err})`);
  assert.match(r.err, message);
  assert.doesNotMatch(r.err, /^\s+at /m, 'no stack trace');
  assert.doesNotMatch(r.err, /Node\.js v\d/, 'no Node banner');
  assert.equal(r.out, '', 'no report around the error');
}

const CHURN = readFileSync(join(ROOT, 'scenarios', 'churn.yaml'), 'utf8');

describe('usage errors: exit 2, one sentence', () => {
  test("commander's parser errors exit 2 as ksmkit's own do; --help exits 0", () => {
    assertUsage(ksmkit(['simulate', '--bogus']), /unknown option '--bogus'/);
    assertUsage(ksmkit(['demo', '--guests', 'x']), /--guests.*must be a positive integer/);
    assert.equal(ksmkit(['--help']).status, 0);
  });

  test('a mistyped scenario name: neither built in nor a file, the built-ins closest first', () => {
    const r = ksmkit(['simulate', 'kvm-clone']);
    assertUsage(r, /"kvm-clone" is neither a built-in scenario nor a file; built in: kvm-clones, /);
    assert.doesNotMatch(r.err, /ENOENT/);
  });

  test('the report path is checked before any work: a missing folder, a folder', () => {
    const missing = ksmkit(['simulate', '--report', '/nonexistent/dir/r.html']);
    assertUsage(
      missing,
      /--report \/nonexistent\/dir\/r\.html: the folder \/nonexistent\/dir does not exist/,
    );
    assert.ok(missing.ms < 30_000, `answered before simulating (${missing.ms} ms)`);
    assertUsage(ksmkit(['simulate', 'churn', '--report', TMP]), /is a directory/);
  });

  test('huge scenarios are refused with the memory they need and what this machine has', () => {
    const huge = join(TMP, 'huge.yaml');
    writeFileSync(huge, CHURN.replace('count: 8', 'count: 100000000'));
    assertUsage(
      ksmkit(['simulate', huge]),
      /needs about [\d.]+ TiB of memory: .* pages, at about 128 bytes .*; this machine has [\d.]+ GiB available of [\d.]+ GiB/,
    );
    const big = join(TMP, 'big.yaml');
    writeFileSync(big, CHURN.replace('count: 8', 'count: 4000').replace('memory: 4GiB', 'memory: 2TiB'));
    assertUsage(ksmkit(['simulate', big]), /this machine has .* available.*--scale 0\.\d+ would fit/);
    assertUsage(
      ksmkit(['demo', '--guests', '100000', '--guest-mib', '100000']),
      /ksmkit demo: this run needs about .* TiB .*this machine has/,
    );
  });

  test('a missing or malformed calibration file', () => {
    assertUsage(
      ksmkit(['policies', '--calibration', join(TMP, 'none.json')]),
      /calibration file .*none\.json: no such file/,
    );
    const bad = join(TMP, 'bad.json');
    writeFileSync(bad, '{');
    assertUsage(ksmkit(['policies', '--calibration', bad]), /calibration file .*bad\.json: not JSON/);
    writeFileSync(bad, '{"version": 1}');
    assertUsage(ksmkit(['simulate', '--calibration', bad]), /not a ksmkit calibration \(figures: /);
  });

  test('estimate: missing, empty and folder dump files on stderr, exit 2, no report, the path once', () => {
    const missing = ksmkit(['estimate', '/nonexistent.dump']);
    assertUsage(missing, /^ksmkit estimate: \/nonexistent\.dump: no such file\n$/);
    const empty = join(TMP, 'empty.dump');
    writeFileSync(empty, '');
    const e = ksmkit(['estimate', empty]);
    assertUsage(e, /empty\.dump: is empty; a dump file holds pages of 4096 bytes/);
    assert.equal(e.err.split(empty).length, 2, 'the path once');
    assertUsage(ksmkit(['estimate', TMP]), /is a directory, not a dump file/);
    assertUsage(ksmkit(['estimate', '--pid', '999999999']), /pid 999999999: no such process/);
  });

  test('--set run=0 says why run is not a setting to give', () => {
    assertUsage(
      ksmkit(['simulate', '--set', 'run=0']),
      /--set run=0: run is not a setting simulate takes: every run turns ksmd on \(run=1\)/,
    );
  });
});

describe('output for terminals and pipes', () => {
  test('progress only on a terminal or with --progress; no colour when piped or with NO_COLOR', () => {
    const args = ['simulate', 'zero-heavy', '--duration', '2min', '--no-verdict-sweep'];
    const piped = ksmkit(args);
    assert.equal(piped.status, 0, piped.err);
    assert.equal(piped.err, '', 'no progress lines when stderr is not a terminal');
    assert.equal(piped.out.includes('\x1b['), false, 'no escape sequence when piped');
    const forced = ksmkit([...args, '--progress'], { NO_COLOR: '1', FORCE_COLOR: '1' });
    assert.match(forced.err, /simulating .*%/);
    assert.equal(
      forced.out.includes('\x1b['),
      false,
      'NO_COLOR wins over FORCE_COLOR, borders and headers too',
    );
  });
});

describe('the report decides', () => {
  test('--scale in the title and intro, the verdict first, runs named by their settings, charts labelled', () => {
    const report = join(TMP, 'r.html');
    const r = ksmkit([
      'simulate',
      'kvm-clones',
      '--duration',
      '10min',
      '--scale',
      '0.25',
      '--report',
      report,
      '--json',
      '--no-verdict-sweep',
    ]);
    assert.equal(r.status, 0, r.err);
    const verdict = JSON.parse(r.out.trim().split('\n').at(-1)!) as { type: string; headline: string };
    assert.equal(verdict.type, 'verdict');
    assert.match(verdict.headline, /^Verdict: (turn KSM on|leave KSM off|KSM alone is not enough)/);
    const html = readFileSync(report, 'utf8');
    assert.match(html, /<title>ksmkit simulate: [^<]*, scaled ×0\.25 by --scale 0\.25: 4 guests/);
    assert.match(html, /<p>Scaled ×0\.25 by --scale 0\.25: 4 guests/);
    const verdictAt = html.indexOf('<div class="verdict">');
    assert.ok(verdictAt > 0 && verdictAt < html.indexOf('<h2>'), 'the verdict before the first section');
    assert.doesNotMatch(html, /scenario settings/);
    assert.match(html, /pages_to_scan=100 sleep_millisecs=20/);
    assert.match(html, /ksmd CPU, % of one CPU \(average per /);
    assert.match(html, />90%</, 'the 90% marker is labelled');
  });
});

test('a closed stdout (ksmkit ... | head) ends quietly', () => {
  const r = spawnSync('sh', ['-c', `${process.execPath} --import tsx ${MAIN} simulate --list | head -1`], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  assert.equal(r.stdout.split('\n').length, 2);
  assert.doesNotMatch(r.stderr, /EPIPE|^\s+at /m);
});

test('over the host for minutes: simulate runs higher pages_to_scan and recommends the first that fits', () => {
  const file = join(TMP, 'small-over.yaml');
  writeFileSync(
    file,
    `version: 1
name: small-over
title: 4 small guests over a small host
description: Four guests of 64 MiB cloned from one image, 240 MiB for them, a slow ksmd.
host: { memory: 496MiB, reserved: 256MiB }
ksm: { sleep_millisecs: 200 }
run: { duration: 10min, sample_every: 5s, seed: 1 }
groups:
  - name: guest
    count: 4
    memory: 64MiB
    merge: madvise
    content:
      - { share: 0.6, image: template }
      - { share: 0.4, unique: true }
assumptions: [a test]
`,
  );
  const r = ksmkit(['simulate', file]);
  assert.equal(r.status, 0, r.err);
  const out = r.out;
  assert.match(
    out,
    /Over the host's memory for 2\.9 min at pages_to_scan=100 sleep_millisecs=200: trying higher/,
  );
  assert.match(out, /^ {2}pages_to_scan=400 sleep_millisecs=200: saved .*over the host's memory for 40 s$/m);
  assert.match(
    out,
    /^Verdict: turn KSM on with pages_to_scan=400 sleep_millisecs=200\. It keeps the guests within/m,
  );
  assert.ok(out.indexOf('Verdict:') < out.indexOf('┌'), 'the verdict before the table');
  assert.match(out, /Swap and OOM are not modelled/);
});
