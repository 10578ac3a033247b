/**
 * `ksmkit exec`: the real prctl on this machine (merge_any inherited by the
 * command and its children, not by ksmkit's own Node process), exit statuses
 * and messages, signal forwarding, the "ksmd is stopped" note. The tests that
 * run the helper need Linux with KSM (6.4+) and the built helper, and skip
 * with the reason otherwise; none needs root.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { SysfsGuard } from '../../backend/kernel/sysfs-guard.ts';
import { kernelSkip } from '../../testing/kernel-required.ts';
import { acquireGuard, runCli, spawnCli } from '../status/test-fixtures.ts';
import {
  commandExists,
  EXEC_EXIT,
  execAvailability,
  helperPathFromEnv,
  runExec,
  signalStatus,
} from './exec.ts';

function hostSkip(): string | false {
  const availability = execAvailability();
  if (!availability.ok) return availability.reason;
  if (!existsSync('/sys/kernel/mm/ksm/run')) return 'no /sys/kernel/mm/ksm: this kernel has no KSM';
  const probe = spawnSync(helperPathFromEnv(), ['true'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
  });
  if (probe.status !== 0) return `the helper cannot enable KSM here: ${probe.stderr.trim()}`;
  return false;
}

const skip = kernelSkip(hostSkip());

/*
 * These tests start mergeable processes. As root, they hold the machine-wide
 * KSM lock meanwhile (SysfsGuard, which also restores every setting), so that
 * no kernel test of another run sees their pages; ksmd is left as it was.
 */
let guard: SysfsGuard | undefined;
before(async () => {
  if (skip === false && process.getuid?.() === 0) guard = await acquireGuard({ force: true });
});
after(() => guard?.release());

/** SIGKILL to a detached child's whole process group (ksmkit and the command), if still there. */
function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

test('exec: the command runs with ksm_merge_any: yes, its children too; ksmkit itself stays unmergeable', {
  skip,
}, async () => {
  const r = await runCli([
    'exec',
    '--',
    'sh',
    '-c',
    'grep ksm_merge_any /proc/self/ksm_stat; grep ksm_merge_any /proc/$$/ksm_stat; grep ksm_merge_any /proc/$PPID/ksm_stat',
  ]);
  assert.equal(r.status, 0, r.stderr);
  // grep (a child of sh), sh (the exec'd command), then sh's parent: ksmkit's Node process.
  assert.equal(r.stdout, 'ksm_merge_any: yes\nksm_merge_any: yes\nksm_merge_any: no\n');
});

test('exec: the exact check of the issue prints ksm_merge_any: yes', { skip }, async () => {
  const r = await runCli(['exec', '-q', '--', 'sh', '-c', 'grep ksm_merge_any /proc/self/ksm_stat']);
  assert.deepEqual([r.status, r.stdout, r.stderr], [0, 'ksm_merge_any: yes\n', '']);
});

test("exec: exits with the command's status", { skip }, async () => {
  const r = await runCli(['exec', '-q', '--', 'sh', '-c', 'exit 7']);
  assert.equal(r.status, 7);
  assert.equal(r.stderr, '');
});

test('exec: command not found is 127 with a clear message, and no ksmd note before it', {
  skip,
}, async () => {
  const r = await runCli(['exec', 'no-such-command-ksmkit']);
  assert.equal(r.status, EXEC_EXIT.notFound);
  assert.equal(r.stderr, 'ksmkit exec: no-such-command-ksmkit: command not found\n');
  const path = await runCli(['exec', '-q', './no/such/file']);
  assert.equal(path.status, EXEC_EXIT.notFound);
  assert.equal(path.stderr, 'ksmkit exec: ./no/such/file: no such file\n');
});

