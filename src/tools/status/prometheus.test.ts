/**
 * `ksmkit status --prometheus`: the text exposition format checked line by
 * line (HELP and TYPE, names, label escaping, values), global and per-process
 * metrics, and what an old kernel leaves out. Runs anywhere (fixtures).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  escapeHelp,
  escapeLabelValue,
  formatPrometheus,
  formatSampleValue,
  metricName,
} from './prometheus.ts';
import { readSnapshot } from './snapshot.ts';
import { host618, KSM_6_1, KSM_6_18, ksmStat6, makeFixture, parseExposition } from './test-fixtures.ts';

test('a 6.18 host: every line valid; global metrics in base units; counters end in _total', () => {
  const f = host618();
  try {
    const text = formatPrometheus(readSnapshot(f.sources));
    const families = parseExposition(text);
    const value = (name: string, labels: Record<string, string> = {}): number | undefined =>
      families.get(name)?.samples.find((s) => JSON.stringify(s.labels) === JSON.stringify(labels))?.value;
    assert.equal(value('ksm_available'), 1);
    assert.equal(value('ksm_run'), 1);
    assert.equal(value('ksm_sleep_seconds'), 0.02);
    assert.equal(value('ksm_stable_node_chains_prune_seconds'), 2);
    assert.equal(value('ksm_advisor_max_cpu_ratio'), 0.7);
    assert.equal(value('ksm_advisor_mode', { mode: 'none' }), 1);
    assert.equal(value('ksm_advisor_mode', { mode: 'scan-time' }), 0);
    assert.equal(value('ksm_pages_scanned_total'), 123_456);
    assert.equal(families.get('ksm_pages_scanned_total')!.type, 'counter');
    assert.equal(families.get('ksm_full_scans_total')!.type, 'counter');
    assert.equal(families.get('ksm_pages_skipped_total')!.type, 'counter');
    assert.equal(value('ksm_general_profit_bytes'), 2_063_360);
    assert.equal(value('ksm_pages_sharing'), 500);
    assert.equal(value('ksm_processes_unreadable'), 0);
    assert.equal(
      families.get('ksm_pages_sharing')!.help,
      `extra mappings of KSM pages (the saving) (${f.sources.ksmDir}/pages_sharing)`,
    );
    // One family per file (advisor_mode one sample per mode), plus availability and unreadable.
    assert.equal(families.size, 24 + 2 + 6);
  } finally {
    f.cleanup();
  }
});

test('an unsigned long beyond 2^53: exact in the snapshot, a float64 sample in the exposition', () => {
  const f = makeFixture({
    ksm: { ...KSM_6_18, advisor_max_pages_to_scan: '18446744073709551615\n' },
    processes: [],
  });
  try {
    const snapshot = readSnapshot(f.sources);
    const file = snapshot.files.find((x) => x.name === 'advisor_max_pages_to_scan')!;
    assert.equal(file.value, '18446744073709551615');
    const families = parseExposition(formatPrometheus(snapshot));
    assert.equal(families.get('ksm_advisor_max_pages_to_scan')!.samples[0]!.value, 2 ** 64);
  } finally {
    f.cleanup();
  }
});

test('per-process metrics: pid and command labels, booleans as 0/1, for the processes using KSM', () => {
  const f = host618();
  try {
    const families = parseExposition(formatPrometheus(readSnapshot(f.sources)));
    const samples = families.get('ksm_process_profit_bytes')!.samples;
    assert.deepEqual(samples, [
      { labels: { pid: '100', command: 'qemu-system-x86' }, value: 2_050_816 },
      { labels: { pid: '200', command: 'redis-server' }, value: 14_080 },
      { labels: { pid: '400', command: 'scanner' }, value: -3200 },
    ]);
    assert.deepEqual(
      families.get('ksm_process_merge_any')!.samples.map((s) => s.value),
      [1, 0, 0],
    );
    assert.deepEqual(
      families.get('ksm_process_mergeable')!.samples.map((s) => s.value),
      [1, 1, 1],
    );
    for (const name of ['ksm_process_merging_pages', 'ksm_process_rmap_items', 'ksm_process_zero_pages']) {
      assert.equal(families.get(name)!.type, 'gauge');
      assert.equal(families.get(name)!.samples.length, 3);
    }
  } finally {
    f.cleanup();
  }
});

test('label values are escaped: backslash, double quote, newline (a comm may hold any of them)', () => {
  const weird = 'a"b\\c\nd';
  const f = host618([
    {
      pid: 500,
      comm: weird,
      ksmStat: ksmStat6({ rmap: 1, zero: 0, merging: 0, profit: -64, mergeAny: true, mergeable: true }),
      mergingPages: '0\n',
    },
  ]);
  try {
    const text = formatPrometheus(readSnapshot(f.sources));
    assert.ok(text.includes('ksm_process_merge_any{pid="500",command="a\\"b\\\\c\\nd"} 1\n'), text);
    const families = parseExposition(text);
    const sample = families.get('ksm_process_merge_any')!.samples.find((s) => s.labels.pid === '500');
    assert.equal(sample?.labels.command, weird);
  } finally {
    f.cleanup();
  }
  assert.equal(escapeLabelValue('x"y\\z\n'), 'x\\"y\\\\z\\n');
  assert.equal(escapeHelp('a\\b\nc"'), 'a\\\\b\\nc"');
  assert.equal(metricName('ksm_pages-future'), 'ksm_pages_future');
  assert.equal(metricName('9x'), '_9x');
  assert.equal(formatSampleValue(Number.NaN), 'NaN');
  assert.equal(formatSampleValue(Number.POSITIVE_INFINITY), '+Inf');
  assert.equal(formatSampleValue(-3200), '-3200');
});

test('an old kernel: missing files and ksm_stat lines give no sample, never a made-up zero', () => {
  const f = makeFixture({
    ksm: KSM_6_1,
    processes: [{ pid: 10, comm: 'vm', ksmStat: 'ksm_rmap_items 40\n', mergingPages: '32\n' }],
  });
  try {
    const families = parseExposition(formatPrometheus(readSnapshot(f.sources)));
    for (const absent of [
      'ksm_pages_skipped_total',
      'ksm_general_profit_bytes',
      'ksm_smart_scan',
      'ksm_advisor_mode',
      'ksm_zero_pages',
      'ksm_process_profit_bytes',
      'ksm_process_merge_any',
      'ksm_process_zero_pages',
    ]) {
      assert.equal(families.has(absent), false, absent);
    }
    assert.deepEqual(families.get('ksm_process_merging_pages')!.samples, [
      { labels: { pid: '10', command: 'vm' }, value: 32 },
    ]);
    assert.equal(families.get('ksm_full_scans_total')!.samples[0]!.value, 3);
  } finally {
    f.cleanup();
  }
});

test('no KSM at all: ksm_available 0 and nothing else but valid', () => {
  const f = makeFixture({ ksm: null, processes: [] });
  try {
    const text = formatPrometheus(readSnapshot(f.sources));
    const families = parseExposition(text);
    assert.equal(families.get('ksm_available')!.samples[0]!.value, 0);
    assert.equal(families.has('ksm_run'), false);
  } finally {
    f.cleanup();
  }
});

test('a file ksmkit does not know becomes a gauge named after it', () => {
  const f = makeFixture({ ksm: KSM_6_1, extraKsm: { pages_future: '17' }, processes: [] });
  try {
    const families = parseExposition(formatPrometheus(readSnapshot(f.sources)));
    assert.equal(families.get('ksm_pages_future')!.samples[0]!.value, 17);
    assert.match(families.get('ksm_pages_future')!.help, /not described by ksmkit/);
  } finally {
    f.cleanup();
  }
});

test('the validator itself rejects what Prometheus would', () => {
  const bad = [
    'ksm_x 1\n',
    '# HELP ksm_x x\nksm_x 1\n',
    '# TYPE ksm_x gauge\nksm_x 1\n',
    '# HELP ksm_x x\n# TYPE ksm_x counter\nksm_x 1\n',
    '# HELP ksm_x x\n# TYPE ksm_x gauge\nksm_x{a="b"c"} 1\n',
    '# HELP ksm_x x\n# TYPE ksm_x gauge\nksm_x{a="\\q"} 1\n',
    '# HELP ksm_x x\n# TYPE ksm_x gauge\nksm_x one\n',
    '# HELP ksm_x x\n# TYPE ksm_x gauge\nksm_x 1',
  ];
  for (const text of bad) assert.throws(() => parseExposition(text), Error, JSON.stringify(text));
  assert.equal(
    parseExposition('# HELP ksm_x x\n# TYPE ksm_x gauge\nksm_x{a="1"} 1\nksm_x{a="2"} 2\n').size,
    1,
  );
});
