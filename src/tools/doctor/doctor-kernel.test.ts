/**
 * `ksmkit doctor` against the real kernel: one agent process per verdict, set
 * up to show it, and a check that doctor gives exactly that verdict; then the
 * real ksmd runs to convergence and doctor's page predictions are checked:
 * of the pages it said would merge at least 99% became KSM pages (KPF_KSM), of
 * those it said would not, none did.
 *
 * One kernel session (the machine-wide lock, every setting restored) holds
 * every fixture; the phases change only what they need:
 * 1. ksmd stopped (run 0): every process and page verdict, the predictions;
 * 2. pages_to_scan 1, a 10 s sleep, smart_scan 0: the pacing checks;
 * 3. ksmd fast, to convergence: the predictions against KPF_KSM;
 * 4. run 2; 5. the scan-time advisor; 6. a PR_SET_MEMORY_MERGE process;
 * 7. ksmtuned running (when installed), which keeps run at 0 on this idle host.
 *
 * max_page_sharing is 4 for the whole session, so that a content of 9 pages
 * leaves one alone (chain-full) and 300 zero pages chain.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RegionMapping } from '../../backend/backend.ts';
import { onEveryExit } from '../../backend/kernel/exit-hooks.ts';
import {
  FIXTURE_BASE_ADDRESS as BASE,
  fixtureRegion as region,
} from '../../backend/kernel/fixture-region.ts';
import {
  type KernelBackend,
  kernelBackendAvailability,
  withKernelBackend,
} from '../../backend/kernel/kernel-backend.ts';
import { readKsmNumber, writeKsm } from '../../backend/kernel/ksm-sysfs.ts';
import { readPfns } from '../../backend/kernel/proc-inspect.ts';
import { KPageFlags } from '../estimate/proc-source.ts';
import { type DoctorReport, type DoctorRun, runDoctor, runDoctorPages } from './doctor.ts';
import { listProcesses } from './host-reading.ts';
import { toJson } from './json.ts';
import { PAGE_VERDICTS } from './pages.ts';
import { type Finding, type Verdict, WILL_MERGE } from './verdicts.ts';

const availability = kernelBackendAvailability();
const skip = availability.ok ? false : availability.reason;

const KPF_KSM = 1 << 21;

interface Fixture {
  readonly process: string;
  readonly region: RegionMapping;
}

interface Session {
  phase1: DoctorRun;
  pids: Map<string, number>;
  regions: Map<string, Fixture>;
  hugetlb: boolean | string;
  slow: DoctorReport;
  agreement: {
    willMerge: number;
    merged: number;
    wontMerge: number;
    wronglyMerged: string[];
    notMerged: string[];
  };
  unmerging: DoctorReport;
  advisor: DoctorReport;
  mergeAny: DoctorReport;
  tuner: DoctorReport | string;
  capped: DoctorReport;
}

const session: Partial<Session> = {};

async function fill(
  k: KernelBackend,
  f: Fixture,
  value: { hi: number; lo: number; loStep: number },
  range = { pageIndex: 0, pageCount: f.region.pageCount },
): Promise<void> {
  assert.deepEqual(await k.fillValues(f.process, f.region.name, range, value), { ok: true });
}

/** Reserves two huge pages for the hugetlb fixture; a reason when the machine cannot. */
function reserveHugePages(): { restore: () => void } | string {
  const path = '/proc/sys/vm/nr_hugepages';
  const before = readFileSync(path, 'latin1').trim();
  let dispose = (): void => {};
  const restore = (): void => {
    dispose();
    writeFileSync(path, before);
  };
  try {
    writeFileSync(path, String(Number(before) + 2));
  } catch (e) {
    return `cannot write ${path}: ${(e as Error).message}`;
  }
  dispose = onEveryExit(restore);
  const free = Number(/^HugePages_Free:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'latin1'))?.[1] ?? 0);
  if (free < 1) {
    restore();
    return 'the machine could not reserve a huge page';
  }
  return { restore };
}

