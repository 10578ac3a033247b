/**
 * `ksmkit simulate`: scenario files and their errors, a small scenario's
 * summary worked out by hand, sweeps, JSON lines, the HTML report, every
 * built-in scenario parsing, the calibration's arithmetic and its engine
 * side. The engine against the real kernel: cost-fidelity.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { simulateCommand } from '../cli/simulate.ts';
import { engineCounts, type PassMeasure, solveFigures } from './calibrate.ts';
import { SHIPPED_CALIBRATION } from './cost.ts';
import { runOnEngine } from './engine-run.ts';
import { sweepTable } from './format.ts';
import { builtIn, builtInNames } from './library.ts';
import { renderReport } from './report.ts';
import { parseScenario, type Scenario, ScenarioError, scaleScenario } from './scenario.ts';
import { summarize } from './summary.ts';
import { expandRuns, parseSetOption, runSweep } from './sweep.ts';
import { SMALL_SCENARIO } from './test-support.ts';
import { parseDurationMs, parseSizeBytes } from './units.ts';

const figures = SHIPPED_CALIBRATION.figures;

function small(extra = ''): Scenario {
  return parseScenario(SMALL_SCENARIO + extra, 'small.yaml');
}

function issuesOf(text: string): string[] {
  try {
    parseScenario(text, 's.yaml');
  } catch (e) {
    assert.ok(e instanceof ScenarioError, `expected a ScenarioError, got ${String(e)}`);
    return e.message.split('\n');
  }
  assert.fail('the scenario was accepted');
}

describe('units', () => {
  it('parses sizes and durations as scenario files spell them', () => {
    assert.equal(parseSizeBytes('16GiB'), 16 * 2 ** 30);
    assert.equal(parseSizeBytes('512M'), 512 * 2 ** 20);
    assert.equal(parseSizeBytes('4096'), 4096);
    assert.equal(parseSizeBytes('12 parsecs'), undefined);
    assert.equal(parseDurationMs('1h30min'), 5_400_000);
    assert.equal(parseDurationMs('250ms'), 250);
    assert.equal(parseDurationMs('90'), 90_000);
    assert.equal(parseDurationMs('soon'), undefined);
  });
});

describe('scenario files', () => {
  it('reads the small scenario: 2048 pages a guest, runs sized by share', () => {
    const s = small();
    assert.equal(s.groups[0]!.pageCount, 2048);
    assert.deepEqual(
      s.groups[0]!.content.map((r) => [r.source.kind, r.pageCount]),
      [
        ['image', 1024],
        ['zero', 512],
        ['unique', 512],
      ],
    );
    assert.equal(s.durationMs, 8000);
    assert.equal(s.sampleEveryMs, 100);
  });

  it('names the file, line, column and key of every problem', () => {
    const issues = issuesOf(`version: 1
name: bad
host: { memory: lots }
run: { duration: 10min }
groups:
  - name: g
    memory: 1GiB
    mergable: true
    content:
      - { share: 0.5, image: a, zero: true }
      - { share: 0.4, unique: true, rewrite_every: 1min, writes_per_s: 3 }
`);
    assert.ok(
      issues.some((l) => /^s\.yaml:3:\d+: host\.memory: expected a size/.test(l)),
      issues.join('\n'),
    );
    assert.ok(
      issues.some((l) => /^s\.yaml:8:\d+: groups\.0\.mergable: unknown key; allowed: name, count/.test(l)),
    );
    assert.ok(
      issues.some((l) => /groups\.0\.content\.0: more than one content given \(zero, image\)/.test(l)),
    );
    assert.ok(issues.some((l) => /groups\.0\.content\.1\.writes_per_s: give either rewrite_every/.test(l)));
  });

  it('refuses shares that do not add up, and sysfs settings that do not exist', () => {
    const issues = issuesOf(`version: 1
name: bad
host: { memory: 1GiB }
ksm: { pages_to_scan: 100, pages_to_scna: 5 }
run: { duration: 10min }
groups:
  - { name: g, memory: 16MiB, content: [{ share: 0.5, zero: true }, { share: 0.3, unique: true }] }
`);
    assert.ok(
      issues.some((l) => /ksm\.pages_to_scna: unknown key; allowed: run, pages_to_scan/.test(l)),
      issues.join('\n'),
    );
    const shares = issuesOf(`version: 1
name: bad
host: { memory: 1GiB }
run: { duration: 10min }
groups:
  - { name: g, memory: 16MiB, content: [{ share: 0.5, zero: true }, { share: 0.3, unique: true }] }
`);
    assert.deepEqual(shares, [
      's.yaml:6:40: groups.0.content: the shares add up to 0.8; expected 1 (shares divide the memory that runs in pages or size leave)',
    ]);
  });

  it('ships every built-in scenario valid, with its assumptions written down', () => {
    const names = builtInNames();
    for (const name of ['kvm-clones', 'containers', 'zero-heavy', 'churn', 'redhat-winxp', 'meta-64g'])
      assert.ok(names.includes(name), `built-in ${name} missing from ${names.join(', ')}`);
    for (const name of names) {
      const s = builtIn(name);
      assert.ok(s.assumptions.length > 0, `${name} states no assumption`);
    }
    assert.ok(
      builtIn('kvm-clones').groups.reduce((n, g) => n + g.count * g.pageCount * 4096, 0) >= 16 * 2 ** 30,
    );
    for (const name of ['redhat-winxp', 'meta-64g']) {
      const p = builtIn(name).published;
      assert.ok(
        p !== undefined && p.claims.length > 0 && p.cannotCheck.length > 0,
        `${name}: published figure`,
      );
    }
  });

  it('scales the number of guests and the host together', () => {
    const s = scaleScenario(builtIn('kvm-clones'), 4);
    assert.equal(s.groups[0]!.count, 64);
    assert.equal(s.host.memoryBytes, 48 * 2 ** 30);
  });
});

describe('a small scenario on the engine', () => {
  const run = runOnEngine(small(), { figures });
  const summary = summarize(small(), run.samples, figures, run.steadyAtMs);

  it('ends with the counters worked out by hand', () => {
    const f = summary.final;
    // The image: 1024 KSM pages mapped by all 4 guests.
    // The zero pages: 2048 mappings in KSM pages of at most max_page_sharing (256): 8 of them.
    assert.equal(f.pages_shared, 1024 + 8);
    assert.equal(f.pages_sharing, 3 * 1024 + (2048 - 8));
    assert.equal(f.pages_unshared + f.pages_volatile, 2048);
    assert.equal(f.rmap_items, 8192);
    assert.equal(summary.savingBytes, (3 * 1024 + 2040) * 4096 - 8192 * 64);
    assert.equal(f.general_profit, summary.savingBytes);
  });

  it('merges during the second pass, at the default pacing', () => {
    // A pass is 8192 pages at 100 pages a batch: 82 batches, one every 24 ms (a 20 ms sleep is
    // 5 jiffies, and the timer fires on the 6th tick): 1.97 s. Merging happens in the second pass.
    const t50 = summary.timeToMs[50]!;
    const t99 = summary.timeToMs[99]!;
    assert.ok(t50 > 1968 && t50 < 3936, `50% at ${t50} ms`);
    assert.ok(t99 > t50 && t99 < 3936, `99% at ${t99} ms`);
    assert.ok(summary.ksmdCpuMs > 0 && summary.ksmdCpuPercent < 10, `CPU ${summary.ksmdCpuPercent}%`);
  });

  it('is deterministic', () => {
    const again = runOnEngine(small(), { figures });
    assert.deepEqual(again.samples.at(-1), run.samples.at(-1));
  });

  it('fast-forwards a steady state to the same final saving and ksmd CPU', () => {
    // Smart scan's skipping builds up over about 9 passes after merging: the
    // fast-forward waits for it and averages a whole skip cycle, so the CPU it
    // extrapolates is the CPU a full simulation spends (it once took the first
    // quiet pass, which visits every page, and overstated it by two thirds).
    for (const smartScan of [0, 1]) {
      const longer = parseScenario(
        SMALL_SCENARIO.replace('duration: 8s', 'duration: 2min').replace(
          'sample_every: 100ms',
          'sample_every: 1s',
        ) + `ksm: { smart_scan: ${smartScan} }\n`,
        'longer.yaml',
      );
      const fast = runOnEngine(longer, { figures });
      assert.ok(fast.steadyAtMs !== undefined && fast.steadyAtMs < 60_000, `steady at ${fast.steadyAtMs}`);
      // Without smart scan one quiet pass is enough; with it, a settled cycle of 9 passes more.
      if (smartScan === 0) assert.ok(fast.steadyAtMs < 8000, `steady at ${fast.steadyAtMs}`);
      else assert.ok(fast.steadyAtMs > 9 * 1968, `steady at ${fast.steadyAtMs}`);
      const full = runOnEngine(longer, { figures, fastForward: false });
      assert.equal(full.steadyAtMs, undefined);
      assert.equal(full.samples.length, fast.samples.length);
      const a = full.samples.at(-1)!;
      const b = fast.samples.at(-1)!;
      for (const k of [
        'pages_shared',
        'pages_sharing',
        'ksm_zero_pages',
        'rmap_items',
        'general_profit',
      ] as const)
        assert.equal(b[k], a[k], k);
      const cpuFull = summarize(longer, full.samples, figures, full.steadyAtMs).ksmdCpuMs;
      const cpuFast = summarize(longer, fast.samples, figures, fast.steadyAtMs).ksmdCpuMs;
      assert.ok(
        Math.abs(cpuFast - cpuFull) <= 0.03 * cpuFull,
        `smart_scan ${smartScan}: ksmd CPU ${cpuFast} ms fast-forwarded, ${cpuFull} ms simulated`,
      );
    }
  });

  it('gives the same samples with page contents held as bytes', () => {
    const scenario = small(`  - name: busy
    count: 2
    memory: 2MiB
    content:
      - { share: 0.5, image: base, writes_per_s: 20 }
      - { share: 0.5, unique: true, rewrite_every: 2s }
`);
    const fingerprints = runOnEngine(scenario, { figures });
    const bytes = runOnEngine(scenario, { figures, contentMode: 'bytes' });
    assert.deepEqual(bytes.samples, fingerprints.samples);
    assert.ok(fingerprints.samples.at(-1)!.cowBreaks > 0);
  });

  it('counts COW breaks when merged pages are written', () => {
    const churn = parseScenario(
      `version: 1
name: churn
host: { memory: 64MiB }
run: { duration: 20s, sample_every: 1s }
groups:
  - { name: g, count: 2, memory: 4MiB, content: [{ share: 1, image: a, writes_per_s: 20 }] }
`,
      'churn.yaml',
    );
    const r = runOnEngine(churn, { figures });
    const last = r.samples.at(-1)!;
    assert.equal(r.steadyAtMs, undefined, 'writes that unmerge pages keep the run from fast-forwarding');
    assert.ok(last.guestWrites >= 795 && last.guestWrites <= 800, `${last.guestWrites} writes`);
    assert.ok(last.cowBreaks > 0 && last.cowBreaks < last.guestWrites);
  });
});

describe('sweeps', () => {
  it('parses --set and expands every combination', () => {
    assert.deepEqual(parseSetOption('pages_to_scan=100,1000'), {
      name: 'pages_to_scan',
      values: ['100', '1000'],
    });
    assert.throws(() => parseSetOption('run=1'), /not a setting/);
    assert.throws(() => parseSetOption('pages_to_scan'), /expected NAME=VALUE/);
    const runs = expandRuns(
      [
        parseSetOption('pages_to_scan=100,1000'),
        parseSetOption('sleep_millisecs=10,20'),
        parseSetOption('smart_scan=0'),
      ],
      true,
    );
    assert.deepEqual(
      runs.map((r) => r.label),
      [
        'pages_to_scan=100 sleep_millisecs=10',
        'pages_to_scan=100 sleep_millisecs=20',
        'pages_to_scan=1000 sleep_millisecs=10',
        'pages_to_scan=1000 sleep_millisecs=20',
        'advisor_mode=scan-time',
      ],
    );
    assert.ok(runs.every((r) => r.settings.some((s) => s.name === 'smart_scan' && s.value === '0')));
  });

  it('prints one row per swept value: saving, time to 90%, ksmd CPU', () => {
    const results = runSweep(small(), expandRuns([parseSetOption('pages_to_scan=100,1000')], false), figures);
    const table = sweepTable(results, false);
    const lines = table.split('\n').filter((l) => /pages_to_scan=/.test(l));
    assert.equal(lines.length, 2);
    assert.match(table, /saved.*to 90%.*ksmd CPU avg/);
    const [slow, fast] = results.map((r) => r.summary);
    assert.equal(slow!.savingBytes, fast!.savingBytes);
    assert.ok(fast!.timeToMs[90]! < slow!.timeToMs[90]!, 'more pages per batch converge sooner');
    assert.ok(fast!.peakCpuPercent > slow!.peakCpuPercent, 'and cost more CPU');
  });
});

describe('ksmkit simulate', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ksmkit-simulate-'));
  const file = join(dir, 'small.yaml');
  const write = async (text: string) => (await import('node:fs/promises')).writeFile(file, text);

  it('prints one JSON object per sample, then a summary per run', async () => {
    await write(SMALL_SCENARIO);
    const out: string[] = [];
    const code = await simulateCommand(
      file,
      { json: true, progress: false, set: ['pages_to_scan=100,200'] },
      { out: (l) => out.push(l), err: () => undefined },
    );
    assert.equal(code, 0);
    const objects = out.map((l) => JSON.parse(l) as { type: string; run: string; tMs?: number });
    const samples = objects.filter((o) => o.type === 'sample');
    assert.equal(samples.length, 2 * 81, 'a sample every 100 ms from 0 to 8 s, for each run');
    assert.deepEqual(
      objects.filter((o) => o.type === 'summary').map((o) => o.run),
      ['pages_to_scan=100', 'pages_to_scan=200'],
    );
    assert.ok(
      'pages_sharing' in samples[0]! && 'general_profit' in samples[0]! && 'ksmdCpuPercent' in samples[0]!,
    );
  });

  it('writes a self-contained HTML report with plots', async () => {
    await write(SMALL_SCENARIO);
    const report = join(dir, 'report.html');
    const out: string[] = [];
    const code = await simulateCommand(
      file,
      { progress: false, report, color: false },
      { out: (l) => out.push(l), err: () => undefined },
    );
    assert.equal(code, 0);
    const html = readFileSync(report, 'utf8');
    assert.match(html, /^<!doctype html>/);
    assert.ok((html.match(/<svg/g) ?? []).length >= 4, 'saving, CPU, memory and counter plots');
    assert.doesNotMatch(html, /https?:\/\//, 'no external URL');
    assert.doesNotMatch(html, /<script|<link|src=/, 'nothing loaded from elsewhere');
    assert.ok(out.some((l) => /time to 90% of the saving/.test(l)));
  });

  it('exits 2 with the problems of an invalid scenario or option', async () => {
    await write('version: 2\nname: x\n');
    const err: string[] = [];
    assert.equal(
      await simulateCommand(file, { progress: false }, { out: () => undefined, err: (l) => err.push(l) }),
      2,
    );
    assert.ok(
      err.some((l) => l.includes('version: expected 1')),
      err.join('\n'),
    );
    await write(SMALL_SCENARIO);
    const err2: string[] = [];
    assert.equal(
      await simulateCommand(
        file,
        { progress: false, set: ['pages_to_scan=fast'] },
        { out: () => undefined, err: (l) => err2.push(l) },
      ),
      2,
    );
    assert.ok(
      err2.some((l) => /EINVAL: the kernel refuses pages_to_scan="fast"/.test(l)),
      err2.join('\n'),
    );
    rmSync(dir, { recursive: true, force: true });
  });

  it('renders a report for a sweep with the published figure checked', () => {
    const scenario = builtIn('meta-64g');
    const tiny = { ...scaleScenario(scenario, 0.05), durationMs: 120_000, sampleEveryMs: 10_000 };
    const results = runSweep(tiny, expandRuns([], false), figures);
    const html = renderReport({
      scenario: tiny,
      results,
      calibration: SHIPPED_CALIBRATION,
      command: 'ksmkit simulate meta-64g',
      generatedAt: '2026-01-01 00:00:00',
    });
    assert.match(html, /The published figure/);
    assert.match(html, /about 19\.5 GiB deduplicated/);
    assert.match(html, /cannot agree or disagree/);
  });
});

describe('calibration', () => {
  it('solves the figures one pass at a time', () => {
    const pass = (p: Omit<PassMeasure, 'cpuNs'>, cpuNs: number): PassMeasure => ({ ...p, cpuNs });
    const zero = { checksums: 0, compares: 0, stableCompares: 0, merges: 0 };
    const f = solveFigures({
      passes: [
        pass({ name: 'S', visits: 1000, ...zero }, 300 * 1000),
        pass({ name: 'V', visits: 1000, ...zero, checksums: 1000 }, (300 + 700) * 1000),
        pass(
          { name: 'U', visits: 1000, ...zero, checksums: 1000, compares: 20_000 },
          1000 * 1000 + 20_000 * 180,
        ),
        pass(
          { name: 'T', visits: 1500, ...zero, checksums: 1000, compares: 20_000, stableCompares: 15_000 },
          1000 * 1000 + 500 * 300 + 20_000 * 180 + 15_000 * 25,
        ),
        pass(
          { name: 'M', visits: 1000, checksums: 1000, compares: 1, stableCompares: 999, merges: 1000 },
          1000 * 1000 + 180 + 999 * 25 + 1000 * 1500,
        ),
      ],
      batch: { cpuNs: 100 * 25_000 + 1000 * 300, batches: 100, visits: 1000 },
      cow: { cowMs: 10 + 2.5, plainMs: 10, pages: 1000 },
    });
    assert.deepEqual(Object.fromEntries(Object.entries(f).map(([k, v]) => [k, Math.round(v)])), {
      batchNs: 25_000,
      visitPageNs: 300,
      checksumNs: 700,
      compareNs: 180,
      stableCompareNs: 25,
      mergeNs: 1500,
      cowBreakNs: 2500,
    });
  });

  it('the engine side of the calibration: each measured pass does the work its figure is solved from', async () => {
    const counts = await engineCounts(512);
    const get = (name: PassMeasure['name']) => counts.find((p) => p.name === name)!;
    assert.deepEqual(
      counts.map((p) => p.name),
      ['U', 'V', 'T', 'S', 'M'],
    );
    const { U, V, T, S, M } = { U: get('U'), V: get('V'), T: get('T'), S: get('S'), M: get('M') };
    // S: visits of KSM pages only; V: visits and checksums only.
    assert.deepEqual([S.visits, S.checksums, S.compares, S.stableCompares, S.merges], [1024, 0, 0, 0, 0]);
    assert.deepEqual([V.visits, V.checksums, V.compares, V.stableCompares, V.merges], [2048, 2048, 0, 0, 0]);
    // U: unstable steps and no stable ones (no KSM page yet); T adds stable steps over the pairs' tree.
    assert.ok(U.compares > 2048 && U.stableCompares === 0 && U.merges === 0);
    assert.ok(T.stableCompares > 2048 && T.compares === U.compares && T.merges === 0);
    assert.equal(M.merges, 2048);
  });
});
