/**
 * ZramGuard: /dev/zram0 is left as it was found however its owner ends: a
 * signal (the handler resets it and puts the algorithm back, then the process
 * still dies of the signal), an uncaught exception (the exit handler), or
 * SIGKILL (nothing runs: the next owner takes the stale lock over and resets
 * the device to the algorithm saved in it).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEFAULT_ZRAM_LOCK_PATH, ZramGuard } from './zram-guard.ts';

const DIR = '/sys/block/zram0';
const GUARD = fileURLToPath(new URL('./zram-guard.ts', import.meta.url));

function availability(): string | false {
  if (process.platform !== 'linux') return `needs Linux, not ${process.platform}`;
  if (process.getuid?.() !== 0) return 'needs root (writes /sys/block/zram0)';
  if (!existsSync(`${DIR}/mm_stat`)) return 'no /dev/zram0 (modprobe zram)';
  return false;
}

const skip = availability();

function state(): { disksize: string; algorithm: string; initstate: string } {
  const read = (f: string): string => readFileSync(`${DIR}/${f}`, 'utf8').trim();
  return {
    disksize: read('disksize'),
    algorithm: /\[([^\]]+)\]/.exec(read('comp_algorithm'))![1]!,
    initstate: read('initstate'),
  };
}

/** A child that takes the device, sets it up with an algorithm other than the current one, and then ends `how`. */
async function interrupted(how: 'SIGTERM' | 'SIGKILL' | 'uncaught exception'): Promise<void> {
  const before = await (async () => {
    const g = await ZramGuard.acquire({ lockTimeoutMs: 600_000 });
    try {
      return { ...state(), other: g.algorithms().find((a) => a !== g.savedAlgorithm)! };
    } finally {
      g.release();
    }
  })();
  const script = `
    import { ZramGuard } from ${JSON.stringify(GUARD)};
    const g = await ZramGuard.acquire({ lockTimeoutMs: 600000 });
    g.writePages(${JSON.stringify(before.other)}, new Uint8Array(16 * 4096).fill(7), 1 << 20);
    console.log('ready');
    ${how === 'uncaught exception' ? "process.stdin.once('data', () => { throw new Error('boom'); });" : 'setInterval(() => {}, 1000);'}
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
    child.once('exit', () => reject(new Error(`the child ended before it was ready: ${stderr}`)));
  });
  assert.equal(state().initstate, '1', 'the child set the device up');
  assert.equal(state().algorithm, before.other);
  if (how === 'uncaught exception') child.stdin.write('throw\n');
  else child.kill(how);
  const { code, signal } = await exited;
  if (how === 'uncaught exception') assert.equal(code, 1, stderr);
  else assert.equal(signal, how, `the child still dies of ${how} (stderr: ${stderr})`);
  if (how === 'SIGKILL') {
    assert.equal(existsSync(DEFAULT_ZRAM_LOCK_PATH), true, 'the dead holder’s lock is left behind');
    assert.equal(state().initstate, '1');
    const taker = await ZramGuard.acquire({ lockTimeoutMs: 600_000 });
    assert.equal(taker.savedAlgorithm, before.algorithm, 'the algorithm saved in the stale lock');
    taker.release();
  }
  assert.deepEqual(
    { disksize: state().disksize, algorithm: state().algorithm, initstate: state().initstate },
    { disksize: before.disksize, algorithm: before.algorithm, initstate: before.initstate },
  );
  assert.equal(existsSync(DEFAULT_ZRAM_LOCK_PATH), false);
}

test('zram guard: SIGTERM resets zram0 and puts its algorithm back', { skip, timeout: 700_000 }, () =>
  interrupted('SIGTERM'),
);

test('zram guard: an uncaught exception does too (the exit handler)', { skip, timeout: 700_000 }, () =>
  interrupted('uncaught exception'),
);

test(
  'zram guard: after SIGKILL the next owner resets it to the algorithm saved in the stale lock',
  {
    skip,
    timeout: 700_000,
  },
  () => interrupted('SIGKILL'),
);

test('zram guard: a device in use is refused and left alone; the lock is given back', { skip }, async () => {
  const g = await ZramGuard.acquire({ lockTimeoutMs: 600_000 });
  g.writePages(g.savedAlgorithm, new Uint8Array(4096).fill(1), 1 << 20);
  try {
    // The same lock path would be ours: a second owner on another lock sees the device set up.
    await assert.rejects(
      ZramGuard.acquire({ lockPath: '/tmp/ksmkit-zram-test-inuse.lock' }),
      /\/dev\/zram0 is in use \(initstate 1/,
    );
    assert.equal(existsSync('/tmp/ksmkit-zram-test-inuse.lock'), false);
    assert.equal(state().initstate, '1', 'left alone');
  } finally {
    g.release();
  }
  assert.equal(state().initstate, '0');
});
