/**
 * Live processes, read as ksmd would see them: which VMAs and pages are
 * skipped and why, the shared zero page, pages shared after fork, and equal
 * data across processes. Nothing here changes KSM; it needs Linux and python3
 * (and root for the page-frame checks).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { kernelSkip } from '../../testing/kernel-required.ts';
import { runEstimate } from './estimate.ts';
import { parseSmaps, skipReason } from './proc-source.ts';
import { python3, pythonWorkload, type Started, startReady, stopAll } from './testing.ts';

const python = process.platform === 'linux' ? python3() : undefined;
const skip = kernelSkip(
  process.platform !== 'linux'
    ? 'needs Linux (/proc/PID/pagemap and mem)'
    : python === undefined
      ? 'needs python3'
      : false,
);
const root = process.getuid?.() === 0;

const started: Started[] = [];
after(() => stopAll(started));

async function start(script: string, expected = 1): Promise<number[]> {
  const s = await startReady([python!, '-c', script], expected);
  started.push(s);
  return s.pids;
}

test('smaps: the skip rules of KSM-compatible VMAs', () => {
  const smaps = [
    '7f0000000000-7f0000100000 rw-p 00000000 00:00 0 ',
    'Rss:                1024 kB',
    'Anonymous:          1024 kB',
    'VmFlags: rd wr mr mw me ac',
    '7f0000100000-7f0000200000 rw-s 00000000 00:01 5                          /dev/zero (deleted)',
    'Anonymous:             0 kB',
    'VmFlags: rd wr sh mr mw me ms',
    '7fff00000000-7fff00002000 r--p 00000000 00:00 0                          [vvar]',
    'Anonymous:             0 kB',
    'VmFlags: rd mr pf io de dd',
    '7e0000000000-7e0000200000 rw-p 00000000 00:0f 7                          /anon_hugepage (deleted)',
    'Anonymous:             0 kB',
    'VmFlags: rd wr mr mw me ht',
    '600000000000-600000001000 r--p 00000000 fe:00 9                          /usr/lib/libc.so.6',
    'Anonymous:             0 kB',
    'VmFlags: rd mr mw me',
    '600000001000-600000002000 rw-p 00001000 fe:00 9                          /usr/lib/libc.so.6',
    'Anonymous:             4 kB',
    'VmFlags: rd wr mr mw me ac mg',
    'ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]',
    'VmFlags: ex',
  ].join('\n');
  const vmas = parseSmaps(smaps);
  assert.equal(vmas.length, 7);
  assert.deepEqual(
    vmas.map((v) => skipReason(v, false) ?? 'scan'),
    ['scan', 'shared', 'special', 'hugetlb', 'no-anonymous-pages', 'scan', 'gate'],
  );
  assert.deepEqual(
    vmas.map((v) => skipReason(v, true) ?? 'scan'),
    ['not-mergeable', 'shared', 'special', 'hugetlb', 'not-mergeable', 'scan', 'gate'],
  );
  assert.equal(vmas[0]!.anonymousKb, 1024);
});

test('two processes with equal data: found in each other, merged in the estimate', { skip }, async (t) => {
  const script = pythonWorkload({
    shared: 16,
    pattern: 2,
    zeroes: 2,
    unique: 4,
    zeroMapped: 2,
    sharedMapping: 1,
  });
  const [a] = await start(script);
  const [b] = await start(script);
  // The kernel's defaults, not the machine's live settings: another tool's ksmd run (under the
  // lock, which this read-only test does not take) may have use_zero_pages at 1 meanwhile.
  const settings = { useZeroPages: false, maxPageSharing: 256 };
  const r = await runEstimate({ pids: [a!, b!], threads: 0, settings });
  assert.equal(r.sources.length, 2);
  assert.deepEqual(r.unreadable, []);
  const pair = r.pairs[0]!;
  // 16 MiB of equal bytes: 4096 pages, one or two of them partly outside the buffer.
  assert.ok(pair.aPagesFoundInB >= 4094, `${pair.aPagesFoundInB} pages of a found in b`);
  // Together: the equal pages (4094+), the pattern (2 × 512 pages of one content: SG 1020), the
  // zero-filled pages (2 × 512: SG 1020), and the interpreter's own equal pages.
  const enough = r.total.total.pages_sharing >= 4094 + 1020 + 1020;
  for (const s of r.sources) {
    // What each process looked like, should the bound ever fail.
    if (enough || s.kind !== 'process') continue;
    const { skipped: _, ...scan } = s.scan;
    t.diagnostic(
      JSON.stringify({ ...scan, command: undefined, alone: s.summary.alone, zero: s.summary.zeroPages }),
    );
  }
  assert.ok(enough, `pages_sharing ${r.total.total.pages_sharing}`);
  for (const s of r.sources) {
    assert.equal(s.kind, 'process');
    if (s.kind !== 'process') continue;
    assert.equal(s.scan.mode, 'compatible');
    // Alone, the pattern and the zero-filled pages merge within the process: SG ≥ 511 + 511.
    assert.ok(s.summary.alone.pages_sharing >= 1022, `alone ${s.summary.alone.pages_sharing}`);
    assert.ok(s.summary.zeroPages >= 512);
    // The read-only private mapping maps the shared zero page: not scanned.
    assert.ok(s.scan.zeroPageMappings >= 511, `zero-page mappings ${s.scan.zeroPageMappings}`);
    const reasons = new Set(s.scan.skipped.map((v) => v.reason));
    assert.ok(reasons.has('shared'), 'the MAP_SHARED mapping is skipped');
    assert.ok(reasons.has('special'), '[vvar] is skipped');
    assert.ok(reasons.has('no-anonymous-pages'), 'file mappings without anonymous pages are skipped');
    assert.ok(s.scan.filePages > 0, 'page-cache pages of private file mappings are not scanned');
  }
  // The same in reader threads.
  const threaded = await runEstimate({ pids: [a!, b!], threads: 2, settings });
  assert.equal(threaded.speed.threads, 2);
  assert.equal(threaded.total.examined, r.total.examined);
  assert.equal(threaded.total.total.pages_sharing, r.total.total.pages_sharing);
  assert.equal(threaded.pairs[0]!.aPagesFoundInB, pair.aPagesFoundInB);
  // Only VM_MERGEABLE VMAs: these processes have none.
  const mergeable = await runEstimate({ pids: [a!], vmaMode: 'mergeable' });
  assert.equal(mergeable.total.examined, 0);
  const first = mergeable.sources[0]!;
  assert.ok(first.kind === 'process' && first.scan.skipped.some((v) => v.reason === 'not-mergeable'));
});

test('pages shared after fork are one page mapped twice: not counted as mergeable', {
  skip: skip || kernelSkip(root ? false : 'needs root (page frame numbers)'),
}, async () => {
  const pids = await start(pythonWorkload({ unique: 8, fork: true }), 2);
  assert.equal(pids.length, 2);
  const r = await runEstimate({ pids, threads: 0 });
  assert.equal(r.framesKnown, true);
  // The 8 MiB (2048 pages) of random data, never written after fork, is one frame per page in both.
  assert.ok(r.total.sameFramePages >= 2 * 2040, `same-frame pages ${r.total.sameFramePages}`);
  assert.ok(r.pairs[0]!.aPagesFoundInB >= 2040);
  assert.ok(
    r.total.total.pages_sharing < r.total.sameFramePages / 4,
    `pages_sharing ${r.total.total.pages_sharing} against ${r.total.sameFramePages} fork-shared`,
  );
});

const gcore = process.platform === 'linux' ? spawnSync('sh', ['-c', 'command -v gcore']).status === 0 : false;

test('a gcore core file of a process holds the pages of the live process', {
  skip: skip || kernelSkip(gcore ? false : 'needs gcore (gdb)'),
}, async () => {
  const [pid] = await start(pythonWorkload({ shared: 8, unique: 4 }));
  const dir = mkdtempSync(join(tmpdir(), 'ksmkit-gcore-'));
  try {
    const r0 = spawnSync('gcore', ['-o', join(dir, 'core'), String(pid)], { encoding: 'utf8' });
    assert.equal(r0.status, 0, r0.stderr);
    const core = join(dir, `core.${pid}`);
    const r = await runEstimate({ pids: [pid!], files: [core], threads: 0 });
    assert.deepEqual(r.unreadable, []);
    const live = r.sources[0]!;
    const dump = r.sources[1]!;
    assert.ok(live.kind === 'process' && dump.kind === 'dump' && dump.scan.kind === 'elf-core');
    const pair = r.pairs[0]!;
    // Everything the live process has is in its core, but for the few pages it changed since.
    assert.ok(
      pair.aPagesFoundInB >= 0.95 * live.summary.examined,
      `${pair.aPagesFoundInB} of ${live.summary.examined} live pages found in the core`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a process that does not exist is reported, with a failing exit for an explicit pid', {
  skip,
}, async () => {
  const r = await runEstimate({ pids: [2 ** 22 + 12345], threads: 0 });
  assert.equal(r.sources.length, 0);
  assert.equal(r.unreadable.length, 1);
  assert.equal(r.unreadable[0]!.explicit, true);
  assert.match(r.unreadable[0]!.error, /no such process/);
});

test('--match selects by command line and leaves this process out', { skip }, async () => {
  const marker = `ksmkit-estimate-match-${process.pid}`;
  const [pid] = await start(`${pythonWorkload({ unique: 1 })}\n# ${marker}`);
  const r = await runEstimate({ match: new RegExp(marker), threads: 0 });
  assert.deepEqual(
    r.sources.map((s) => (s.kind === 'process' ? s.scan.pid : -1)),
    [pid],
  );
});
