/**
 * Reads in scenarios (`read_every`, `reads_per_s`): how they parse and fail,
 * what they do on the engine (nothing to a merged page with no policy; under
 * vusion each read of a trapped page copies it, so hot pages stay unshared),
 * the fast-forward with reads and under trust domains, and reads on the real
 * kernel.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PolicyName } from '../policy/policy.ts';
import { kernelSkip } from '../testing/kernel-required.ts';
import { SHIPPED_CALIBRATION } from './cost.ts';
import { type EngineRun, runOnEngine, type Sample } from './engine-run.ts';
import { kernelRunUnavailable, runOnKernel } from './kernel-run.ts';
import { parseScenario, type Scenario, ScenarioError } from './scenario.ts';

const figures = SHIPPED_CALIBRATION.figures;

/**
 * 4 guests of 4 MiB (1024 pages): the first 256 pages of an image read (HOT
 * is replaced), the image's other 512 pages never touched, 256 pages of their own.
 */
const HOT = `
version: 1
name: hot
host: { memory: 64MiB }
ksm: { pages_to_scan: 1000 }
run: { duration: 30s, sample_every: 1s }
groups:
  - name: g
    count: 4
    memory: 4MiB
    content:
      - { share: 0.25, image: os HOT }
      - { share: 0.5, image: os, offset: 256 }
      - { share: 0.25, unique: true }
`;

