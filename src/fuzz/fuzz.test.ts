import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { CountersSnapshot, OpResult } from '../backend/backend.ts';
import { SimBackend } from '../backend/sim/sim-backend.ts';
import { fuzzCommand } from '../cli/fuzz.ts';
import { parseWorkload, type Workload } from '../workload/index.ts';
import { type BackendPair, checkWorkload, type FuzzEvent, fuzz, sameFinding } from './fuzz.ts';
import { generateWorkload } from './generate.ts';
import { repairWorkload, shrinkWorkload, workloadPages } from './shrink.ts';
import { TEST_SIM_CONFIG } from './test-support.ts';
import { workloadToYaml } from './to-yaml.ts';

/**
 * A simulator that lies: once the workload has forked, pages_sharing is one
 * more than the engine says (while it is not 0). Stands in for a backend
 * that disagrees with the engine on a rare path.
 */
class ForkLiarBackend extends SimBackend {
  private forked = false;

  override async start(settings: ReadonlyArray<readonly [string, string]>): Promise<void> {
    this.forked = false;
    await super.start(settings);
  }

  override async fork(process: string, child: string): Promise<OpResult> {
    this.forked = true;
    return super.fork(process, child);
  }

  override async counters(): Promise<CountersSnapshot> {
    const snapshot = await super.counters();
    const sharing = Number(snapshot.ksm.pages_sharing);
    if (!this.forked || sharing === 0) return snapshot;
    return { ...snapshot, ksm: { ...snapshot.ksm, pages_sharing: sharing + 1 } };
  }
}

/** A backend that refuses to start `failures` times, as a kernel backend does while the machine is busy. */
class BusyBackend extends SimBackend {
  constructor(private failures: number) {
    super(TEST_SIM_CONFIG);
  }

  override async start(settings: ReadonlyArray<readonly [string, string]>): Promise<void> {
    if (this.failures > 0) {
      this.failures--;
      throw new Error('another ksmkit run holds /tmp/ksmkit-kernel.lock');
    }
    await super.start(settings);
  }
}

/** Sim backends are reusable (`start` builds a new host): one pair serves every replay. */
function simPair(kernel: SimBackend = new SimBackend(TEST_SIM_CONFIG)): () => BackendPair {
  const pair = { sim: new SimBackend(TEST_SIM_CONFIG), kernel };
  return () => pair;
}

const tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ksmkit-fuzz-'));
  tempDirs.push(dir);
  return dir;
}
after(async () => {
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

function parsedFile(text: string, file: string, workload: Workload): Workload {
  return parseWorkload(text, file, { baseDir: workload.baseDir });
}

describe('fuzz', () => {
  test('a transient error is retried, not a finding; past the retries it is one', async () => {
    const events: FuzzEvent[] = [];
    const transient = {
      isTransient: (error: { readonly message: string }) => error.message.includes('holds'),
      retryDelayMs: 5,
      maxRetries: 2,
      sleep: async () => undefined,
    };
    const ok = await fuzz({
      seeds: [7],
      makeBackends: simPair(new BusyBackend(2)),
      onProgress: (event) => events.push(event),
      shrink: false,
      transient,
    });
    assert.equal(ok.finding, undefined);
    assert.deepEqual(
      events.filter((e) => e.kind === 'retry').map((e) => (e.kind === 'retry' ? e.attempt : 0)),
      [1, 2],
    );
    const busy = await fuzz({
      seeds: [7],
      makeBackends: simPair(new BusyBackend(3)),
      shrink: false,
      transient,
    });
    assert.match(busy.finding?.check.error?.message ?? '', /holds/);
  });

  test('sim vs sim: 100 seeds, no difference', async () => {
    const events: FuzzEvent[] = [];
    const summary = await fuzz({
      seeds: Array.from({ length: 100 }, (_, i) => i + 1),
      makeBackends: simPair(),
      onProgress: (event) => events.push(event),
    });
    assert.equal(summary.ran, 100);
    assert.deepEqual(summary.differences, []);
    assert.equal(summary.finding, undefined);
    assert.equal(events.filter((event) => event.kind === 'workload').length, 100);
  });

  test('sim vs a sim that lies after a fork: found, shrunk to a few steps, saved, reproducible', async () => {
    const dir = await tempDir();
    const makeBackends = simPair(new ForkLiarBackend(TEST_SIM_CONFIG));
    const summary = await fuzz({
      seeds: Array.from({ length: 50 }, (_, i) => i + 1),
      makeBackends,
      outFile: (seed) => join(dir, 'found', `seed-${seed}.yaml`),
      shrink: { maxAttempts: 250 },
    });
    const finding = summary.finding;
    assert.ok(finding !== undefined && summary.seed !== undefined && summary.file !== undefined);
    assert.ok(summary.differences.length > 0);
    assert.ok(summary.differences.every((d) => d.counter === 'pages_sharing'));
    assert.equal(summary.file, join(dir, 'found', `seed-${summary.seed}.yaml`));

    // Small: a fork and a scan (two passes) suffice, with one region of two equal pages.
    const shrunk = finding.shrunk;
    assert.ok(shrunk.steps.length <= 3, `${shrunk.steps.length} steps:\n${finding.yaml}`);
    assert.ok(shrunk.steps.some((step) => step.op === 'fork'));
    assert.equal(shrunk.processes.length, 1, finding.yaml);
    assert.ok(workloadPages(shrunk) <= 4, finding.yaml);
    assert.ok(finding.shrink !== undefined && !finding.shrink.budgetExhausted);
    assert.ok(finding.reproduced);
    assert.deepEqual(shrunk.ksm[0], { name: 'stable_node_chains_prune_millisecs', value: '0' });

    // The file: a header naming the seed and the difference, then a workload that still differs.
    const text = await readFile(summary.file, 'utf8');
    assert.equal(text, finding.yaml);
    assert.match(text, new RegExp(`^# Found by \`ksmkit fuzz --seed ${summary.seed} --count 1\``));
    assert.match(text, /^# {3}step \d+: pages_sharing: sim \d+, kernel \d+$/m);
    const reread = parsedFile(text, summary.file, shrunk);
    const again = await checkWorkload(reread, makeBackends);
    assert.ok(again.differences.length > 0);
    assert.ok(sameFinding(finding.check, again));
  });

  test('a side that throws is a finding, shrunk to where it still throws', async () => {
    class ThrowsOnMunmap extends SimBackend {
      override async munmap(): Promise<OpResult> {
        throw new Error('munmap exploded at 0x7f0000001000');
      }
    }
    const seeds = Array.from({ length: 100 }, (_, i) => i + 1);
    const seed = seeds.find((s) => generateWorkload(s).steps.some((step) => step.op === 'munmap'));
    assert.ok(seed !== undefined);
    const summary = await fuzz({ seeds: [seed], makeBackends: simPair(new ThrowsOnMunmap(TEST_SIM_CONFIG)) });
    const finding = summary.finding;
    assert.ok(finding !== undefined);
    assert.deepEqual(finding.check.error?.side, 'kernel');
    assert.deepEqual(
      finding.shrunk.steps.map((step) => step.op),
      ['munmap'],
    );
    assert.match(finding.yaml, /kernel threw: Error: munmap exploded/);
  });
});

describe('shrinkWorkload', () => {
  test('stays within its attempt budget and returns a workload that still fails', async () => {
    const workload = generateWorkload(7);
    let calls = 0;
    const result = await shrinkWorkload(
      workload,
      async (candidate) => {
        calls++;
        return candidate.steps.length >= 2;
      },
      { maxAttempts: 5 },
    );
    assert.equal(calls, 5);
    assert.equal(result.attempts, 5);
    assert.ok(result.budgetExhausted);
    assert.ok(result.workload.steps.length >= 2);
  });

  test('shrinks to the minimum of a pure predicate: steps, processes, pages, contents', async () => {
    const seed = [11, 12, 13, 14, 15, 16, 17, 18, 19, 20].find((s) => {
      const w = generateWorkload(s);
      return w.processes.length > 1 && w.steps.length > 10 && w.steps.some((step) => step.op === 'scan');
    });
    assert.ok(seed !== undefined);
    const workload = generateWorkload(seed);
    const predicate = async (candidate: Workload): Promise<boolean> =>
      candidate.steps.some((step) => step.op === 'scan');
    assert.ok(await predicate(workload));
    const result = await shrinkWorkload(workload, predicate);
    assert.ok(!result.budgetExhausted);
    const shrunk = result.workload;
    assert.deepEqual(shrunk.steps, [{ op: 'scan', passes: 1 }]);
    assert.equal(shrunk.processes.length, 1);
    assert.deepEqual(shrunk.processes[0]!.regions, []);
    // Every setting goes but the prune interval, which decides what a wait does.
    assert.deepEqual(
      shrunk.ksm,
      workload.ksm.filter((setting) => setting.name === 'stable_node_chains_prune_millisecs'),
    );
  });

  test('repairWorkload drops steps on processes or regions that are gone and clamps page ranges', () => {
    const workload = parseWorkload(
      [
        'version: 1',
        'name: r',
        'processes:',
        '  - name: a',
        '    regions: [{ name: ram, pages: 4, content: [{ pages: 4, zero: true }] }]',
        'steps:',
        '  - fork: { process: a, child: b }',
        '  - write: { process: b, region: ram, page: 2, pages: 2, content: [{ pages: 1, byte: 1 }, { pages: 1, byte: 2 }] }',
        '  - exit: { process: b }',
        '  - read: { process: a, region: ram, page: 3 }',
      ].join('\n'),
      'r.yaml',
    );
    const withoutFork = repairWorkload({ ...workload, steps: workload.steps.slice(1) });
    assert.deepEqual(
      withoutFork.steps.map((s) => s.op),
      ['read'],
    );
    const smaller = repairWorkload({
      ...workload,
      processes: [
        { ...workload.processes[0]!, regions: [{ ...workload.processes[0]!.regions[0]!, pageCount: 3 }] },
      ],
    });
    const write = smaller.steps[1]!;
    assert.ok(write.op === 'write');
    assert.equal(write.pageIndex, 2);
    assert.equal(write.pageCount, 1);
    assert.deepEqual(write.content, [{ pageCount: 1, spec: { kind: 'byte', value: 1 } }]);
    assert.deepEqual(smaller.steps[3], {
      op: 'read',
      process: 'a',
      region: 'ram',
      pageIndex: 2,
      pageCount: 1,
    });
  });

  test('repairWorkload drops a write to a region left read-only (fork children too) and every step on a region exec dropped', () => {
    const workload = parseWorkload(
      [
        'version: 1',
        'name: r',
        'processes:',
        '  - name: a',
        '    regions: [{ name: ram, pages: 4, content: [{ pages: 4, zero: true }] }]',
        'steps:',
        '  - mprotect: { process: a, region: ram, prot: read }',
        '  - fork: { process: a, child: b }',
        '  - mprotect: { process: a, region: ram, prot: read-write }',
        '  - write: { process: a, region: ram, page: 0, content: { byte: 1 } }',
        '  - exec: { process: b }',
        '  - mmap: { process: b, region: { name: ram, pages: 1, content: [{ pages: 1, zero: true }] } }',
        '  - write: { process: b, region: ram, page: 0, content: { byte: 1 } }',
      ].join('\n'),
      'r.yaml',
    );
    // Without the step that made `a` read-write again, its write would fault: it goes.
    assert.deepEqual(
      repairWorkload({ ...workload, steps: workload.steps.filter((_, i) => i !== 2) }).steps.map((s) => s.op),
      ['mprotect', 'fork', 'exec', 'mmap', 'write'],
    );
    // Without the exec, b's region is the read-only copy: the mmap of that name and the write go.
    assert.deepEqual(
      repairWorkload({ ...workload, steps: workload.steps.filter((_, i) => i !== 4) }).steps.map((s) => s.op),
      ['mprotect', 'fork', 'mprotect', 'write'],
    );
  });
});

describe('workloadToYaml', () => {
  test('writes a header as comments, settings as the text they were, and reads back equal', () => {
    const workload = parseWorkload(
      [
        'version: 1',
        'name: t',
        'ksm: { max_page_sharing: "007", sleep_millisecs: 1e3, run: 0 }',
        'processes: [{ name: "1", memory_merge: true }]',
        'steps:',
        '  - set: { advisor_mode: none, pages_to_scan: 100 }',
        '  - expect: { pages_shared: 0, 1.ksm_merge_any: yes, advisor_mode: none }',
        '  - mmap: { process: "1", region: { name: m, pages: 3, shared: true, thp: true, mlock: true, content: [{ pages: 2, image: x, offset: 4 }, { pages: 1, tag: "5" }] } }',
      ].join('\n'),
      't.yaml',
    );
    const text = workloadToYaml(workload, { header: ['first line', '', 'third'] });
    assert.match(text, /^# first line\n#\n# third\n/);
    assert.deepEqual(parseWorkload(text, 't.yaml'), workload);
  });
});

describe('ksmkit fuzz', () => {
  test('sim vs sim: progress lines, the final line, exit 0', async () => {
    const lines: string[] = [];
    const log = join(await tempDir(), 'fuzz-log.jsonl');
    const status = await fuzzCommand(
      {
        count: 4,
        seed: 500,
        out: await tempDir(),
        backendA: 'sim',
        backendB: 'sim',
        force: false,
        progressEvery: 2,
        log,
      },
      { out: (line) => lines.push(line), err: (line) => lines.push(`err: ${line}`) },
    );
    assert.equal(status, 0);
    assert.equal(lines.length, 3, lines.join('\n'));
    assert.match(lines[0]!, /^fuzz: 2 workloads \(up to seed 501\)/);
    assert.equal(lines[2], 'fuzz: 4 workloads, no difference');
    const records = (await readFile(log, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    assert.equal(records.length, 1);
    assert.deepEqual(
      { ...records[0], date: 'D', kernel: 'K', durationS: 0 },
      {
        date: 'D',
        firstSeed: 500,
        count: 4,
        backends: ['sim', 'sim'],
        kernel: 'K',
        ran: 4,
        consecutiveEqual: 4,
        result: 'equal',
        durationS: 0,
      },
    );
  });
});
