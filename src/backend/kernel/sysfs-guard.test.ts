/**
 * SysfsGuard: settings restored when the owner is interrupted, one owner per
 * machine, stale locks taken over, and refusal when foreign processes are
 * already mergeable. Every test needs root, Linux with KSM and the built agent.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { kernelSkip } from '../../testing/kernel-required.ts';
import { AgentServer } from './agent-protocol.ts';
import { DEFAULT_AGENT_PATH, kernelBackendAvailability } from './kernel-backend.ts';
import { listKsmFiles, readKsm, writeKsm } from './ksm-sysfs.ts';
import { DEFAULT_LOCK_PATH, mergeableProcesses, SysfsGuard } from './sysfs-guard.ts';

const availability = kernelBackendAvailability();
const skip = kernelSkip(availability.ok ? undefined : availability.reason);

const BACKEND_URL = new URL('./kernel-backend.ts', import.meta.url).href;

/**
 * A node process (with tsx) that starts a KernelBackend, merges pages, reports,
 * then either waits to be killed or, when told so on stdin, dies of an uncaught exception.
 */
const childScript = (ending: 'wait' | 'throw'): string => `
import { KernelBackend } from ${JSON.stringify(BACKEND_URL)};
const k = new KernelBackend();
await k.start([['smart_scan', '0'], ['use_zero_pages', '1'], ['max_page_sharing', '10'], ['pages_to_scan', '5000']]);
const ram = { name: 'ram', address: 0x100000000000, pageCount: 8, shared: false, thp: false };
for (const p of ['a', 'b']) {
  await k.spawn(p, { memoryMerge: p === 'b' });
  await k.mmap(p, ram);
  await k.write(p, 'ram', 0, new Uint8Array(8 * 4096).fill(7));
  await k.madvise(p, 'ram', 'mergeable');
}
await k.scan(2);
await k.fork('a', 'a2');
const c = await k.counters();
console.log(JSON.stringify({ pages_sharing: c.ksm.pages_sharing, pids: [k.pidOf('a'), k.pidOf('b'), k.pidOf('a2')] }));
${ending === 'wait' ? 'setInterval(() => {}, 1000);' : "process.stdin.once('data', () => { throw new Error('boom'); });"}
`;

function settingsNow(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of listKsmFiles()) if (f.writable) out[f.name] = readKsm(f.name);
  return out;
}

/** Running, not a zombie (the agents are reparented to pid 1 when their node process dies; it reaps at its pace). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Runs the child until it has merged pages, ends it `how`, and checks the machine is as the child found it. */
async function interruptedRunRestores(how: 'SIGINT' | 'SIGKILL' | 'uncaught exception'): Promise<void> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      childScript(how === 'uncaught exception' ? 'throw' : 'wait'),
    ],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let ready: { pages_sharing: number; pids: number[] };
  let saved: Record<string, string>;
  try {
    const deadline = Date.now() + 60_000;
    while (!stdout.includes('\n')) {
      if (child.exitCode !== null || Date.now() > deadline) assert.fail(`child did not get ready: ${stderr}`);
      await sleep(10);
    }
    ready = JSON.parse(stdout) as { pages_sharing: number; pids: number[] };
    // 16 mappings of one content, at most 10 per KSM page: 2 KSM pages (dups of a chain), 8 + 6 sharing.
    assert.equal(ready.pages_sharing, 14, 'mid-run: merged under max_page_sharing 10');
    // While the child runs, its lock file holds the settings it found.
    saved = (JSON.parse(readFileSync(DEFAULT_LOCK_PATH, 'utf8')) as { saved: Record<string, string> }).saved;
    assert.equal(readKsm('smart_scan'), '0');
    // The exception waits for our word, so that the checks above see the child still running.
    if (how === 'uncaught exception') child.stdin.write('throw now\n');
    else child.kill(how);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const { code, signal } = await exited;
  if (how === 'uncaught exception')
    assert.equal(code, 1, `the child dies of its exception (stderr: ${stderr})`);
  else assert.equal(signal, how, `the child still dies of the signal (stderr: ${stderr})`);
  // The first agents die with their node process (PR_SET_PDEATHSIG, or killed by the guard); the fork
  // child, whose parent is an agent, dies when its connection closes.
  for (const pid of ready.pids) {
    for (let i = 0; i < 100 && alive(pid); i++) await sleep(10);
    assert.equal(alive(pid), false, `agent ${pid} is gone`);
  }
  if (how === 'SIGKILL') {
    // Nothing could run: the lock and the child's settings are left behind. The next owner takes the
    // stale lock over, adopts the settings saved in it, and puts them back when it is done.
    assert.equal(existsSync(DEFAULT_LOCK_PATH), true);
    assert.equal(readKsm('smart_scan'), '0');
    const taker = await SysfsGuard.acquire();
    assert.deepEqual(Object.fromEntries(taker.saved), saved);
    taker.release();
  }
  // Hold the lock ourselves to compare without anyone else changing settings meanwhile.
  const guard = await SysfsGuard.acquire();
  try {
    const now = settingsNow();
    for (const [name, value] of Object.entries(saved)) {
      assert.equal(name === 'advisor_mode' ? /\[([^\]]+)\]/.exec(now[name]!)?.[1] : now[name], value, name);
    }
    assert.equal(readKsm('run'), '0');
    assert.equal(readKsm('pages_shared'), '0');
    assert.deepEqual(mergeableProcesses(), []);
  } finally {
    guard.release();
  }
  assert.equal(existsSync(DEFAULT_LOCK_PATH), false);
}