function hot(reads: string): Scenario {
  return parseScenario(HOT.replace(' HOT', reads), 'hot.yaml');
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

/** Guest memory less what is in use at the end: what the host really keeps (see PolicyRow.savingBytes). */
function framesSaved(run: EngineRun): number {
  const last = run.samples.at(-1)!;
  return last.guestMemoryBytes - last.memoryInUseBytes;
}

function run(scenario: Scenario, policy: PolicyName, fastForward?: boolean): EngineRun {
  return runOnEngine(scenario, {
    figures,
    policy: { name: policy },
    ...(fastForward === undefined ? {} : { fastForward }),
  });
}

const MERGE_COUNTERS = [
  'pages_shared',
  'pages_sharing',
  'ksm_zero_pages',
  'rmap_items',
  'general_profit',
  'memoryInUseBytes',
] as const;

function mergeCounters(s: Sample): Record<string, number> {
  return Object.fromEntries(MERGE_COUNTERS.map((k) => [k, s[k]]));
}

describe('reads in scenario files', () => {
  it('read_every is per page, reads_per_s per guest; none given: no reads', () => {
    const s = parseScenario(
      HOT.replace(' HOT', ', read_every: 2s').replace(
        '{ share: 0.25, unique: true }',
        '{ share: 0.25, unique: true, reads_per_s: 7.5 }',
      ),
      'hot.yaml',
    );
    assert.deepEqual(
      s.groups[0]!.content.map((r) => [r.pageCount, r.readsPerSecond]),
      [
        [256, 128],
        [512, 0],
        [256, 7.5],
      ],
    );
    assert.ok(s.groups[0]!.content.every((r) => r.writesPerSecond === 0));
  });

  it('names every bad read pattern by file, line and key', () => {
    const issues = issuesOf(`version: 1
name: bad
host: { memory: 1GiB }
run: { duration: 10min }
groups:
  - name: g
    memory: 16MiB
    content:
      - { share: 0.25, image: a, read_every: 10s, reads_per_s: 3 }
      - { share: 0.25, image: b, read_every: 0s }
      - { share: 0.25, image: c, reads_per_s: -2 }
      - { share: 0.25, image: d, read_every: often }
`);
    assert.deepEqual(issues.map((l) => l.replace(/^s\.yaml:(\d+):\d+: /, '$1: ')).sort(), [
      '10: groups.0.content.1.read_every: expected a duration > 0',
      '11: groups.0.content.2.reads_per_s: expected a number >= 0 (pages per second per guest), got -2',
      '12: groups.0.content.3.read_every: expected a duration such as 90s, 45min, 1h30min or a number of seconds, got "often"',
      '9: groups.0.content.0.reads_per_s: give either read_every (per page) or reads_per_s (per guest), not both',
    ]);
  });
});

describe('reads on the engine', () => {
  const quiet = hot('');
  const read = hot(', read_every: 1s');
  const perSecond = 4 * 256;

  it('with no policy a read leaves merged pages merged: the same counters, and the run still fast-forwards', () => {
    const without = run(quiet, 'none');
    const withReads = run(read, 'none');
    const last = withReads.samples.at(-1)!;
    assert.deepEqual(mergeCounters(last), mergeCounters(without.samples.at(-1)!));
    assert.equal(last.cowBreaks, 0);
    assert.ok(withReads.steadyAtMs !== undefined, 'reads that change nothing do not stop the fast-forward');
    // 1024 reads a second for 30 s, the extrapolated part included.
    assert.ok(Math.abs(last.guestReads - 30 * perSecond) <= 4, `${last.guestReads} reads`);
    assert.equal(without.samples.at(-1)!.guestReads, 0);
  });

  it('under vusion every read of a trapped page copies it: the hot pages stay mostly unshared', () => {
    const without = run(quiet, 'vusion');
    const withReads = run(read, 'vusion');
    const last = withReads.samples.at(-1)!;
    assert.equal(
      withReads.steadyAtMs,
      undefined,
      'reads that unmerge pages keep the run from fast-forwarding',
    );
    assert.ok(last.cowBreaks > 1000, `${last.cowBreaks} copies of merged pages`);
    assert.equal(framesSaved(without), framesSaved(run(quiet, 'none')), 'untouched, vusion keeps it all');
    // The hot run is 256 of the 768 image pages: at most a third of the image's saving can go.
    const lost = framesSaved(without) - framesSaved(withReads);
    const imageSaving = 3 * 768 * 4096;
    assert.ok(lost > imageSaving / 6 && lost <= imageSaving / 3, `lost ${lost} of ${imageSaving}`);
  });

  it('reads of pages nothing can merge do not stop the fast-forward, even under vusion', () => {
    const s = parseScenario(
      HOT.replace(' HOT', '').replace(
        '{ share: 0.25, unique: true }',
        '{ share: 0.25, unique: true, read_every: 1s }',
      ),
      'hot.yaml',
    );
    const r = run(s, 'vusion');
    assert.ok(r.steadyAtMs !== undefined);
    assert.deepEqual(mergeCounters(r.samples.at(-1)!), mergeCounters(run(quiet, 'vusion').samples.at(-1)!));
  });

  it('adding reads moves none of the writes (the reads draw from a stream of their own)', () => {
    const writes = parseScenario(HOT.replace(' HOT', ', writes_per_s: 5'), 'w.yaml');
    const both = parseScenario(
      HOT.replace(' HOT', ', writes_per_s: 5').replace(
        '{ share: 0.25, unique: true }',
        '{ share: 0.25, unique: true, read_every: 1s }',
      ),
      'wr.yaml',
    );
    const a = run(writes, 'none').samples;
    const b = run(both, 'none').samples;
    assert.deepEqual(
      b.map((s) => ({ ...s, guestReads: 0 })),
      a,
    );
  });
});

describe('the fast-forward under trust domains', () => {
  // One guest per tenant, both from one image: every image page's only twin is in the other domain.
  const apart = parseScenario(
    `version: 1
name: apart
host: { memory: 64MiB }
ksm: { pages_to_scan: 1000 }
run: { duration: 30s, sample_every: 1s }
groups:
  - { name: a, tenant: alpha, memory: 4MiB, content: [{ share: 0.5, image: os }, { share: 0.5, zero: true }] }
  - { name: b, tenant: beta, memory: 4MiB, content: [{ share: 0.5, image: os }, { share: 0.5, zero: true }] }
`,
    'apart.yaml',
  );

  it('ends once nothing is left to merge within a domain, with the counters of a run to the end', () => {
    const fast = run(apart, 'trust-domains');
    const full = run(apart, 'trust-domains', false);
    assert.ok(fast.steadyAtMs !== undefined && fast.steadyAtMs < 10_000, `steady at ${fast.steadyAtMs}`);
    const last = full.samples.at(-1)!;
    assert.deepEqual(mergeCounters(fast.samples.at(-1)!), mergeCounters(last));
    // Only the zero pages merge, within each guest: 512 mappings onto 2 KSM pages per domain.
    assert.equal(last.pages_shared, 4);
    assert.equal(last.pages_sharing, 1020);
  });
});

describe('reads on the real kernel', () => {
  const reason = kernelRunUnavailable();
  it('reads pages through the agent; merged pages stay merged, as on the engine', {
    skip: kernelSkip(reason === undefined ? false : `kernel backend unavailable: ${reason}`),
  }, async () => {
    const s = parseScenario(
      HOT.replace(' HOT', ', read_every: 2s')
        .replace('count: 4', 'count: 2')
        .replace('duration: 30s, sample_every: 1s', 'duration: 4s, sample_every: 500ms'),
      'hot.yaml',
    );
    const kernel = await runOnKernel(s);
    const k = kernel.samples.at(-1)!;
    const e = run(s, 'none').samples.at(-1)!;
    // 2 guests x 128 reads a second for 4 s, drawn between samples.
    assert.ok(k.guestReads >= 2 * 128 * 3, `${k.guestReads} reads`);
    assert.equal(k.pages_shared, e.pages_shared);
    assert.equal(k.pages_sharing, e.pages_sharing);
  });
});
