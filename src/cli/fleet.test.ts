/** `ksmkit fleet` and `ksmkit fingerprint` on bad input: one line naming what was wrong, exit 2. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

function ksmkit(...args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

test('fleet without files or --synthetic is a usage error', () => {
  const r = ksmkit('fleet');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /give fingerprint files, or --synthetic/);
});

test('fleet on a file that is not there names it, exit 2', () => {
  const r = ksmkit('fleet', '/nonexistent/host.parquet');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^ksmkit fleet: .*\/nonexistent\/host\.parquet/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});

test('fingerprint --sample 3 says what is allowed', () => {
  const r = ksmkit('fingerprint', '--scenario', 'kvm-clones', '-o', '/dev/null', '--sample', '3');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /power of two from 1 to 65536/);
});
