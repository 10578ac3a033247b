/**
 * The probe's outputs from a made-up result (no machine needed): the JSON
 * schema key by key, the write-timing model, the terminal summary, the
 * report, and the "cannot run here" path with its exit status.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EXIT_UNAVAILABLE, probeCommand } from './command.ts';
import { formatHuman } from './human.ts';
import { PROBE_JSON_VERSION, toJson, toWriteTimingModel } from './json.ts';
import { type ProbeResult, probeUnavailable, type RoundResult, totalScore } from './probe.ts';
import { renderReport } from './report.ts';
import { leakRate, score } from './stats.ts';

function round(n: number): RoundResult {
  const truth = [true, false, true, false];
  // One wrong guess was slow (a false positive).
  const guessNs = [2500, 30, 2700, 4000];
  const verdicts = guessNs.map((ns) => ns >= 1000);
  return {
    round: n,
    seed: 5 + n,
    thresholdNs: 1000,
    guessNs,
    truth,
    verdicts,
    calibrationMergedNs: [2600, 2800],
    calibrationPrivateNs: [20, 40],
    score: score(verdicts, truth),
    attackNs: 500e6,
    waitNs: 499e6,
    writesNs: 1e6,
    fullScans: 3,
    pagesSharing: 3,
    victimPid: 100,
    attackerPid: 101,
  };
}

function result(): ProbeResult {
  const rounds = [round(0), round(1)];
  const total = totalScore(rounds);
  return {
    options: {
      pages: 4,
      seed: 5,
      rounds: 2,
      calibrationPairs: 1,
      pagesToScan: 100,
      sleepMillisecs: 20,
      preset: 'default',
    },
    host: { kernel: '6.18.44', cpu: 'Test CPU', cpuCount: 2 },
    settingsInForce: { run: '1', pages_to_scan: '100', sleep_millisecs: '20' },
    otherMergeable: [{ pid: 42, command: 'qemu', mergeAny: true, mergeable: true }],
    rounds,
    score: total,
    leak: leakRate({ guesses: 8, errors: total.falsePositives + total.falseNegatives, attackSeconds: 1 }),
    restored: { ok: true, run: '0', differing: [] },
  };
}

test('--json: the schema, key by key, and figures that agree with each other', () => {
  const json = toJson(result());
  assert.equal(json.version, PROBE_JSON_VERSION);
  assert.deepEqual(Object.keys(json), [
    'version',
    'tool',
    'host',
    'options',
    'settings_in_force',
    'other_mergeable_processes',
    'method',
    'write_ns',
    'classification',
    'time',
    'leak',
    'rounds',
    'restored',
  ]);
  assert.deepEqual(Object.keys(json.options), [
    'pages',
    'seed',
    'rounds',
    'calibration_pairs',
    'preset',
    'pages_to_scan',
    'sleep_millisecs',
  ]);
  assert.deepEqual(Object.keys(json.write_ns), [
    'merged',
    'not_merged',
    'calibration_merged',
    'calibration_private',
  ]);
  assert.deepEqual(Object.keys(json.write_ns.merged!), [
    'count',
    'min_ns',
    'max_ns',
    'mean_ns',
    'median_ns',
    'percentiles_ns',
  ]);
  assert.deepEqual(Object.keys(json.classification), [
    'true_positives',
    'false_positives',
    'true_negatives',
    'false_negatives',
    'accuracy',
    'true_positive_rate',
    'false_positive_rate',
    'error_rate',
  ]);
  assert.deepEqual(Object.keys(json.leak), [
    'guesses',
    'guesses_per_second',
    'bits_per_guess',
    'bits_per_second',
    'error_rate_upper_95',
    'bits_per_second_lower_95',
  ]);
  assert.deepEqual(Object.keys(json.rounds[0]!), [
    'round',
    'seed',
    'threshold_ns',
    'classification',
    'attack_seconds',
    'wait_seconds',
    'writes_seconds',
    'full_scans',
    'pages_sharing',
  ]);
  // Two rounds of 4 guesses: 2 right guesses each (merged), 2 wrong each.
  assert.equal(json.write_ns.merged!.count, 4);
  assert.equal(json.write_ns.not_merged!.count, 4);
  assert.equal(json.write_ns.not_merged!.max_ns, 4000);
  assert.equal(json.classification.false_positives, 2);
  assert.equal(json.classification.accuracy, 6 / 8);
  assert.equal(json.time.attack_seconds, 1);
  assert.equal(json.leak.guesses, 8);
  assert.deepEqual(json.other_mergeable_processes, [{ pid: 42, command: 'qemu' }]);
  // It is plain data: it survives a round trip.
  assert.deepEqual(JSON.parse(JSON.stringify(json)), json);
});

test('the write-timing model: per access fault kind, guesses by truth and calibration pages together', () => {
  const model = toWriteTimingModel(result(), '2026-11-23')!;
  assert.deepEqual(Object.keys(model.faults), ['none', 'cow-ksm']);
  assert.equal(model.faults.none.count, 4 + 4);
  assert.equal(model.faults['cow-ksm'].count, 4 + 4);
  assert.equal(model.faults.none.min_ns, 20);
  assert.equal(model.faults['cow-ksm'].min_ns, 2500);
  assert.deepEqual(model.percentiles, [1, 5, 10, 25, 50, 75, 90, 95, 99]);
  assert.equal(model.ksmd.pages_to_scan, 100);
  assert.equal(model.attack.threshold_ns, 1000);
});

test('the terminal summary names every figure the issue asks for', () => {
  const text = formatHuman(result(), { color: false }).join('\n');
  for (const needle of [
    'merged (right guesses)',
    'not merged (wrong guesses)',
    'accuracy 75.0%',
    'true positive rate 100.00%',
    'false positive rate 50.0%',
    'attack time: 1.00 s',
    'guesses/s',
    'bits/s',
    'pid 42 (qemu) is mergeable too',
    "ksmd's settings restored (run 0)",
  ]) {
    assert.ok(text.includes(needle), `missing ${JSON.stringify(needle)} in:\n${text}`);
  }
});

test('the report is one self-contained page with both histograms and the threshold', () => {
  const html = renderReport({
    result: result(),
    command: 'ksmkit probe',
    generatedAt: '2026-11-23T12:00:00Z',
  });
  assert.equal((html.match(/viewBox="0 0 860 300"/g) ?? []).length, 2, 'two plots');
  assert.ok((html.match(/<rect/g) ?? []).length >= 4, 'bars drawn');
  assert.ok(html.includes('merged (right guess)'));
  assert.ok(html.includes('not merged (wrong guess)'));
  assert.ok(!/<script|https?:\/\//.test(html), 'no script, no URL');
});

test('not root: the reason says so and why', () => {
  const reason = probeUnavailable('/nonexistent/ksmkit-probe', 1000);
  assert.ok(reason !== undefined);
  if (process.platform === 'linux' && reason.includes('KSM') === false) assert.match(reason, /needs root/);
});

test('cannot run here: exit 2, the reason on stderr, nothing on stdout', async () => {
  const out: string[] = [];
  const err: string[] = [];
  const status = await probeCommand(
    {
      pages: 8,
      seed: 1,
      rounds: 1,
      calibrationPairs: 2,
      pagesToScan: 100,
      sleepMillisecs: 20,
      preset: 'default',
      helperPath: '/nonexistent/ksmkit-probe',
      json: true,
      quiet: true,
    },
    {
      out: (l) => out.push(l),
      err: (l) => err.push(l),
      color: false,
      command: 'test',
      now: () => new Date(0),
    },
  );
  assert.equal(status, EXIT_UNAVAILABLE);
  assert.deepEqual(out, []);
  assert.equal(err.length, 1);
  assert.match(err[0]!, /^ksmkit probe: cannot run here: /);
});
