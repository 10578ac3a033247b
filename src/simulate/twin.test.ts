/**
 * The host's twin without the kernel: volatile regions from samples, pages
 * matched by address, the recorder's fingerprints, the twin as a scenario and
 * on the engine (counters worked out by hand), the twin file (salted, round
 * trip, refusals), the command line, and a capture of real processes (python3)
 * read through /proc as `simulate --from-host` reads them.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { simulateCommand } from '../cli/simulate.ts';
import { python3, type Started, startReady, stopAll } from '../tools/estimate/testing.ts';
import { SHIPPED_CALIBRATION } from './cost.ts';
import { runOnEngine } from './engine-run.ts';
import {
  groupName,
  REGION_GAP_PAGES,
  TWIN_VERSION,
  type Twin,
  type TwinProcess,
  twinScenario,
  volatileRegions,
} from './twin.ts';
import { captureDumps, captureHost, changesPerPage, PageRecorder, type PageSet } from './twin-capture.ts';
import { loadTwin, saltKeys, saveTwin, TwinFileError } from './twin-file.ts';

const calibration = SHIPPED_CALIBRATION;

/** Keys of `values` (each its own fingerprint, 0 the zero page). */
function keysOf(values: readonly number[]): Uint32Array {
  const keys = new Uint32Array(2 * values.length);
  values.forEach((v, i) => {
    keys[2 * i] = v;
    keys[2 * i + 1] = v === 0 ? 0 : 0x4000_0000;
  });
  return keys;
}

function processOf(
  pid: number,
  values: readonly number[],
  regions: TwinProcess['regions'] = [],
): TwinProcess {
  return {
    pid,
    name: `p${pid}`,
    command: `p${pid} --secret`,
    orderKey: pid,
    vmas: [{ start: 0x1000_0000, pageCount: values.length + 10, presentPages: values.length, name: '' }],
    keys: keysOf(values),
    regions,
  };
}

function twinOf(processes: readonly TwinProcess[]): Twin {
  return {
    version: TWIN_VERSION,
    source: 'host',
    capturedAt: '2026-12-06 00:00:00',
    hostName: 'testhost',
    kernel: 'Linux 6.18.44',
    memoryBytes: 2 ** 30,
    otherUseBytes: 2 ** 20,
    numaNodes: 1,
    ksmdWakeDelay: { ns: 0, cpuPerPreemptionNs: 0, basis: 'unknown' },
    settings: [
      { name: 'pages_to_scan', value: '100' },
      { name: 'sleep_millisecs', value: '20' },
    ],
    settingsSource: 'sysfs',
    sampling: { samples: 2, intervalMs: 5000 },
    salted: false,
    vmaMode: 'mergeable',
    processes,
    notes: [],
  };
}

const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

describe('volatile regions', () => {
  it('turns the share of pages that changed into a Poisson rate per page', () => {
    const changes = new Uint8Array(100);
    // Pages 10..19: half of them changed in the one interval of 2 s.
    for (let i = 10; i < 20; i += 2) changes[i] = 1;
    changes[19] = 1;
    const [r, ...rest] = volatileRegions(changes, 1, 2000);
    assert.equal(rest.length, 0);
    assert.equal(r!.firstPage, 10);
    assert.equal(r!.pageCount, 10);
    // f = 6/10 of (page, interval) pairs changed: λ = −ln(0.4)/2 s per page.
    assert.ok(Math.abs(r!.writesPerSecond - (-Math.log(0.4) / 2) * 10) < 1e-9);
    assert.equal(r!.saturated, false);
  });

  it('splits regions at gaps wider than REGION_GAP_PAGES and marks a region changed in every interval', () => {
    assert.deepEqual(
      volatileRegions(Uint8Array.from([1, 1, 1, 1]), 1, 1000, [2]).map((r) => [r.firstPage, r.pageCount]),
      [
        [0, 2],
        [2, 2],
      ],
      'a region stays within its VMA',
    );
    const changes = new Uint8Array(400);
    changes[5] = 2;
    changes[6] = 2;
    changes[6 + REGION_GAP_PAGES + 1] = 1;
    const regions = volatileRegions(changes, 2, 1000);
    assert.deepEqual(
      regions.map((r) => [r.firstPage, r.pageCount, r.saturated]),
      [
        [5, 2, true],
        [6 + REGION_GAP_PAGES + 1, 1, false],
      ],
    );
    // Saturated: a page would be missed once in 2·pages·intervals.
    assert.ok(Math.abs(regions[0]!.writesPerSecond - 2 * -Math.log(1 / 8)) < 1e-9);
    assert.deepEqual(volatileRegions(new Uint8Array(10), 1, 1000), []);
    assert.deepEqual(volatileRegions(changes, 0, 1000), []);
  });
});