test(
  'guard: a node process killed with SIGINT mid-run restores every setting and leaves nothing mergeable',
  {
    skip,
  },
  () => interruptedRunRestores('SIGINT'),
);

test(
  'guard: after a SIGKILL (no handler runs) the next owner restores the settings saved in the stale lock',
  { skip },
  () => interruptedRunRestores('SIGKILL'),
);

test(
  'guard: a node process dying of an uncaught exception restores every setting (the exit handler)',
  {
    skip,
  },
  () => interruptedRunRestores('uncaught exception'),
);

test('guard: one owner per machine; a second one waits, then fails naming the holder', { skip }, async () => {
  const guard = await SysfsGuard.acquire();
  try {
    await assert.rejects(SysfsGuard.acquire(), /already held by this process/);
    const script = `
      import { SysfsGuard } from ${JSON.stringify(new URL('./sysfs-guard.ts', import.meta.url).href)};
      try { await SysfsGuard.acquire({ lockTimeoutMs: 200 }); console.log('acquired'); }
      catch (e) { console.log(e.message); }
    `;
    const out = await new Promise<string>((resolve) => {
      const c = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let text = '';
      c.stdout.on('data', (d: Buffer) => {
        text += d.toString();
      });
      c.once('exit', () => resolve(text));
    });
    assert.match(out, new RegExp(`another ksmkit run holds ${DEFAULT_LOCK_PATH}: pid ${process.pid} `));
    assert.match(out, /Waited 200 ms/);
  } finally {
    guard.release();
  }
});

test('guard: a stale lock (dead holder) is taken over, and its saved settings are the ones restored', {
  skip,
}, async () => {
  const outer = await SysfsGuard.acquire();
  const path = '/tmp/ksmkit-kernel-test-stale.lock';
  try {
    // What a holder killed with SIGKILL leaves: its lock, the machine's real settings, its own changes.
    const real = { ...Object.fromEntries(outer.saved), smart_scan: '1', use_zero_pages: '0' };
    const dead = { version: 1, pid: 999_999_999, startTicks: 1, command: 'killed', saved: real };
    writeFileSync(path, JSON.stringify(dead));
    assert.deepEqual(writeKsm('use_zero_pages', '1'), { ok: true });
    const taker = await SysfsGuard.acquire({ lockPath: path, lockTimeoutMs: 1000 });
    assert.equal(taker.saved.get('use_zero_pages'), '0', 'adopted, not read from the modified machine');
    taker.release();
    assert.equal(readKsm('use_zero_pages'), '0');
    assert.equal(existsSync(path), false);
  } finally {
    outer.release();
  }
});

test('guard: refuses while another process is mergeable, naming it; force goes ahead', { skip }, async () => {
  const outer = await SysfsGuard.acquire();
  const server = await AgentServer.listen(() => '');
  const hello = server.expect('rogue', 5000);
  const rogue = spawn(DEFAULT_AGENT_PATH, [server.socketPath, 'rogue'], { stdio: 'ignore' });
  try {
    const connection = await hello;
    assert.equal((await connection.request('prctl', { arg: 1 })).errno, 0);
    const path = '/tmp/ksmkit-kernel-test-refuse.lock';
    await assert.rejects(
      SysfsGuard.acquire({ lockPath: path }),
      new RegExp(`other processes are already mergeable .*pid ${rogue.pid} \\(${DEFAULT_AGENT_PATH}`),
    );
    assert.equal(existsSync(path), false, 'a refusal leaves no lock behind');
    const forced = await SysfsGuard.acquire({ lockPath: path, force: true });
    forced.release();
  } finally {
    rogue.kill('SIGKILL');
    await new Promise((resolve) =>
      rogue.exitCode !== null ? resolve(undefined) : rogue.once('exit', resolve),
    );
    await server.close();
    outer.release();
  }
});