async function setUp(
  k: KernelBackend,
  regions: Map<string, Fixture>,
  pids: Map<string, number>,
): Promise<void> {
  const add = async (process: string, r: RegionMapping): Promise<Fixture> => {
    if (!pids.has(process)) {
      assert.deepEqual(await k.spawn(process, { memoryMerge: false }), { ok: true });
      pids.set(process, k.pidOf(process));
    }
    assert.deepEqual(await k.mmap(process, r), { ok: true }, `mmap ${process}.${r.name}`);
    const f = { process, region: r };
    regions.set(`${process}.${r.name}`, f);
    return f;
  };
  const advise = async (f: Fixture): Promise<void> => {
    assert.deepEqual(await k.madvise(f.process, f.region.name, 'mergeable'), { ok: true });
  };
  const unregistered = await add('unregistered', region('ram', 0, 512));
  await fill(k, unregistered, { hi: 0x100, lo: 0, loStep: 1 });
  const advised = await add('partial', region('advised', 0, 64));
  await fill(k, advised, { hi: 0x200, lo: 0, loStep: 1 });
  await advise(advised);
  const plain = await add('partial', region('plain', 1, 256));
  await fill(k, plain, { hi: 0x201, lo: 0, loStep: 1 });
  // MADV_MERGEABLE on a shared mapping succeeds and does nothing: the silent failure operators meet.
  const shared = await add('shared', region('guest', 0, 256, { shared: true }));
  await fill(k, shared, { hi: 0x300, lo: 0, loStep: 0 });
  await advise(shared);
  for (const name of ['twin-a', 'twin-b']) {
    const f = await add(name, region('ram', 0, 64));
    await fill(k, f, { hi: 0x400, lo: 0, loStep: 1 });
    await advise(f);
  }
  // Fewer than 64 pages: no metadata-over-gain beside (64 rmap items for no merging page would be one).
  const unique = await add('unique', region('ram', 0, 48));
  await fill(k, unique, { hi: 0x500, lo: 0, loStep: 1 });
  await advise(unique);
  const chain = await add('chain', region('ram', 0, 9));
  await fill(k, chain, { hi: 0x700, lo: 0, loStep: 0 });
  await advise(chain);
  const zero = await add('zero', region('ram', 0, 300));
  await fill(k, zero, { hi: 0, lo: 0, loStep: 0 });
  await advise(zero);
  const metadata = await add('metadata', region('ram', 0, 1302));
  await fill(k, metadata, { hi: 0x800, lo: 0, loStep: 1 }, { pageIndex: 0, pageCount: 1300 });
  await fill(k, metadata, { hi: 0x801, lo: 0, loStep: 0 }, { pageIndex: 1300, pageCount: 2 });
  await advise(metadata);
  // Two THPs whose halves are twins: KSM splits them to merge.
  const thp = await add('thp', region('ram', 0, 1024, { thp: true }));
  await fill(k, thp, { hi: 0x900, lo: 0, loStep: 1 });
  await fill(k, thp, { hi: 0x900, lo: 0, loStep: 1 }, { pageIndex: 512, pageCount: 512 });
  await advise(thp);
  const volatile = await add('volatile', region('ram', 0, 32));
  await fill(k, volatile, { hi: 0x600, lo: 0, loStep: 1 });
  await advise(volatile);
}