describe('pages across samples', () => {
  const set = (pairs: [number, number][]): PageSet => ({
    addresses: Float64Array.from(pairs.map(([a]) => a * 4096)),
    keys: Uint32Array.from(pairs.flatMap(([, k]) => [k, 7])),
  });

  it('counts a change where a page appeared or its key changed, matched by address', () => {
    const s0 = set([
      [1, 10],
      [2, 20],
      [4, 40],
    ]);
    const s1 = set([
      [1, 10],
      [2, 21],
      [3, 30],
      [4, 40],
    ]);
    const s2 = set([
      [1, 11],
      [2, 21],
      [3, 30],
    ]);
    // Page 1 changed in the second interval, 2 in the first, 3 appeared in the first.
    assert.deepEqual([...changesPerPage([s0, s1, s2])], [1, 1, 1]);
    assert.deepEqual([...changesPerPage([s2])], [0, 0, 0]);
  });

  it('records the zero page as (0, 0), the first two bytes in the fingerprint, in address order', () => {
    const r = new PageRecorder();
    const keys = Uint32Array.from([0x1111, 0x2222_3333, 0, 0, 5, 6]);
    r.count(keys, 0, false, 0, 3 * 4096, 0xabcd);
    r.count(keys, 1, false, 0, 1 * 4096, 0);
    r.count(keys, 2, true, 0, 2 * 4096, 0);
    const got = r.take();
    assert.deepEqual([...got.addresses], [4096, 2 * 4096, 3 * 4096]);
    // A non-empty page whose value would be the zero page's is kept apart; the zero page is (0, 0).
    assert.deepEqual([...got.keys], [0, 1, 0, 0, 0x1111, 0xabcd_3333]);
    assert.equal(r.take().addresses.length, 0);
  });
});

describe('the twin as a scenario', () => {
  it('makes one group per process with the regions as runs rewritten at their rate, and sources every assumption', () => {
    const twin = twinOf([
      processOf(7, range(1, 10), [{ firstPage: 4, pageCount: 3, writesPerSecond: 2, saturated: false }]),
    ]);
    const s = twinScenario(twin, { calibration, durationMs: 30_000 });
    assert.equal(s.groups.length, 1);
    const g = s.groups[0]!;
    assert.equal(g.name, groupName(twin.processes[0]!));
    assert.equal(g.hostPid, 7);
    assert.deepEqual(
      g.content.map((r) => [
        r.pageCount,
        r.writesPerSecond,
        r.source.kind === 'fingerprints' && r.source.offsetPages,
      ]),
      [
        [4, 0, 0],
        [3, 2, 4],
        [3, 0, 7],
      ],
    );
    assert.equal(s.durationMs, 30_000);
    assert.equal(s.host.memoryBytes, 2 ** 30);
    assert.ok(s.assumptions.length >= 8);
    for (const a of s.assumptions) assert.match(a, /^(measured|sampled|modelled): /);
    assert.ok(s.assumptions.some((a) => /^modelled: mm slot order/.test(a)));
    assert.ok(s.assumptions.some((a) => /^sampled: Volatility: 2 samples/.test(a)));
  });

  it('refuses a twin with no page to scan', () => {
    assert.throws(() => twinScenario(twinOf([processOf(1, [])]), { calibration }), /no page ksmd would scan/);
  });

  it('merges on the engine as the fingerprints say: shared, sharing, zero pages and each process', () => {
    // Three processes: 50 pages of one image each, 20 zero pages, 30 of their own.
    const image = range(1000, 50);
    const twin = twinOf(
      [1, 2, 3].map((pid) => processOf(pid, [...image, ...Array(20).fill(0), ...range(pid * 5000, 30)])),
    );
    const run = runOnEngine(twinScenario(twin, { calibration, durationMs: 20_000 }), {
      figures: calibration.figures,
    });
    const end = run.samples.at(-1)!;
    // The image: 50 KSM pages, each mapped 3 times; the 60 zero pages: one KSM page.
    assert.equal(end.pages_shared, 51);
    assert.equal(end.pages_sharing, 2 * 50 + 59);
    assert.equal(end.ksm_zero_pages, 0);
    assert.equal(end.rmap_items, 300);
    assert.deepEqual(
      run.processes?.map((p) => [p.hostPid, p.ksm_merging_pages]),
      [
        [1, 70],
        [2, 70],
        [3, 70],
      ],
    );
    const zero = runOnEngine(twinScenario(twin, { calibration, durationMs: 20_000 }), {
      figures: calibration.figures,
      settings: [{ name: 'use_zero_pages', value: '1' }],
    });
    assert.equal(zero.samples.at(-1)!.ksm_zero_pages, 60);
    assert.equal(zero.samples.at(-1)!.pages_shared, 50);
  });

  it('keeps a region rewritten faster than ksmd visits it volatile and unmerged', () => {
    const image = range(1000, 40);
    const fast = [{ firstPage: 0, pageCount: 40, writesPerSecond: 400, saturated: true }];
    const twin = twinOf([processOf(1, image, fast), processOf(2, image, fast)]);
    const run = runOnEngine(twinScenario(twin, { calibration, durationMs: 20_000 }), {
      figures: calibration.figures,
      // A pass a second: every page is rewritten some 10 times between two visits.
      settings: [
        { name: 'smart_scan', value: '0' },
        { name: 'sleep_millisecs', value: '1000' },
      ],
    });
    const end = run.samples.at(-1)!;
    assert.equal(end.pages_sharing, 0);
    assert.ok(end.pages_volatile >= 70, `pages_volatile ${end.pages_volatile}`);
  });
});

