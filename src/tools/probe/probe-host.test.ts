/**
 * `ksmkit probe` on this machine's kernel: a small attack at the kernel's
 * default pacing must read the victim's pages far better than chance, and
 * leave ksmd as it found it (every setting, run included) with none of its
 * processes behind. Needs Linux with KSM, root and the built helper; skips
 * with the reason otherwise. No timing is asserted: only what the timings
 * let the attacker decide.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { mergeableProcesses } from '../../backend/kernel/sysfs-guard.ts';
import { kernelSkip } from '../../testing/kernel-required.ts';
import { DEFAULT_PACING, probeUnavailable, runProbe } from './probe.ts';

const skip = kernelSkip(probeUnavailable());

/** A pid that is gone, or a zombie (no mm left for KSM to scan). */
function gone(pid: number): boolean {
  if (!existsSync(`/proc/${pid}`)) return true;
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'latin1'));
  } catch {
    return true;
  }
}

test('128 guesses at the default pacing: far above chance, settings restored, run as found', {
  skip,
}, async () => {
  const result = await runProbe({
    pages: 128,
    seed: 2026,
    rounds: 1,
    calibrationPairs: 16,
    ...DEFAULT_PACING,
    preset: 'default',
  });
  const [round] = result.rounds;
  assert.ok(round !== undefined);
  assert.equal(result.settingsInForce.pages_to_scan, '100');
  assert.equal(result.settingsInForce.sleep_millisecs, '20');
  assert.equal(result.settingsInForce.run, '1');
  // Chance is 50%; with 128 guesses one standard deviation of a coin is 4.4 points.
  assert.ok(result.score.accuracy >= 0.9, `accuracy ${result.score.accuracy}`);
  assert.ok(result.score.truePositiveRate - result.score.falsePositiveRate >= 0.8);
  // ksmd merged what the score credits: every right guess, and the 16 pairs.
  assert.ok(round.pagesSharing >= 64 + 16, `pages_sharing ${round.pagesSharing}`);
  assert.ok(round.fullScans >= 1);
  assert.ok(result.leak.bitsPerSecond > 0);
  // Restored: release() went through and every saved file, run among them, reads back as saved
  // (run 0 on a host where KSM was off; a host whose admin runs KSM gets its 1 back).
  assert.deepEqual(result.restored.differing, []);
  assert.equal(result.restored.ok, true, result.restored.error);
  // Nothing of ours is left mergeable.
  assert.ok(gone(round.victimPid) && gone(round.attackerPid), 'victim and attacker are gone');
  const ours = mergeableProcesses().filter((p) => p.pid === round.victimPid || p.pid === round.attackerPid);
  assert.deepEqual(ours, []);
});
