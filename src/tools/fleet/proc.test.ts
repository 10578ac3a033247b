/**
 * Live processes through fingerprint and fleet: pages shared after fork (one
 * frame, not mergeable alone) and equal data across processes come out as
 * `estimate` counts them. Needs Linux, python3 and root (page frames).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runEstimate } from '../estimate/estimate.ts';
import { python3, pythonWorkload, type Started, startReady, stopAll } from '../estimate/testing.ts';
import { runFingerprint } from './fingerprint.ts';
import { runFleet } from './fleet.ts';

const python = process.platform === 'linux' ? python3() : undefined;
const skip =
  process.platform !== 'linux'
    ? 'needs Linux (/proc/PID/pagemap and mem)'
    : python === undefined
      ? 'needs python3'
      : process.getuid?.() !== 0
        ? 'needs root (page frames)'
        : false;

const started: Started[] = [];
after(() => stopAll(started));

test('a forked process and its parent: the fleet saving equals estimate on the same pids', {
  skip,
}, async () => {
  const s = await startReady(
    [python!, '-c', pythonWorkload({ shared: 2, unique: 2, zeroes: 1, fork: true })],
    2,
  );
  started.push(s);
  const dir = mkdtempSync(join(tmpdir(), 'ksmkit-fleet-proc-'));
  try {
    const settings = { maxPageSharing: 256, useZeroPages: false };
    const output = join(dir, 'live.parquet');
    const fp = await runFingerprint({
      pids: s.pids,
      settings,
      host: 'live',
      memoryBytes: 2 ** 30,
      output,
      threads: 0,
    });
    const estimate = await runEstimate({ pids: s.pids, settings, threads: 0 });
    assert.ok(estimate.framesKnown);
    assert.ok(estimate.total.sameFramePages > 0, 'the fork left pages shared at one frame');
    const report = await runFleet({ files: [output] });
    const host = report.hosts[0]!.before;
    assert.equal(fp.sources, 2);
    assert.equal(host.pages_sharing, estimate.total.total.pages_sharing);
    assert.equal(host.general_profit, estimate.total.total.general_profit);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