/** Rewrites the volatile fixture with fresh unique values until stopped. */
function startWriter(k: KernelBackend, f: Fixture): { stop: () => Promise<void> } {
  let running = true;
  let lo = 1_000_000;
  const loop = (async () => {
    while (running) {
      lo += f.region.pageCount;
      await fill(k, f, { hi: 0x600, lo, loStep: 1 });
      await sleep(2);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

function waitFullScans(count: number, timeoutMs: number): Promise<void> {
  const target = readKsmNumber('full_scans') + count;
  const deadline = Date.now() + timeoutMs;
  return (async () => {
    while (readKsmNumber('full_scans') < target) {
      if (Date.now() > deadline)
        throw new Error(`ksmd did not finish ${count} full scans in ${timeoutMs} ms`);
      await sleep(20);
    }
  })();
}

function checkAgreement(run: DoctorRun, fixturePids: ReadonlySet<number>): Session['agreement'] {
  const kpageflags = KPageFlags.open();
  assert.ok(kpageflags !== undefined, '/proc/kpageflags');
  const result: Session['agreement'] = {
    willMerge: 0,
    merged: 0,
    wontMerge: 0,
    wronglyMerged: [],
    notMerged: [],
  };
  try {
    for (const r of run.pages) {
      if (!fixturePids.has(r.pid)) continue;
      const frames = readPfns(r.pid, r.vma.start, (r.vma.end - r.vma.start) / 4096);
      for (let i = 0; i < r.count; i++) {
        const verdict = PAGE_VERDICTS[r.verdicts[i]!]!;
        const frame = frames[(r.addresses[i]! - r.vma.start) / 4096];
        const ksm = frame !== undefined && ((kpageflags.lowWord(frame) ?? 0) & KPF_KSM) !== 0;
        const where = `pid ${r.pid} 0x${r.addresses[i]!.toString(16)} (${verdict})`;
        if (WILL_MERGE.has(verdict)) {
          result.willMerge++;
          if (ksm) result.merged++;
          else result.notMerged.push(where);
        } else {
          result.wontMerge++;
          if (ksm) result.wronglyMerged.push(where);
        }
      }
    }
  } finally {
    kpageflags.close();
  }
  return result;
}

let tunerChild: ChildProcess | undefined;
function killTuner(): void {
  if (tunerChild?.pid === undefined) return;
  try {
    process.kill(-tunerChild.pid, 'SIGKILL');
  } catch {
    // Gone.
  }
  tunerChild = undefined;
}

async function runSession(): Promise<void> {
  const reservation = reserveHugePages();
  const cancelTunerKill = onEveryExit(killTuner);
  try {
    await withKernelBackend(
      async (k) => {
        const regions = new Map<string, Fixture>();
        const pids = new Map<string, number>();
        await setUp(k, regions, pids);
        if (typeof reservation === 'string') session.hugetlb = reservation;
        else {
          const r = region('huge', 0, 512, { hugetlb: true });
          assert.deepEqual(await k.spawn('hugetlb', { memoryMerge: false }), { ok: true });
          pids.set('hugetlb', k.pidOf('hugetlb'));
          const m = await k.mmap('hugetlb', r);
          session.hugetlb = m.ok ? true : `mmap MAP_HUGETLB: ${m.errno}`;
          if (m.ok) regions.set('hugetlb.huge', { process: 'hugetlb', region: r });
        }
        session.regions = regions;
        session.pids = pids;
        const target = { kind: 'pids' as const, pids: [...pids.values()] };
        const writer = startWriter(k, regions.get('volatile.ram')!);
        try {
          // 1. ksmd stopped.
          session.phase1 = await runDoctorPages({ target, windowMs: 1000 });
          session.capped = await runDoctor({ target, windowMs: 0, maxPages: 100 });
          // 2. A full scan that takes ages, smart_scan off.
          for (const [name, value] of [
            ['smart_scan', '0'],
            ['pages_to_scan', '1'],
            ['sleep_millisecs', '10000'],
            ['run', '1'],
          ] as const) {
            assert.deepEqual(writeKsm(name, value), { ok: true });
          }
          session.slow = await runDoctor({ target, windowMs: 500, pages: false });
          // 3. ksmd fast, to convergence: 2 passes to pair, 1 to split THPs, margin.
          assert.deepEqual(writeKsm('pages_to_scan', '5000'), { ok: true });
          assert.deepEqual(writeKsm('sleep_millisecs', '10'), { ok: true });
          await waitFullScans(8, 120_000);
          session.agreement = checkAgreement(session.phase1, new Set(pids.values()));
        } finally {
          await writer.stop();
        }
        // 4. run 2.
        assert.deepEqual(writeKsm('run', '2'), { ok: true });
        session.unmerging = await runDoctor({ target, windowMs: 100, pages: false });
        assert.deepEqual(writeKsm('run', '0'), { ok: true });
        // 5. The advisor.
        assert.deepEqual(writeKsm('advisor_mode', 'scan-time'), { ok: true });
        session.advisor = await runDoctor({ target, windowMs: 100, pages: false });
        assert.deepEqual(writeKsm('advisor_mode', 'none'), { ok: true });
        // 6. PR_SET_MEMORY_MERGE: every VMA marked, one worth it.
        assert.deepEqual(await k.spawn('merge-any', { memoryMerge: true }), { ok: true });
        const anyRegion = region('ram', 0, 256);
        assert.deepEqual(await k.mmap('merge-any', anyRegion), { ok: true });
        await fill(
          k,
          { process: 'merge-any', region: anyRegion },
          { hi: 0xa00, lo: 0, loStep: 1 },
          { pageIndex: 0, pageCount: 128 },
        );
        await fill(
          k,
          { process: 'merge-any', region: anyRegion },
          { hi: 0xa00, lo: 0, loStep: 1 },
          { pageIndex: 128, pageCount: 128 },
        );
        // A second region, unique pages: marked by the prctl, earning nothing.
        const scratch = region('scratch', 1, 128);
        assert.deepEqual(await k.mmap('merge-any', scratch), { ok: true });
        await fill(k, { process: 'merge-any', region: scratch }, { hi: 0xa01, lo: 0, loStep: 1 });
        pids.set('merge-any', k.pidOf('merge-any'));
        session.mergeAny = await runDoctor({
          target: { kind: 'pids', pids: [k.pidOf('merge-any')] },
          windowMs: 200,
        });
        // 7. ksmtuned, when installed: it keeps run at 0 on this idle host.
        if (!existsSync('/usr/sbin/ksmtuned')) session.tuner = 'ksmtuned is not installed';
        else {
          tunerChild = spawn('/usr/sbin/ksmtuned', [], { detached: true, stdio: 'ignore' });
          try {
            const deadline = Date.now() + 5000;
            while (!listProcesses().some((p) => p.pid === tunerChild?.pid && p.comm === 'ksmtuned')) {
              if (Date.now() > deadline) throw new Error('ksmtuned did not start');
              await sleep(20);
            }
            session.tuner = await runDoctor({ target, windowMs: 100, pages: false });
          } finally {
            killTuner();
          }
        }
      },
      { settings: [['max_page_sharing', '4']] },
    );
  } finally {
    cancelTunerKill();
    killTuner();
    if (typeof reservation !== 'string') reservation.restore();
  }
}

function fixtureRows(report: DoctorReport, name: string): Finding[] {
  const f = session.regions!.get(name)!;
  const pid = session.pids!.get(f.process)!;
  return report.findings.filter((x) => x.subject.pid === pid && x.subject.start === f.region.address);
}

/** The verdicts of a fixture's region with their pages: exactly these, nothing else. */
function verdictPages(report: DoctorReport, name: string): Partial<Record<Verdict, number>> {
  const out: Partial<Record<Verdict, number>> = {};
  for (const f of fixtureRows(report, name)) out[f.verdict] = (out[f.verdict] ?? 0) + f.pages;
  return out;
}

function hostVerdicts(report: DoctorReport): Set<Verdict> {
  return new Set(report.findings.filter((f) => f.subject.pid === undefined).map((f) => f.verdict));
}

describe('doctor on the real kernel', { skip }, () => {
  before(runSession, { timeout: 300_000 });
  after(killTuner);

  test('every report parses with the ksmkit-doctor/1 schema', () => {
    for (const r of [
      session.phase1!.report,
      session.slow!,
      session.unmerging!,
      session.advisor!,
      session.mergeAny!,
    ]) {
      assert.doesNotThrow(() => toJson(r));
    }
  });

  test('--max-pages: above it no page is read, and a note says why', () => {
    const r = session.capped!;
    assert.equal(r.pageAnalysis, false);
    assert.ok(
      r.notes.some((n) =>
        /^per page verdicts skipped: \d+ VM_MERGEABLE pages to read twice is over --max-pages 100/.test(n),
      ),
    );
    assert.ok(
      r.findings.some((f) => f.verdict === 'shared-mapping'),
      'the smaps verdicts are still there',
    );
  });

  test('ksmd-stopped: run 0 (tuner-gating instead while another tuning daemon runs on this machine)', () => {
    const report = session.phase1!.report;
    const expected = report.host.tuners.length === 0 ? 'ksmd-stopped' : 'tuner-gating';
    assert.ok(hostVerdicts(report).has(expected), [...hostVerdicts(report)].join(' '));
  });

  test('shared-mapping: a MAP_SHARED region advised MADV_MERGEABLE', () => {
    assert.deepEqual(Object.keys(verdictPages(session.phase1!.report, 'shared.guest')), ['shared-mapping']);
  });

  test('not-advised: a region of a registered process without MADV_MERGEABLE', () => {
    assert.deepEqual(verdictPages(session.phase1!.report, 'partial.plain'), { 'not-advised': 256 });
  });

  test('not-registered: a process with 2 MiB of anonymous memory and no advice at all', () => {
    const pid = session.pids!.get('unregistered')!;
    const rows = session.phase1!.report.findings.filter((f) => f.subject.pid === pid);
    assert.deepEqual(
      rows.map((f) => [f.verdict, f.subject.start]),
      [['not-registered', undefined]],
    );
    assert.ok(rows[0]!.pages >= 512);
  });

  test('twin-waiting: two processes with the same 64 pages, ksmd stopped; the fix starts ksmd', () => {
    for (const name of ['twin-a.ram', 'twin-b.ram']) {
      assert.deepEqual(verdictPages(session.phase1!.report, name), { 'twin-waiting': 64 });
    }
    const fix = fixtureRows(session.phase1!.report, 'twin-a.ram')[0]!.fix;
    assert.match(fix, /echo 1 > \/sys\/kernel\/mm\/ksm\/run/);
  });

  test('unique: 48 pages no other page has', () => {
    assert.deepEqual(verdictPages(session.phase1!.report, 'unique.ram'), { unique: 48 });
  });

  test('volatile: 32 pages rewritten every few milliseconds', () => {
    assert.deepEqual(verdictPages(session.phase1!.report, 'volatile.ram'), { volatile: 32 });
  });

  test('chain-full: 9 equal pages with max_page_sharing 4 leave the last one alone', () => {
    assert.deepEqual(verdictPages(session.phase1!.report, 'chain.ram'), {
      'twin-waiting': 8,
      'chain-full': 1,
    });
  });

  test('zero-candidate and zero-pages-off: 300 zero pages with use_zero_pages 0', () => {
    assert.deepEqual(verdictPages(session.phase1!.report, 'zero.ram'), { 'zero-candidate': 300 });
    assert.ok(hostVerdicts(session.phase1!.report).has('zero-pages-off'));
  });

  test('metadata-over-gain: 1302 rmap items for 2 merging pages', () => {
    assert.deepEqual(verdictPages(session.phase1!.report, 'metadata.ram'), {
      unique: 1300,
      'twin-waiting': 2,
      'metadata-over-gain': 1302,
    });
  });

  test('thp-split: two THPs of a VM_MERGEABLE region whose halves are twins', () => {
    const v = verdictPages(session.phase1!.report, 'thp.ram');
    assert.equal(v['twin-waiting'], 1024);
    assert.ok((v['thp-split'] ?? 0) > 0, `AnonHugePages in the region: ${JSON.stringify(v)}`);
    assert.deepEqual(Object.keys(v).sort(), ['thp-split', 'twin-waiting']);
  });

  test('hugetlb: a MAP_HUGETLB region', (t) => {
    if (session.hugetlb !== true) {
      t.skip(String(session.hugetlb));
      return;
    }
    assert.deepEqual(Object.keys(verdictPages(session.phase1!.report, 'hugetlb.huge')), ['hugetlb']);
  });

  test('scan-too-slow and smart-scan-off: pages_to_scan 1 every 10 s, smart_scan 0', () => {
    const host = hostVerdicts(session.slow!);
    assert.ok(host.has('scan-too-slow'), [...host].join(' '));
    assert.ok(host.has('smart-scan-off'));
    assert.ok(!host.has('ksmd-stopped'));
    const fix = session.slow!.findings.find((f) => f.verdict === 'scan-too-slow')!.fix;
    assert.match(fix, /^echo \d+ > \/sys\/kernel\/mm\/ksm\/pages_to_scan/);
  });

  test('agreement: of the pages doctor said would merge >= 99% became KPF_KSM; of the others none did', (t) => {
    const a = session.agreement!;
    t.diagnostic(
      `would merge ${a.willMerge}, became KPF_KSM ${a.merged}; would not ${a.wontMerge}, became KPF_KSM ${a.wronglyMerged.length}`,
    );
    assert.ok(
      a.willMerge > 1000 && a.wontMerge > 1000,
      JSON.stringify({ ...a, notMerged: a.notMerged.length }),
    );
    assert.ok(
      a.merged >= 0.99 * a.willMerge,
      `${a.merged} of ${a.willMerge} merged; not: ${a.notMerged.slice(0, 10).join(', ')}`,
    );
    assert.deepEqual(a.wronglyMerged, []);
  });

  test('ksmd-unmerging: run 2', () => {
    assert.ok(hostVerdicts(session.unmerging!).has('ksmd-unmerging'));
  });

  test('advisor-mode: advisor_mode scan-time', () => {
    assert.ok(hostVerdicts(session.advisor!).has('advisor-mode'));
  });

  test('merge-any-targeted: PR_SET_MEMORY_MERGE where one VMA earns its metadata', () => {
    const row = session.mergeAny!.findings.find((f) => f.verdict === 'merge-any-targeted');
    assert.ok(row !== undefined, session.mergeAny!.findings.map((f) => f.verdict).join(' '));
    const address = BASE.toString(16);
    assert.match(
      row.fix,
      new RegExp(
        `^prctl\\(PR_SET_MEMORY_MERGE, 0\\), then madvise\\(0x${address}, 1048576, MADV_MERGEABLE\\)`,
      ),
    );
  });

  test('tuner-gating: ksmtuned running with run 0', (t) => {
    if (typeof session.tuner === 'string') {
      t.skip(session.tuner);
      return;
    }
    const row = session.tuner!.findings.find(
      (f) => f.verdict === 'tuner-gating' && f.evidence.startsWith('ksmtuned'),
    );
    assert.ok(row !== undefined, session.tuner!.findings.map((f) => f.evidence).join('\n'));
    assert.match(row.evidence, /^ksmtuned \(pid \d+\) is running; run is 0: its rule sees no pressure/);
    assert.equal(session.tuner!.host.tuners.find((t) => t.name === 'ksmtuned')?.decision?.stopsKsm, true);
  });
});
