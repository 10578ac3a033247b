/**
 * The live page's sampler on fixture directories, with a stepped clock and a
 * fake ksmd CPU: the points it records, ksmd's CPU share, the full-scan time
 * it measures and the one it expects at the settings, the settings-change
 * marks, what a non-root reader is told is hidden, and the ring's bound.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { HOUR_MS, historyCapacity, LiveSampler, Ring, settingChanges } from './live.ts';
import { LIVE_SERIES, type LiveSeriesName, type LiveTick } from './live-protocol.ts';
import { type Fixture, host618 } from './test-fixtures.ts';

function seriesValue(tick: LiveTick, name: LiveSeriesName): number | null {
  return tick.point.values[LIVE_SERIES.indexOf(name)]!;
}

/** A sampler over `f` whose clock and ksmd CPU the test steps. */
function stepped(f: Fixture, options: { historyMs?: number; uid?: number } = {}) {
  const state = { ms: 1_000_000, cpuNs: 5e9 };
  const sampler = new LiveSampler({
    sources: f.sources,
    intervalMs: 1000,
    hz: 250,
    uid: options.uid ?? 0,
    ksmdCpuNs: () => state.cpuNs,
    clock: () => ({ time: 1_700_000_000_000 + state.ms, monotonicMs: state.ms }),
    ...(options.historyMs === undefined ? {} : { historyMs: options.historyMs }),
  });
  const after = (ms: number, cpuMs = 0): LiveTick => {
    state.ms += ms;
    state.cpuNs += cpuMs * 1e6;
    return sampler.sample();
  };
  return { sampler, after };
}

describe('Ring', () => {
  test('keeps the last `capacity` items, oldest first', () => {
    const r = new Ring<number>(3);
    assert.deepEqual(r.toArray(), []);
    for (const n of [1, 2]) r.push(n);
    assert.deepEqual(r.toArray(), [1, 2]);
    for (const n of [3, 4, 5]) r.push(n);
    assert.deepEqual(r.toArray(), [3, 4, 5]);
    assert.equal(r.size, 3);
    assert.throws(() => new Ring(0), /ring capacity 0/);
  });

  test('an hour of readings at 2 s is 1801 points', () => {
    assert.equal(historyCapacity(HOUR_MS, 2000), 1801);
    assert.equal(historyCapacity(HOUR_MS, 700), 5144);
  });
});

describe('settingChanges', () => {
  test('names each changed setting with its old and new value', () => {
    const before = new Map<string, string | null>([
      ['run', '0'],
      ['pages_to_scan', '100'],
      ['advisor_mode', 'none'],
    ]);
    const after = new Map<string, string | null>([
      ['run', '1'],
      ['pages_to_scan', '5000'],
      ['advisor_mode', 'none'],
    ]);
    assert.deepEqual(settingChanges(before, after), ['run 0 → 1', 'pages_to_scan 100 → 5000']);
    assert.deepEqual(settingChanges(after, after), []);
  });

  test("pages_to_scan rewritten by the scan-time advisor is the advisor's work, not a mark", () => {
    const at = (pages: string, mode: string) =>
      new Map<string, string | null>([
        ['pages_to_scan', pages],
        ['advisor_mode', mode],
      ]);
    assert.deepEqual(settingChanges(at('500', 'scan-time'), at('740', 'scan-time')), []);
    assert.deepEqual(settingChanges(at('100', 'none'), at('500', 'scan-time')), [
      'pages_to_scan 100 → 500',
      'advisor_mode none → scan-time',
    ]);
  });
});

