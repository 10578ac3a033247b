/**
 * `ksmkit status` against fixture directories that imitate /sys/kernel/mm/ksm
 * and /proc: a 6.18 host, a 6.1-era kernel with files and ksm_stat lines
 * missing, a kernel without KSM, one without ksm_stat, and unreadable
 * processes. Runs anywhere.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { KSM_SYSFS } from '../../surface/sysfs.ts';
import { statusCommand } from './command.ts';
import { formatBytes, formatHuman, formatRate, NOT_IN_KERNEL } from './human.ts';
import { toJson } from './json.ts';
import { parseKsmStatLines, ratesBetween, readSnapshot, type StatusSnapshot, savingOf } from './snapshot.ts';
import { host618, KSM_6_1, KSM_6_18, ksmStat6, makeFixture, runCli } from './test-fixtures.ts';
import { ANSI, terminalFrame, watchStatus } from './watch.ts';

test('6.18 fixture: every file in the table order with its meaning; advisor_mode as its word', () => {
  const f = host618();
  try {
    const s = readSnapshot(f.sources);
    assert.equal(s.available, true);
    assert.equal(s.kernel, '6.18.44-fixture');
    assert.deepEqual(
      s.files.map((x) => x.name),
      KSM_SYSFS.map((a) => a.name),
    );
    for (const file of s.files) {
      assert.equal(file.state, 'ok', file.name);
      assert.equal(file.meaning, KSM_SYSFS.find((a) => a.name === file.name)!.meaning);
    }
    const by = new Map(s.files.map((x) => [x.name, x]));
    assert.equal(by.get('advisor_mode')!.value, 'none');
    assert.equal(by.get('general_profit')!.value, 2_063_360);
    assert.equal(by.get('run')!.writable, true);
    assert.equal(by.get('pages_sharing')!.writable, false);
    assert.deepEqual(savingOf(s), {
      generalProfit: 2_063_360,
      pagesSharing: 500,
      pagesShared: 10,
      sharingRatio: 50,
    });
  } finally {
    f.cleanup();
  }
});

test('processes: only those using KSM, by profit; kernel threads and idle processes left out; --all lists them', () => {
  const f = host618();
  try {
    const s = readSnapshot(f.sources);
    assert.deepEqual(
      s.processes.map((p) => [p.pid, p.comm, p.profit]),
      [
        [100, 'qemu-system-x86', 2_050_816],
        [200, 'redis-server', 14_080],
        [400, 'scanner', -3200],
      ],
    );
    assert.equal(s.processesRead, 4, 'the kernel thread has an empty ksm_stat');
    assert.equal(s.unreadable, 0);
    assert.equal(s.procKsmStat, true);
    assert.deepEqual(s.missingStatLines, []);
    const qemu = s.processes[0]!;
    assert.equal(qemu.cmdline, 'qemu-system-x86_64 -name vm1');
    assert.deepEqual(
      [qemu.mergingPages, qemu.rmapItems, qemu.zeroPages, qemu.mergeAny, qemu.mergeable],
      [505, 520, 4, true, true],
    );
    const all = readSnapshot(f.sources, { allProcesses: true });
    assert.deepEqual(
      all.processes.map((p) => p.pid),
      [100, 200, 300, 400],
    );
  } finally {
    f.cleanup();
  }
});

test('human output fits an 80-column terminal: descriptions cut, commands narrowed', () => {
  const f = host618();
  try {
    const wide = formatHuman(readSnapshot(f.sources), { color: false });
    assert.ok(
      wide.some((l) => [...l].length > 80),
      'the fixture is wider than 80 columns unfitted',
    );
    const lines = formatHuman(readSnapshot(f.sources), { color: false, width: 80 });
    const table = lines.filter((l) => l.startsWith('  ') && !l.startsWith('  —'));
    for (const l of table) assert.ok([...l].length <= 80, `${[...l].length}: ${l}`);
    assert.ok(
      lines.some((l) => l.endsWith('…')),
      'a description was cut, with a mark',
    );
  } finally {
    f.cleanup();
  }
});

test('human output: state line, files with meanings, saving, the process table', () => {
  const f = host618();
  try {
    const lines = formatHuman(readSnapshot(f.sources), { color: false });
    const text = lines.join('\n');
    assert.match(lines[0]!, /^KSM on Linux 6\.18\.44-fixture: running \(run = 1\): ksmd is merging$/);
    for (const a of KSM_SYSFS) {
      const line = lines.find((l) => l.trimStart().startsWith(`${a.name} `));
      assert.ok(line !== undefined, `a line for ${a.name}`);
      assert.ok(line.endsWith(a.meaning), `${a.name}: its meaning`);
    }
    assert.match(text, /^ {2}pages_sharing +500 \(2\.0 MiB\) {2}extra mappings/m);
    assert.match(text, /general_profit +2\.0 MiB saved, net of KSM's own metadata/);
    assert.match(text, /pages_sharing\/pages_shared +50\.00 \(500\/10\): extra mappings per KSM page/);
    assert.match(text, /Processes using KSM \(3 of 4\), by profit/);
    const header = lines.findIndex((l) =>
      /^ +PID +COMMAND +MERGING +RMAP +ZERO +PROFIT +MERGEABLE +MERGE-ANY$/.test(l),
    );
    assert.ok(header > 0, text);
    assert.match(
      lines[header + 1]!,
      /^ +100 +qemu-system-x86_64 -name vm1 +505 +520 +4 +2\.0 MiB +yes +yes$/,
    );
    assert.match(lines[header + 3]!, /^ +400 +scanner +0 +50 +0 +-3\.1 KiB +yes +no$/);
    assert.ok(!text.includes('\x1b'), 'no colour when asked for none');
    assert.doesNotMatch(text, new RegExp(NOT_IN_KERNEL));
  } finally {
    f.cleanup();
  }
});

test('an old (6.1-era) kernel: missing files and ksm_stat lines say "not in this kernel", nothing fails', async () => {
  const f = makeFixture({
    kernel: '6.1.0-old',
    ksm: KSM_6_1,
    processes: [
      { pid: 10, comm: 'vm', ksmStat: 'ksm_rmap_items 40\n', mergingPages: '32\n' },
      { pid: 11, comm: 'idle', ksmStat: 'ksm_rmap_items 0\n', mergingPages: '0\n' },
    ],
  });
  try {
    const s = readSnapshot(f.sources);
    const missing = s.files.filter((x) => x.state === 'missing').map((x) => x.name);
    assert.ok(
      missing.includes('pages_skipped') &&
        missing.includes('general_profit') &&
        missing.includes('smart_scan'),
    );
    assert.equal(missing.length, KSM_SYSFS.length - Object.keys(KSM_6_1).length);
    assert.deepEqual(
      s.processes.map((p) => [
        p.pid,
        p.mergingPages,
        p.rmapItems,
        p.zeroPages,
        p.profit,
        p.mergeAny,
        p.mergeable,
      ]),
      [[10, 32, 40, null, null, null, null]],
    );
    assert.deepEqual(s.missingStatLines, [
      'ksm_zero_pages',
      'ksm_merging_pages',
      'ksm_process_profit',
      'ksm_merge_any',
      'ksm_mergeable',
    ]);
    const text = formatHuman(s, { color: false }).join('\n');
    assert.match(text, /^ {2}pages_skipped +not in this kernel {2}pages smart_scan skipped since boot$/m);
    assert.match(text, /general_profit +not in this kernel \(it needs Linux 6\.4 or later\)/);
    assert.match(text, /^ +10 +vm +32 +40 +— +— +— +—$/m);
    assert.match(text, /— not in this kernel: its ksm_stat has no ksm_zero_pages, .*ksm_mergeable line/);
    const json = toJson(s);
    assert.equal(json.sysfs.pages_skipped!.value, null);
    assert.equal(json.sysfs.pages_skipped!.state, 'missing');
    assert.equal(json.saving.general_profit_bytes, null);
    assert.equal(json.processes[0]!.merge_any, null);
    assert.ok(json.notes.includes('pages_skipped: not in this kernel'));
    const out: string[] = [];
    const status = await statusCommand(
      { json: false, prometheus: false, watch: false, interval: 1, all: false, sources: f.sources },
      {
        write: (t) => out.push(t),
        err: (l) => out.push(l),
        isTTY: false,
        color: false,
        signal: new AbortController().signal,
      },
    );
    assert.equal(status, 0);
  } finally {
    f.cleanup();
  }
});

test('a kernel without KSM: one clear line, exit status 1; JSON says so too', async () => {
  const f = makeFixture({ ksm: null, processes: [] });
  try {
    const s = readSnapshot(f.sources);
    assert.equal(s.available, false);
    const lines = formatHuman(s, { color: false });
    assert.deepEqual(lines, [
      `KSM on Linux 6.18.44-fixture: not in this kernel (no ${f.sources.ksmDir}: CONFIG_KSM is off)`,
    ]);
    const out: string[] = [];
    const err: string[] = [];
    const io = {
      write: (t: string) => out.push(t),
      err: (l: string) => err.push(l),
      isTTY: false,
      color: false,
      signal: new AbortController().signal,
    };
    const base = { prometheus: false, watch: false, interval: 1, all: false, sources: f.sources };
    assert.equal(await statusCommand({ ...base, json: false }, io), 1);
    assert.equal(await statusCommand({ ...base, json: true }, io), 1);
    const json = JSON.parse(out[1]!);
    assert.equal(json.ksm_available, false);
    assert.match(err.join('\n'), /KSM is not in this kernel/);
  } finally {
    f.cleanup();
  }
});

test('a kernel without /proc/PID/ksm_stat (before 6.1): the table says so', () => {
  const f = makeFixture({
    ksm: KSM_6_1,
    processes: [
      { pid: 5, comm: 'init' },
      { pid: 6, comm: 'sh' },
    ],
  });
  try {
    const s = readSnapshot(f.sources);
    assert.equal(s.procKsmStat, false);
    assert.match(formatHuman(s, { color: false }).join('\n'), /\/proc\/PID\/ksm_stat is not in this kernel/);
    assert.equal(toJson(s).proc_ksm_stat, false);
  } finally {
    f.cleanup();
  }
});

test("other users' processes: counted, and said once that root is needed", () => {
  const f = host618();
  try {
    const denied = new Set([`${f.sources.procDir}/200/ksm_stat`, `${f.sources.procDir}/300/ksm_stat`]);
    const readText = (path: string): string => {
      if (denied.has(path))
        throw Object.assign(new Error(`EACCES: permission denied, open '${path}'`), { code: 'EACCES' });
      return readFileSync(path, 'latin1');
    };
    const s = readSnapshot({ ...f.sources, readText });
    assert.equal(s.unreadable, 2);
    assert.deepEqual(
      s.processes.map((p) => p.pid),
      [100, 400],
    );
    const notes = formatHuman(s, { color: false }).filter((l) => /need root/.test(l));
    assert.equal(notes.length, 1);
    assert.match(
      notes[0]!,
      /2 processes' \/proc\/PID\/ksm_stat could not be read: other users' processes need root/,
    );
    assert.equal(toJson(s).processes_unreadable, 2);
  } finally {
    f.cleanup();
  }
});

test('a file of a newer kernel ksmkit does not know is still listed', () => {
  const f = makeFixture({ ksm: KSM_6_18, extraKsm: { pages_future: '17' }, processes: [] });
  try {
    const s = readSnapshot(f.sources);
    const last = s.files.at(-1)!;
    assert.deepEqual([last.name, last.known, last.value, last.writable], ['pages_future', false, 17, false]);
    assert.match(
      formatHuman(s, { color: false }).join('\n'),
      /pages_future +17 {2}\(a file ksmkit does not describe\)/,
    );
  } finally {
    f.cleanup();
  }
});

test('ksm_stat parsing: numbers, yes/no, every kernel version', () => {
  const fields = parseKsmStatLines(
    ksmStat6({ rmap: 1, zero: 2, merging: 3, profit: -64, mergeAny: true, mergeable: false }),
  );
  assert.deepEqual(Object.fromEntries(fields), {
    ksm_rmap_items: 1,
    ksm_zero_pages: 2,
    ksm_merging_pages: 3,
    ksm_process_profit: -64,
    ksm_merge_any: true,
    ksm_mergeable: false,
  });
  assert.deepEqual(Object.fromEntries(parseKsmStatLines('ksm_rmap_items 7\n')), { ksm_rmap_items: 7 });
  assert.deepEqual(Object.fromEntries(parseKsmStatLines('')), {});
});

test('formatting helpers: bytes and rates', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(-6400), '-6.3 KiB');
  assert.equal(formatBytes(3 * 1024 ** 3), '3.0 GiB');
  assert.equal(formatRate(12_345.6), '12346');
  assert.equal(formatRate(0.25), '0.25');
  assert.equal(formatRate(2), '2');
  assert.equal(formatRate(-0.001), '0');
  assert.equal(formatRate(null), NOT_IN_KERNEL);
});

test('rates between two readings: pages scanned, merged (sharing + zero pages), per process', () => {
  const f = host618();
  try {
    const a = readSnapshot(f.sources);
    f.setKsm('pages_scanned', '133456');
    f.setKsm('pages_sharing', '600');
    f.setKsm('ksm_zero_pages', '24');
    f.setKsm('full_scans', '10');
    const b: StatusSnapshot = { ...readSnapshot(f.sources), monotonicMs: 2000 };
    const r = ratesBetween({ ...a, monotonicMs: 0 }, b);
    assert.equal(r.seconds, 2);
    assert.equal(r.pagesScanned, 5000);
    assert.equal(r.merged, 60);
    assert.equal(r.fullScans, 0.5);
    assert.equal(r.processMerged.get(100), 0);
    const text = formatHuman(b, { color: false, rates: r }).join('\n');
    assert.match(text, /Per second \(over the last 2\.0 s\)/);
    assert.match(text, /pages scanned +5000 {2}Δ pages_scanned/);
    assert.match(text, /merged +60 {2}Δ \(pages_sharing \+ ksm_zero_pages\)/);
    assert.match(text, /MERGE-ANY +MERGED\/S/);
    assert.equal(toJson(b, r).rates?.pages_scanned_per_second, 5000);
  } finally {
    f.cleanup();
  }
});

test('--watch, not a terminal: plain blocks, rates from the second on', async () => {
  const f = host618();
  try {
    let out = '';
    await watchStatus({
      sources: f.sources,
      intervalMs: 20,
      json: false,
      color: false,
      out: { write: (t) => (out += t), isTTY: false },
      signal: new AbortController().signal,
      count: 3,
    });
    assert.equal(out.match(/^ksmkit status, every 0\.02 s/gm)?.length, 3);
    assert.equal(out.match(/^Per second/gm)?.length, 2);
    assert.ok(!out.includes('\x1b'));
  } finally {
    f.cleanup();
  }
});

test('--watch on a terminal: redrawn in place, cursor hidden then shown again; stops on abort', async () => {
  const f = host618();
  try {
    const frames: string[] = [];
    const controller = new AbortController();
    const done = watchStatus({
      sources: f.sources,
      intervalMs: 10_000,
      json: false,
      color: true,
      out: { write: (t) => frames.push(t), isTTY: true, rows: 200 },
      signal: controller.signal,
    });
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    controller.abort();
    await done;
    assert.ok(Date.now() - started < 1000, 'the abort ends the wait at once');
    assert.equal(frames[0], `${ANSI.hideCursor}${ANSI.home}${ANSI.clearScreen}`);
    assert.ok(frames[1]!.startsWith(ANSI.home) && frames[1]!.endsWith(ANSI.clearBelow));
    assert.equal(frames.at(-1), ANSI.showCursor);
    assert.equal(
      terminalFrame(['a', 'b', 'c', 'd'], 4),
      `${ANSI.home}a${ANSI.clearLine}\nb${ANSI.clearLine}\n… 2 more lines (enlarge the terminal)${ANSI.clearLine}\n${ANSI.clearBelow}`,
    );
  } finally {
    f.cleanup();
  }
});

test('--watch --json: one object per line, with rates from the second', async () => {
  const f = host618();
  try {
    let out = '';
    await watchStatus({
      sources: f.sources,
      intervalMs: 10,
      json: true,
      color: false,
      out: { write: (t) => (out += t), isTTY: true },
      signal: new AbortController().signal,
      count: 2,
    });
    const lines = out
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, 2);
    assert.equal(lines[0].rates, undefined);
    assert.equal(lines[1].rates.pages_scanned_per_second, 0);
    assert.equal(lines[1].processes[0].pid, 100);
  } finally {
    f.cleanup();
  }
});

test('the command line: status on a fixture, --json, --watch --count, and option conflicts', async () => {
  const f = host618();
  try {
    const dirs = ['--sysfs-dir', f.sources.ksmDir, '--proc-dir', f.sources.procDir];
    const human = await runCli(['status', ...dirs]);
    assert.equal(human.status, 0, human.stderr);
    assert.match(human.stdout, /^KSM on Linux 6\.18\.44-fixture: running/);
    const json = await runCli(['status', '--json', ...dirs]);
    assert.equal(json.status, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout).processes.length, 3);
    const watch = await runCli(['status', '--watch', '--interval', '0.1', '--count', '2', ...dirs]);
    assert.equal(watch.status, 0, watch.stderr);
    assert.equal(watch.stdout.match(/^ksmkit status, every 0\.1 s/gm)?.length, 2);
    const conflict = await runCli(['status', '--json', '--prometheus', ...dirs]);
    assert.notEqual(conflict.status, 0);
    assert.match(conflict.stderr, /cannot be used with/);
    const host = await runCli(['status', '--host', '0.0.0.0', ...dirs]);
    assert.notEqual(host.status, 0);
    assert.match(host.stderr, /only goes with '--serve <port>'/);
    const bind = await runCli(['status', '--bind', '0.0.0.0', ...dirs]);
    assert.notEqual(bind.status, 0);
    assert.match(bind.stderr, /option '--bind <address>' only goes with '--serve <port>'/);
  } finally {
    f.cleanup();
  }
});
