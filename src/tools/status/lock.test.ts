/**
 * A ksmkit run killed while driving ksmd: `status` says which run, when, and
 * what will be restored; `restore` puts it back now, under the lock. The
 * first tests read a lock file of their own; the last kills a real run (root,
 * KSM) and restores the machine's settings through the shared lock.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { kernelBackendAvailability } from '../../backend/kernel/kernel-backend.ts';
import { readKsm } from '../../backend/kernel/ksm-sysfs.ts';
import { DEFAULT_LOCK_PATH, lockState } from '../../backend/kernel/sysfs-guard.ts';
import { restoreCommand } from '../../cli/restore.ts';
import { lockLines } from './lock.ts';

const DIR = mkdtempSync(join(tmpdir(), 'ksmkit-lock-'));
/** A pid no process has (above pid_max's largest value). */
const DEAD_PID = 4_194_304 + 7;

describe('the lock as status reads it', () => {
  test('no lock: nothing said', () => {
    const state = lockState(join(DIR, 'none.lock'));
    assert.equal(state.kind, 'free');
    assert.deepEqual(lockLines(state, 0), []);
  });

  test('a dead holder that changed settings: which run, when, what will be restored', () => {
    const path = join(DIR, 'stale.lock');
    const takenAtMs = Date.UTC(2026, 11, 6, 1, 0, 0);
    writeFileSync(
      path,
      JSON.stringify({
        version: 1,
        pid: DEAD_PID,
        startTicks: 1,
        command: 'node ksmkit simulate --backend kernel',
        takenAtMs,
        saved: { pages_to_scan: '100', sleep_millisecs: '20', run: '0' },
      }),
    );
    const now: Record<string, string> = { pages_to_scan: '0', sleep_millisecs: '3600000', run: '1' };
    const state = lockState(path, (name) => now[name]);
    assert.equal(state.kind, 'stale');
    assert.deepEqual(lockLines(state, takenAtMs + 5 * 60_000), [
      `A ksmkit run was killed while driving ksmd and left its settings in place: pid ${DEAD_PID} (node ksmkit simulate --backend kernel), which took ${path} at 2026-12-06 01:00:00 UTC, 5 min ago.`,
      '  Pending restore: pages_to_scan 0 (back to 100), sleep_millisecs 3600000 (back to 20), run 1 (back to 0).',
      '  The next kernel run restores them; `ksmkit restore` does it now (as root).',
    ]);
  });

  test('a live holder: driving ksmd now, restores itself', () => {
    const path = join(DIR, 'held.lock');
    // Our own start time (field 22 of /proc/self/stat), as the guard writes it.
    const stat = readFileSync('/proc/self/stat', 'latin1');
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    writeFileSync(
      path,
      JSON.stringify({ version: 1, pid: process.pid, startTicks: ticks, command: 'me', saved: null }),
    );
    const state = lockState(path, () => undefined);
    assert.equal(state.kind, 'held');
    assert.match(lockLines(state, Date.now())[0]!, /^A ksmkit run is driving ksmd now: pid \d+ \(me\)/);
  });
});

const availability = kernelBackendAvailability();

test('a run killed with SIGKILL: status names it, restore puts its settings back now', {
  skip: availability.ok ? false : availability.reason,
}, async (t) => {
  const guardUrl = new URL('../../backend/kernel/sysfs-guard.ts', import.meta.url).href;
  const sysfsUrl = new URL('../../backend/kernel/ksm-sysfs.ts', import.meta.url).href;
  const script = `
      const { SysfsGuard } = await import(${JSON.stringify(guardUrl)});
      const { writeKsm } = await import(${JSON.stringify(sysfsUrl)});
      const guard = await SysfsGuard.acquire();
      writeKsm('sleep_millisecs', '3600000');
      writeKsm('pages_to_scan', '7');
      process.stdout.write(JSON.stringify(Object.fromEntries(guard.saved)) + '\\n');
      setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const deadline = Date.now() + 150_000;
  while (!out.includes('\n') && child.exitCode === null && Date.now() < deadline) await sleep(20);
  const saved = JSON.parse(out) as Record<string, string>;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  const state = lockState();
  if (state.kind !== 'stale' || state.pid !== child.pid) {
    // Another run waiting for the lock took it over (and restored) between the kill and our look.
    t.skip('another kernel run took the stale lock over first');
    return;
  }
  assert.deepEqual(state.pending.map((p) => `${p.name}=${p.now}->${p.restoreTo}`).sort(), [
    `pages_to_scan=7->${saved.pages_to_scan}`,
    `sleep_millisecs=3600000->${saved.sleep_millisecs}`,
  ]);
  const text = lockLines(state, Date.now()).join('\n');
  assert.match(text, new RegExp(`killed while driving ksmd .*pid ${child.pid}`));
  const out2: string[] = [];
  const status = await restoreCommand(DEFAULT_LOCK_PATH, {
    out: (l) => out2.push(l),
    err: (l) => out2.push(l),
  });
  if (/^Nothing to restore|is alive and restores/m.test(out2.join('\n'))) {
    // Another run waiting for the lock took the stale one over between our look and our restore.
    t.skip('another kernel run took the stale lock over first');
    return;
  }
  assert.equal(status, 0, out2.join('\n'));
  assert.match(out2.join('\n'), /^Restored what pid \d+ left: /);
  assert.equal(readKsm('pages_to_scan'), saved.pages_to_scan);
  assert.equal(readKsm('sleep_millisecs'), saved.sleep_millisecs);
  assert.equal(readKsm('run'), saved.run);
  assert.equal(
    existsSync(DEFAULT_LOCK_PATH) && lockState().kind === 'stale',
    false,
    'the stale lock is gone',
  );
});
