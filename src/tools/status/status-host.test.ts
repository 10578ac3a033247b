/**
 * `ksmkit status` on this machine's real /sys/kernel/mm/ksm and /proc: every
 * file shown, JSON and Prometheus that match the files, the root note for a
 * user who cannot read other processes, and, with ksmd run under SysfsGuard
 * (which restores every setting), a process started by `ksmkit exec` whose
 * pages really merge. Skips with the reason when not Linux, no KSM, not root.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeKsmOrThrow } from '../../backend/kernel/ksm-sysfs.ts';
import { kernelSkip } from '../../testing/kernel-required.ts';
import { formatPrometheus } from './prometheus.ts';
import { readSnapshot } from './snapshot.ts';
import {
  acquireGuard,
  ksmSkip,
  mergeSkip,
  nobodySkip,
  parseExposition,
  rootSkip,
  runCli,
  startFiller,
} from './test-fixtures.ts';

const KSM = '/sys/kernel/mm/ksm';

/**
 * Runs `fn` and returns the settings among `names` that did not change while
 * it ran, with their values: another test or tool on this machine may be
 * driving ksmd meanwhile, and only a value that held still can be compared.
 */
async function heldStill<T>(
  names: readonly string[],
  fn: () => Promise<T>,
): Promise<[T, Map<string, string>]> {
  const read = (): string[] => names.map((n) => readFileSync(`${KSM}/${n}`, 'latin1').trim());
  const before = read();
  const result = await fn();
  const after = read();
  return [
    result,
    new Map(names.flatMap((n, i) => (before[i] === after[i] ? [[n, after[i]!] as const] : []))),
  ];
}

const SETTINGS = ['run', 'pages_to_scan', 'sleep_millisecs', 'max_page_sharing', 'merge_across_nodes'];

test('status on this host: every file of /sys/kernel/mm/ksm, with its value', {
  skip: kernelSkip(ksmSkip()),
}, async () => {
  const [r, values] = await heldStill(SETTINGS, () => runCli(['status']));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^KSM on Linux \S+: (stopped|running|unmerging)/);
  for (const name of readdirSync(KSM)) {
    assert.match(r.stdout, new RegExp(`^ {2}${name} +\\S`, 'm'), name);
  }
  const run = values.get('run');
  if (run !== undefined) {
    assert.match(r.stdout, new RegExp(`^ {2}run +${run} {2}0 stop, 1 merge, 2 unmerge all$`, 'm'));
  }
});

test('status --json and --prometheus on this host agree with the files', {
  skip: kernelSkip(ksmSkip()),
}, async () => {
  const [r, values] = await heldStill(SETTINGS, () => runCli(['status', '--json']));
  assert.equal(r.status, 0, r.stderr);
  const json = JSON.parse(r.stdout);
  assert.equal(json.ksm_available, true);
  assert.deepEqual(Object.keys(json.sysfs).sort(), readdirSync(KSM).sort());
  for (const [name, value] of values) assert.equal(json.sysfs[name].value, Number(value), name);
  const [p, again] = await heldStill(SETTINGS, () => runCli(['status', '--prometheus']));
  assert.equal(p.status, 0, p.stderr);
  const families = parseExposition(p.stdout);
  assert.equal(families.get('ksm_available')!.samples[0]!.value, 1);
  const maxPageSharing = again.get('max_page_sharing');
  if (maxPageSharing !== undefined) {
    assert.equal(families.get('ksm_max_page_sharing')!.samples[0]!.value, Number(maxPageSharing));
  }
  // The same reader, in process: no ksm_stat is unreadable to root.
  if (process.getuid?.() === 0) assert.equal(readSnapshot().unreadable, 0);
});

test("status as an ordinary user: other users' processes unreadable, said once, nothing fails", {
  // A checkout that user nobody cannot read is this machine's layout, not the kernel missing: it only skips.
  skip: kernelSkip(rootSkip()) || nobodySkip(),
}, async () => {
  const asNobody = { uid: 65534, gid: 65534, env: { ...process.env, HOME: '/tmp' } };
  const human = await runCli(['status'], asNobody);
  assert.equal(human.status, 0, human.stderr);
  const notes = human.stdout.split('\n').filter((l) => /need root/.test(l));
  assert.equal(notes.length, 1, human.stdout);
  assert.match(notes[0]!, /\d+ process('s|es') \/proc\/PID\/ksm_stat could not be read/);
  const json = await runCli(['status', '--json'], asNobody);
  assert.equal(json.status, 0, json.stderr);
  assert.ok(JSON.parse(json.stdout).processes_unreadable > 0);
});

test('a process started by ksmkit exec merges once ksmd runs; status shows it (SysfsGuard restores ksmd)', {
  skip: kernelSkip(mergeSkip()),
  timeout: 180_000,
}, async () => {
  const guard = await acquireGuard();
  let child: Awaited<ReturnType<typeof startFiller>>['child'] | undefined;
  try {
    const started = await startFiller();
    child = started.child;
    const before = readSnapshot();
    const filler = before.processes.find((p) => p.pid === started.pid);
    assert.ok(filler !== undefined && filler.mergeAny === true, JSON.stringify(before.processes));
    writeKsmOrThrow('pages_to_scan', '5000');
    writeKsmOrThrow('sleep_millisecs', '10');
    writeKsmOrThrow('run', '1');
    let merged = 0;
    for (let i = 0; i < 300 && merged < 500; i++) {
      await sleep(100);
      merged = readSnapshot().processes.find((p) => p.pid === filler.pid)?.mergingPages ?? 0;
    }
    assert.ok(merged >= 500, `the 512 equal pages merged (${merged} merging pages)`);
    writeKsmOrThrow('run', '0');
    const r = await runCli(['status', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const json = JSON.parse(r.stdout);
    const p = json.processes.find((x: { pid: number }) => x.pid === filler.pid);
    assert.equal(p.merge_any, true);
    assert.ok(p.merging_pages >= 500);
    assert.ok(p.profit_bytes > 0);
    assert.ok(json.saving.pages_sharing >= 500 && json.saving.pages_shared >= 1);
    assert.ok(json.saving.general_profit_bytes > 0);
    assert.equal(json.processes[0].pid, filler.pid, 'the process with the most profit comes first');
    const human = await runCli(['status']);
    assert.match(
      human.stdout,
      new RegExp(`^ +${filler.pid} +\\S.* +\\d+ +\\d+ +\\d+ +[\\d.]+ [KM]iB +yes +yes$`, 'm'),
    );
    const families = parseExposition(formatPrometheus(readSnapshot()));
    const sample = families
      .get('ksm_process_merging_pages')!
      .samples.find((s) => s.labels.pid === String(filler.pid));
    assert.ok(sample !== undefined && sample.value >= 500);
  } finally {
    if (child !== undefined && child.exitCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
    guard.release();
  }
  assert.equal(readFileSync(`${KSM}/run`, 'latin1').trim(), guard.saved.get('run'));
});