test('exec: a file that cannot be executed is 126', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ksmkit-exec-'));
  try {
    const plain = join(dir, 'not-executable');
    writeFileSync(plain, 'echo hi\n', { mode: 0o644 });
    const r = await runCli(['exec', '-q', plain]);
    assert.equal(r.status, EXEC_EXIT.cannotExecute);
    assert.equal(r.stderr, `ksmkit exec: ${plain}: cannot execute: Permission denied\n`);
    const script = join(dir, 'bad-interpreter');
    writeFileSync(script, '#!/no/such/interpreter\n', { mode: 0o755 });
    const bad = await runCli(['exec', '-q', script]);
    assert.equal(bad.status, EXEC_EXIT.cannotExecute);
    assert.match(bad.stderr, /its interpreter \(#! line\) or loader does not exist/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('exec: options after CMD are the command’s, not ksmkit’s', { skip }, async () => {
  const r = await runCli(['exec', '-q', 'echo', '-n', '--help', '-q']);
  assert.deepEqual([r.status, r.stdout], [0, '--help -q']);
});

test('exec: a command killed by a signal gives 128 + its number', { skip }, async () => {
  const r = await runCli(['exec', '-q', '--', 'sh', '-c', 'kill -TERM $$']);
  assert.equal(r.status, 128 + 15);
  assert.equal(signalStatus('SIGKILL'), 137);
});

for (const [signal, number] of [
  ['SIGTERM', 15],
  ['SIGINT', 2],
] as const) {
  test(`exec: ${signal} sent to ksmkit is forwarded to the command`, { skip }, async () => {
    // Its own process group, so that whatever happens the command is killed at the end.
    const child = spawnCli(['exec', '-q', '--', 'sh', '-c', 'echo ready; exec sleep 20'], { detached: true });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    try {
      child.stdout!.setEncoding('utf8');
      await new Promise<void>((resolve, reject) => {
        child.stdout!.once('data', (d: string) => (d.startsWith('ready') ? resolve() : reject(new Error(d))));
        child.once('exit', (code) => reject(new Error(`exited ${code} first: ${stderr}`)));
      });
      const started = Date.now();
      const exited = once(child, 'exit');
      child.kill(signal);
      const [code, killedBy] = await exited;
      assert.deepEqual([code, killedBy], [128 + number, null], stderr);
      assert.ok(Date.now() - started < 5000);
    } finally {
      killGroup(child.pid);
    }
  });
}

test('exec: a process started under exec shows in status --json with merge_any true', { skip }, async () => {
  const child = spawnCli(['exec', '-q', '--', 'sh', '-c', 'echo $$; exec sleep 20'], { detached: true });
  try {
    child.stdout!.setEncoding('utf8');
    const pid = await new Promise<number>((resolve, reject) => {
      child.stdout!.once('data', (d: string) => resolve(Number(d.trim())));
      child.once('exit', (code) => reject(new Error(`exited ${code} first`)));
    });
    const r = await runCli(['status', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const status = JSON.parse(r.stdout);
    const p = status.processes.find((x: { pid: number }) => x.pid === pid);
    assert.ok(p !== undefined, `pid ${pid} in ${JSON.stringify(status.processes)}`);
    assert.equal(p.command, 'sleep');
    assert.equal(p.merge_any, true);
    assert.equal(p.mergeable, true);
  } finally {
    const exited = child.exitCode === null ? once(child, 'exit') : Promise.resolve();
    killGroup(child.pid);
    await exited;
  }
});

test('the note when ksmd is not merging: on stderr when run is 0 or 2, not with --quiet, not when run is 1', {
  skip,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ksmkit-exec-'));
  try {
    const lines: string[] = [];
    const err = (l: string): void => {
      lines.push(l);
    };
    writeFileSync(join(dir, 'run'), '0\n');
    assert.equal(await runExec(['true'], { ksmDir: dir, stdio: 'ignore', err }), 0);
    assert.deepEqual(lines, [
      `ksmkit exec: note: ksmd is stopped (${dir}/run is 0): the command's memory is mergeable, ` +
        'but nothing is merged until root writes 1 there',
    ]);
    lines.length = 0;
    assert.equal(await runExec(['true'], { ksmDir: dir, stdio: 'ignore', err, quiet: true }), 0);
    writeFileSync(join(dir, 'run'), '2\n');
    assert.equal(await runExec(['true'], { ksmDir: dir, stdio: 'ignore', err, quiet: true }), 0);
    assert.deepEqual(lines, []);
    assert.equal(await runExec(['true'], { ksmDir: dir, stdio: 'ignore', err }), 0);
    assert.match(lines[0]!, /ksmd is unmerging everything/);
    lines.length = 0;
    writeFileSync(join(dir, 'run'), '1\n');
    assert.equal(await runExec(['sh', '-c', 'exit 3'], { ksmDir: dir, stdio: 'ignore', err }), 3);
    assert.deepEqual(lines, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('exec without its helper, or without a command: a clear message and its exit status', async () => {
  const lines: string[] = [];
  const err = (l: string): void => {
    lines.push(l);
  };
  const status = await runExec(['true'], { helperPath: '/nonexistent/ksmkit-exec', err });
  if (process.platform === 'linux') {
    assert.equal(status, EXEC_EXIT.noKsm);
    assert.deepEqual(lines, [
      'ksmkit exec: unavailable: its helper /nonexistent/ksmkit-exec is not built: run node scripts/build-agent.mjs ' +
        '(it needs a C compiler)',
    ]);
  } else {
    assert.equal(status, EXEC_EXIT.noKsm);
    assert.match(lines[0]!, /it needs Linux/);
  }
  lines.length = 0;
  assert.equal(await runExec([], { err }), EXEC_EXIT.usage);
  assert.match(lines[0]!, /no command given/);
  assert.equal(commandExists('sh'), true);
  assert.equal(commandExists('no-such-command-ksmkit'), false);
});

test('ksmkit exec --help lists the exit statuses', async () => {
  const r = await runCli(['exec', '--help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /Usage: ksmkit exec \[options\] \[--\] CMD \[ARGS\.\.\.\]/);
  for (const code of [127, 126, 69, 77, 71]) assert.match(r.stdout, new RegExp(`^ {2}${code} `, 'm'));
});