describe('LiveSampler', () => {
  test('a point per reading: the counters as read, ksmd CPU from the second reading on', () => {
    const f = host618();
    try {
      const { after } = stepped(f);
      const first = after(0);
      assert.equal(seriesValue(first, 'general_profit'), 2063360);
      assert.equal(seriesValue(first, 'pages_sharing'), 500);
      assert.equal(seriesValue(first, 'pages_shared'), 10);
      assert.equal(seriesValue(first, 'pages_unshared'), 7);
      assert.equal(seriesValue(first, 'pages_volatile'), 3);
      assert.equal(seriesValue(first, 'ksm_zero_pages'), 4);
      assert.equal(seriesValue(first, 'ksmd_cpu_percent'), null, 'a rate needs two readings');
      assert.equal(seriesValue(first, 'full_scan_seconds'), null);
      const second = after(2000, 100);
      assert.equal(seriesValue(second, 'ksmd_cpu_percent'), 5, '100 ms of CPU in 2 s');
      f.setKsm('pages_sharing', '800');
      assert.equal(seriesValue(after(1000), 'pages_sharing'), 800);
      assert.equal(first.view.processes[0]!.pid, 100, 'by profit');
      assert.deepEqual(
        first.view.processes.map((p) => p.pid),
        [100, 200, 400],
      );
      assert.equal(first.view.run, 1);
      assert.equal(first.view.settings.find((s) => s.name === 'advisor_mode')!.value, 'none');
      assert.ok(
        first.view.settings.every((s) => s.name !== 'pages_sharing'),
        'counters are not settings',
      );
    } finally {
      f.cleanup();
    }
  });

  test('full-scan time: between two readings that saw full_scans grow, per full scan', () => {
    const f = host618();
    try {
      const { after } = stepped(f);
      after(0);
      f.setKsm('full_scans', '10');
      f.setKsm('pages_scanned', '130000');
      const firstEnd = after(1000, 10);
      assert.equal(firstEnd.view.scanTime.measuredSeconds, null, 'the start of that full scan was not seen');
      assert.equal(firstEnd.view.scanTime.pagesSource, 'rmap_items');
      assert.equal(firstEnd.view.scanTime.pagesPerScan, 520 + 100 + 50);
      f.setKsm('full_scans', '12');
      f.setKsm('pages_scanned', '132000');
      const t = after(4000, 40);
      assert.equal(t.view.scanTime.measuredSeconds, 2, '4 s for 2 full scans');
      assert.equal(seriesValue(t, 'full_scan_seconds'), 2);
      assert.equal(t.view.scanTime.pagesSource, 'measured');
      assert.equal(t.view.scanTime.pagesPerScan, 1000);
      assert.equal(t.view.scanTime.cpuNsPerPage, 20_000, '40 ms over 2000 pages');
      // 1000 pages in batches of 100: 11 batches; 20 ms at HZ 250 is 5 jiffies, a 6-tick (24 ms) period.
      assert.equal(t.view.scanTime.batchesPerScan, 11);
      assert.equal(t.view.scanTime.sleepPerBatchMs, 24);
      assert.ok(Math.abs(t.view.scanTime.expectedSeconds! - (0.264 + 0.02)) < 1e-9);
      assert.equal(
        seriesValue(after(1000), 'full_scan_seconds'),
        2,
        'the last value holds until the next one',
      );
    } finally {
      f.cleanup();
    }
  });

  test('a stretch in which ksmd was stopped is not measured as a full scan', () => {
    const f = host618();
    try {
      const { after } = stepped(f);
      after(0);
      f.setKsm('full_scans', '10');
      after(1000);
      f.setKsm('run', '0');
      const stopped = after(60_000);
      assert.match(stopped.view.scanTime.notes.join('\n'), /ksmd is stopped \(run = 0\)/);
      f.setKsm('run', '1');
      f.setKsm('full_scans', '11');
      assert.equal(after(1000).view.scanTime.measuredSeconds, null);
      f.setKsm('full_scans', '12');
      assert.equal(after(3000).view.scanTime.measuredSeconds, 3);
    } finally {
      f.cleanup();
    }
  });

  test('a changed setting is a mark on the time axis, sent once and kept for the hello', () => {
    const f = host618();
    try {
      const { sampler, after } = stepped(f);
      after(0);
      f.setKsm('pages_to_scan', '5000');
      f.setKsm('sleep_millisecs', '10');
      const t = after(1000);
      assert.deepEqual(
        t.marks.map((m) => [m.kind, m.text]),
        [['settings', 'pages_to_scan 100 → 5000, sleep_millisecs 20 → 10']],
      );
      assert.deepEqual(after(1000).marks, []);
      assert.equal(sampler.hello().marks.length, 1);
    } finally {
      f.cleanup();
    }
  });

  test('the history is bounded by its window, and the hello carries it oldest first', () => {
    const f = host618();
    try {
      const { sampler, after } = stepped(f, { historyMs: 5000 });
      for (let i = 0; i < 20; i++) after(1000);
      const hello = sampler.hello();
      assert.equal(hello.history.length, 6);
      assert.ok(hello.history.every((p, i) => i === 0 || p.timeMs - hello.history[i - 1]!.timeMs === 1000));
      assert.deepEqual(hello.series, LIVE_SERIES);
      assert.equal(hello.intervalMs, 1000);
    } finally {
      f.cleanup();
    }
  });

  test("as a user who cannot read other users' ksm_stat: the count, and why, in the view", () => {
    const f = host618();
    try {
      const denied = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
      const sampler = new LiveSampler({
        sources: {
          ...f.sources,
          readText: (path) => {
            if (/\/(100|200)\/ksm_stat$/.test(path)) throw denied;
            return readFileSync(path, 'latin1');
          },
        },
        intervalMs: 1000,
        hz: 250,
        uid: 1000,
        ksmdCpuNs: () => 0,
      });
      const v = sampler.sample().view;
      assert.equal(v.visibility.root, false);
      assert.equal(v.visibility.unreadableProcesses, 2);
      assert.match(v.visibility.hidden.join('\n'), /2 processes not shown: reading another user's/);
      assert.deepEqual(
        v.processes.map((p) => p.pid),
        [400],
      );
      assert.match(v.scanTime.notes.join('\n'), /a lower bound: other users’ processes are hidden/);
    } finally {
      f.cleanup();
    }
  });

  test("ksmd's CPU from /proc/<ksmd>/schedstat; said to be hidden when there is no ksmd to read", () => {
    const f = host618();
    try {
      const plain = new LiveSampler({ sources: f.sources, intervalMs: 1000, hz: 250, uid: 0 });
      assert.match(plain.sample().view.visibility.hidden.join('\n'), /ksmd CPU: no ksmd kernel thread found/);
      const ksmd = join(f.sources.procDir, '39');
      mkdirSync(ksmd);
      writeFileSync(join(ksmd, 'stat'), '39 (ksmd) S 2 0 0 0 -1 2129984 0 0 0 0 0 0\n');
      writeFileSync(join(ksmd, 'schedstat'), '123456789 1000 7\n');
      assert.equal(plain.ksmdCpuSeconds(), 0.123456789);
      assert.deepEqual(plain.sample().view.visibility.hidden, []);
    } finally {
      f.cleanup();
    }
  });
});