describe('the twin file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ksmkit-twin-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('round-trips layout, regions and settings with fingerprints salted: equal stay equal, zero stays zero', () => {
    const twin = twinOf([
      processOf(1, [5, 0, 6, 5], [{ firstPage: 2, pageCount: 2, writesPerSecond: 1.5, saturated: false }]),
      processOf(2, [6, 7]),
    ]);
    const path = join(dir, 'a.twin');
    saveTwin(twin, path);
    const back = loadTwin(path);
    assert.equal(back.salted, true);
    assert.deepEqual(back.processes[0]!.regions, twin.processes[0]!.regions);
    assert.deepEqual(back.processes[0]!.vmas, twin.processes[0]!.vmas);
    assert.deepEqual(back.settings, twin.settings);
    // No command line in the file.
    assert.equal(back.processes[0]!.command, 'p1');
    assert.ok(!gunzipSync(readFileSync(path)).toString('latin1').includes('--secret'));
    const k = (p: number, i: number) => [back.processes[p]!.keys[2 * i], back.processes[p]!.keys[2 * i + 1]];
    assert.deepEqual(k(0, 1), [0, 0]);
    assert.deepEqual(k(0, 0), k(0, 3));
    assert.deepEqual(k(0, 2), k(1, 0));
    assert.notDeepEqual(k(0, 0), k(0, 2));
    assert.notDeepEqual(k(0, 0), [5, 0x4000_0000]);
    // The same run either way.
    const a = runOnEngine(twinScenario(twin, { calibration, durationMs: 10_000 }), {
      figures: calibration.figures,
    });
    const b = runOnEngine(twinScenario(back, { calibration, durationMs: 10_000 }), {
      figures: calibration.figures,
    });
    assert.equal(b.samples.at(-1)!.pages_sharing, a.samples.at(-1)!.pages_sharing);
  });

  it('salts with a seed: another seed gives other fingerprints, the zero page none', () => {
    const keys = keysOf([0, 9]);
    assert.deepEqual([...saltKeys(keys, 1n).subarray(0, 2)], [0, 0]);
    assert.notDeepEqual([...saltKeys(keys, 1n)], [...saltKeys(keys, 2n)]);
  });

  it('refuses another format version, a file that is no twin, and a truncated one, naming the file', () => {
    const path = join(dir, 'b.twin');
    saveTwin(twinOf([processOf(1, [1, 2])]), path);
    const text = gunzipSync(readFileSync(path));
    const newer = Buffer.from(
      text.toString('latin1').replace(`"version":${TWIN_VERSION}`, '"version":2'),
      'latin1',
    );
    writeFileSync(path, gzipSync(newer));
    assert.throws(
      () => loadTwin(path),
      (e: Error) =>
        e instanceof TwinFileError &&
        e.message ===
          `${path}: a twin of format version 2; this ksmkit reads version 1 only (capture it again with this version)`,
    );
    writeFileSync(path, 'hello');
    assert.throws(() => loadTwin(path), /b\.twin: not a ksmkit twin file \(not gzip data\)/);
    writeFileSync(path, gzipSync(text.subarray(0, text.length - 3)));
    assert.throws(() => loadTwin(path), /b\.twin: truncated twin file/);
    assert.throws(() => loadTwin(join(dir, 'none.twin')), /none\.twin: cannot read/);
  });
});

describe('simulate with a twin', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ksmkit-twin-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function run(args: { scenario?: string } & Parameters<typeof simulateCommand>[1]) {
    const out: string[] = [];
    const err: string[] = [];
    const { scenario, ...options } = args;
    const code = await simulateCommand(
      scenario,
      { progress: false, color: false, ...options },
      {
        out: (l) => out.push(l),
        err: (l) => err.push(l),
      },
    );
    return { code, out, err };
  }

  it('refuses options that do not go together, with exit 2 and one line', async () => {
    const cases: [Parameters<typeof run>[0], RegExp][] = [
      [{ fromHost: true }, /--from-host: which processes\? give --pid, --all or --match/],
      [{ pid: [1] }, /--pid, --all and --match select processes for --from-host/],
      [{ saveTwin: 'x' }, /--save-twin needs a twin/],
      [{ fromHost: true, all: true, twin: 'x' }, /--from-host and --twin: give one source of a twin/],
      [{ scenario: 'small', twin: 'x' }, /drop the scenario argument "small"/],
      [{ twin: 'x', twinSamples: 3 }, /--twin-samples and --twin-interval are for --from-host/],
      [{ twin: 'x', policy: 'all' }, /--policy all runs the built-in scenarios/],
    ];
    for (const [options, message] of cases) {
      const r = await run(options);
      assert.equal(r.code, 2, JSON.stringify(options));
      assert.equal(r.err.length, 1);
      assert.match(r.err[0]!, message);
    }
  });

  it('replays a saved twin with a sweep and writes a report that says where each assumption comes from', async () => {
    const path = join(dir, 'c.twin');
    const image = range(1000, 200);
    saveTwin(twinOf([processOf(11, image), processOf(12, image)]), path);
    const report = join(dir, 'r.html');
    const r = await run({ twin: path, duration: '20s', report });
    assert.equal(r.code, 0, r.err.join('\n'));
    assert.ok(
      r.out.some((l) => /^p11 +11 +200 +200 /.test(l)),
      r.out.join('\n'),
    );
    const html = readFileSync(report, 'utf8');
    for (const source of ['measured:', 'sampled:', 'modelled:']) assert.ok(html.includes(source), source);
    const sweep = await run({ twin: path, duration: '20s', set: ['pages_to_scan=100,1000'], advisor: true });
    assert.equal(sweep.code, 0, sweep.err.join('\n'));
    assert.ok(sweep.out.some((l) => /advisor/.test(l)));
  });
});

describe('a twin of memory dumps', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ksmkit-twin-dumps-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('takes each raw dump as one guest in command-line order and merges what they share', async () => {
    // Two guests of 96 pages: 64 of one image, 16 zero pages, 16 of their own.
    const guest = (id: number) => {
      const bytes = Buffer.alloc(96 * 4096);
      for (let i = 0; i < 64; i++) bytes.fill(`image page ${i} `, i * 4096, (i + 1) * 4096);
      for (let i = 80; i < 96; i++) bytes.fill(`guest ${id} page ${i} `, i * 4096, (i + 1) * 4096);
      return bytes;
    };
    const a = join(dir, 'a.raw');
    const b = join(dir, 'b.raw');
    writeFileSync(a, guest(1));
    writeFileSync(b, guest(2));
    // No KSM files there: Linux's defaults (this machine's own settings may be held still by a kernel test).
    const twin = await captureDumps([b, a], { format: 'raw', sysfsDir: join(dir, 'no-ksm') });
    assert.equal(twin.settingsSource, 'defaults');
    assert.ok(twin.settings.some((x) => x.name === 'pages_to_scan' && x.value === '100'));
    assert.deepEqual(
      twin.processes.map((p) => p.name),
      ['b.raw', 'a.raw'],
    );
    assert.equal(twin.source, 'dumps');
    const run = runOnEngine(twinScenario(twin, { calibration, durationMs: 20_000 }), {
      figures: calibration.figures,
    });
    const end = run.samples.at(-1)!;
    // 64 image KSM pages mapped twice, and one KSM page for the 32 zero pages.
    assert.equal(end.pages_shared, 65);
    assert.equal(end.pages_sharing, 64 + 31);
    assert.ok(
      twinScenario(twin, { calibration }).assumptions.some((x) =>
        /^modelled: Volatility: a dump is one snapshot/.test(x),
      ),
    );
  });
});

describe('capturing this host', () => {
  const py = python3();
  const started: Started[] = [];
  after(() => stopAll(started));

  it('reads two processes in start order: image pages alike, zero pages, and the rewritten region with its rate', {
    skip: py === undefined ? 'no python3 here' : false,
    timeout: 60_000,
  }, async () => {
    // 256 pages of a private mapping (no madvise: this test registers nothing with KSM): 128 of an image,
    // 64 zero-filled, 32 of os.urandom, and 32 rewritten 20 times a second by a thread.
    const script = `
import ctypes, mmap, os, random, threading, time
ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)
m = mmap.mmap(-1, 256 * 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for i in range(256):
    if i < 128: m[i * 4096:(i + 1) * 4096] = (b'img%05d' % i) * 512
    elif i < 192: m[i * 4096] = 0
    else: m[i * 4096:(i + 1) * 4096] = os.urandom(4096)
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
def rewrite():
    while True:
        i = 224 + random.randrange(32)
        m[i * 4096:(i + 1) * 4096] = os.urandom(4096)
        time.sleep(0.05)
threading.Thread(target=rewrite, daemon=True).start()
os.write(1, f'ready {os.getpid()}\\nat {addr}\\n'.encode())
time.sleep(3600)
`;
    const a = await startReady([py!, '-c', script]);
    started.push(a);
    const b = await startReady([py!, '-c', script]);
    started.push(b);
    const twin = await captureHost({
      pids: [b.pids[0]!, a.pids[0]!],
      vmaMode: 'compatible',
      samples: 3,
      intervalMs: 1000,
    });
    assert.deepEqual(
      twin.processes.map((p) => p.pid),
      [a.pids[0], b.pids[0]],
      'mm slot order is start order, whatever the order asked for',
    );
    assert.equal(twin.sampling.samples, 3);
    // Find the mapping: the VMA of 256 pages all present.
    const region = (p: TwinProcess) => {
      let offset = 0;
      for (const v of p.vmas) {
        if (v.pageCount === 256 && v.presentPages === 256) return offset;
        offset += v.presentPages;
      }
      assert.fail(`no 256-page mapping in ${p.pid}: ${JSON.stringify(p.vmas)}`);
    };
    const [pa, pb] = twin.processes as [TwinProcess, TwinProcess];
    const oa = region(pa);
    const ob = region(pb);
    const key = (p: TwinProcess, i: number) => `${p.keys[2 * i]},${p.keys[2 * i + 1]}`;
    for (let i = 0; i < 128; i++) assert.equal(key(pa, oa + i), key(pb, ob + i), `image page ${i}`);
    for (let i = 128; i < 192; i++) assert.equal(key(pa, oa + i), '0,0', `zero page ${i}`);
    // 'img' leads the image pages' fingerprints.
    assert.equal(pa.keys[2 * oa + 1]! >>> 16, 0x696d);
    const mine = pa.regions.filter((r) => r.firstPage >= oa && r.firstPage < oa + 256);
    assert.equal(mine.length, 1, JSON.stringify(pa.regions));
    const r = mine[0]!;
    assert.ok(
      r.firstPage >= oa + 224 && r.firstPage + r.pageCount <= oa + 256,
      `${JSON.stringify(r)} at ${oa}: ${JSON.stringify(pa.vmas)}`,
    );
    assert.ok(r.pageCount >= 20, JSON.stringify(r));
    // 20 writes a second (a little less: the thread's own time), give or take the draws.
    assert.ok(r.writesPerSecond > 8 && r.writesPerSecond < 40, JSON.stringify(r));
  });
});
