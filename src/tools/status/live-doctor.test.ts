/**
 * The doctor panel's server side, on fixture directories with a stepped
 * clock and a doctor the test answers: the verdicts reach the view, one run
 * serves every page, runs start once per doctor interval and never overlap,
 * and a doctor that throws is one line in the panel while the readings go on.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DoctorOptions, DoctorReport } from '../doctor/doctor.ts';
import { doctorWorkload } from '../doctor/engine.ts';
import { doctorReportSchema } from '../doctor/json.ts';
import { LiveSampler } from './live.ts';
import { biggestProcesses, LiveDoctorRunner } from './live-doctor.ts';
import type { LiveTick } from './live-protocol.ts';
import { host618 } from './test-fixtures.ts';

const WORKLOAD = new URL('../doctor/fixtures/why-not-merging.yaml', import.meta.url).pathname;

/**
 * A report as runDoctor makes it on a host where ksmd is stopped and pid 100
 * has unadvised memory: the engine's report of the doctor's own fixture, with
 * these findings.
 */
async function report(pids: readonly number[]): Promise<DoctorReport> {
  const base = await doctorWorkload(WORKLOAD);
  return {
    ...base,
    source: 'host',
    root: false,
    target: { description: `pid ${pids.join(', ')}`, pids },
    pageAnalysis: false,
    findings: [
      {
        verdict: 'ksmd-stopped',
        subject: {},
        pages: 0,
        bytes: 0,
        evidence: 'run = 0',
        fix: 'echo 1 > /sys/kernel/mm/ksm/run',
      },
      ...Array.from({ length: 15 }, (_, i) => ({
        verdict: 'not-advised' as const,
        subject: {
          pid: 100,
          command: 'qemu-system-x86_64 -name vm1',
          start: 0x1000 * (i + 1),
          end: 0x1000 * (i + 2),
          name: '',
        },
        pages: 15 - i,
        bytes: (15 - i) * 4096,
        evidence: `${15 - i} anonymous pages not VM_MERGEABLE`,
        fix: `madvise(MADV_MERGEABLE) over ${i}`,
      })),
    ],
    problems: ['pid 400: exited while it was read'],
    notes: ["running as uid 1000: only this user's processes are visible"],
    healthy: false,
  };
}

/** A sampler over host618 with a doctor whose runs the test resolves or rejects by hand. */
function harness(doctorIntervalMs = 30_000) {
  const f = host618();
  const state = { ms: 1_000_000 };
  const calls: Array<{
    options: DoctorOptions;
    resolve: (r: DoctorReport) => void;
    reject: (e: Error) => void;
  }> = [];
  const doctor = new LiveDoctorRunner({
    intervalMs: doctorIntervalMs,
    now: () => 1_700_000_000_000 + state.ms,
    run: (options) =>
      new Promise<DoctorReport>((resolve, reject) => calls.push({ options, resolve, reject })),
  });
  const sampler = new LiveSampler({
    sources: f.sources,
    intervalMs: 1000,
    hz: 250,
    uid: 1000,
    ksmdCpuNs: () => 5e9,
    clock: () => ({ time: 1_700_000_000_000 + state.ms, monotonicMs: state.ms }),
    doctor,
  });
  const after = (ms: number): LiveTick => {
    state.ms += ms;
    return sampler.sample();
  };
  /** Lets the doctor's promise callbacks run. */
  const settle = () => new Promise<void>((r) => setImmediate(r));
  return { f, doctor, sampler, calls, after, settle };
}

describe('biggestProcesses', () => {
  test('the biggest by profit, then by rmap items, each pid once', () => {
    const f = host618();
    try {
      const s = new LiveSampler({ sources: f.sources, intervalMs: 1000, hz: 250, ksmdCpuNs: () => 0 });
      const processes = s.sample().view.processes;
      // 100 and 200 have a profit; 400 has rmap items at a loss; 300 has neither.
      assert.deepEqual(biggestProcesses(processes, 8), [100, 200, 400]);
      assert.deepEqual(biggestProcesses(processes, 1), [100]);
      assert.deepEqual(biggestProcesses([], 8), []);
    } finally {
      f.cleanup();
    }
  });
});

describe('LiveDoctorRunner in the sampler', () => {
  test('runs once at start over the biggest processes, without the per page pass, and the verdicts reach the view', async () => {
    const h = harness();
    try {
      const first = h.after(0);
      assert.equal(h.calls.length, 1);
      assert.deepEqual(h.calls[0]!.options, {
        target: { kind: 'pids', pids: [100, 200, 400] },
        pages: false,
        windowMs: 1000,
      });
      assert.equal(first.view.doctor?.running, true);
      assert.equal(first.view.doctor?.timeMs, null);
      assert.deepEqual(first.view.doctor?.groups, []);

      h.calls[0]!.resolve(doctorReportSchema.parse(await report([100, 200, 400])) as DoctorReport);
      await h.settle();
      const d = h.after(1000).view.doctor!;
      assert.equal(d.running, false);
      assert.equal(d.error, null);
      assert.equal(d.healthy, false);
      assert.equal(d.root, false);
      assert.deepEqual(d.pids, [100, 200, 400]);
      assert.deepEqual(
        d.groups.map((g) => [g.verdict, g.level, g.rows.length, g.moreRows]),
        [
          ['ksmd-stopped', 'finding', 1, 0],
          ['not-advised', 'finding', 12, 3],
        ],
      );
      const stopped = d.groups[0]!;
      assert.equal(stopped.title, 'ksmd stopped');
      assert.deepEqual(stopped.rows[0], {
        subject: 'host',
        bytes: 0,
        evidence: 'run = 0',
        fix: 'echo 1 > /sys/kernel/mm/ksm/run',
      });
      const unadvised = d.groups[1]!;
      // Biggest first; the three smallest (3, 2, 1 pages) are counted, not sent.
      assert.equal(unadvised.rows[0]!.bytes, 15 * 4096);
      assert.match(unadvised.rows[0]!.subject, /^pid 100 qemu-system-x86_64 -name vm1 {2}0x/);
      assert.equal(unadvised.bytes, 120 * 4096);
      assert.equal(unadvised.moreBytes, 6 * 4096);
      assert.deepEqual(d.problems, ['pid 400: exited while it was read']);
      assert.match(d.notes[0]!, /uid 1000/);
      assert.match(d.notes.at(-1)!, /per page verdicts are not made here.*ksmkit doctor --pid 100,200,400/);
      assert.equal(d.timeMs, 1_700_000_000_000 + 1_000_000);
    } finally {
      h.f.cleanup();
    }
  });

  test('one run for every page: hellos and listeners share it', async () => {
    const h = harness();
    try {
      const seen: LiveTick[] = [];
      h.sampler.onTick((t) => seen.push(t));
      h.sampler.onTick((t) => seen.push(t));
      h.after(0);
      h.calls[0]!.resolve(await report([100]));
      await h.settle();
      h.after(1000);
      const hellos = Array.from({ length: 10 }, () => h.sampler.hello());
      assert.equal(h.doctor.runs, 1);
      assert.equal(h.calls.length, 1);
      for (const hello of hellos) assert.equal(hello.view.doctor, seen.at(-1)!.view.doctor);
      assert.equal(seen.at(-1)!.view.doctor, seen.at(-2)!.view.doctor);
      assert.equal(seen.at(-1)!.view.doctor?.groups.length, 2);
    } finally {
      h.f.cleanup();
    }
  });

  test('a run starts once per doctor interval, never while one is under way', async () => {
    const h = harness(30_000);
    try {
      h.after(0);
      // A run that takes longer than the interval is not doubled.
      for (let i = 0; i < 40; i++) h.after(1000);
      assert.equal(h.calls.length, 1);
      h.calls[0]!.resolve(await report([100]));
      await h.settle();
      h.after(1000);
      assert.equal(h.calls.length, 2, 'overdue when the first run ended: the next reading starts one');
      h.calls[1]!.resolve(await report([100]));
      await h.settle();
      for (let i = 0; i < 29; i++) h.after(1000);
      assert.equal(h.calls.length, 2, 'not before 30 s have passed since the last start');
      h.after(1000);
      assert.equal(h.calls.length, 3);
      assert.equal(h.doctor.runs, 3);
    } finally {
      h.f.cleanup();
    }
  });

  test('a doctor that fails is one line in the panel; the readings and the last verdicts go on', async () => {
    const h = harness(5000);
    try {
      h.after(0);
      h.calls[0]!.resolve(await report([100]));
      await h.settle();
      h.after(5000);
      h.calls[1]!.reject(new Error('EACCES: permission denied, open /proc/100/smaps\n    at readFileSync'));
      await h.settle();
      const tick = h.after(1000);
      assert.notEqual(tick.point.values[0], null, 'the reading itself is whole');
      assert.equal(tick.view.error, null);
      const d = tick.view.doctor!;
      assert.equal(d.error, 'the doctor failed: EACCES: permission denied, open /proc/100/smaps');
      assert.equal(d.running, false);
      assert.equal(d.groups.length, 2, "the last good run's verdicts stay");
      h.after(4000);
      assert.equal(h.calls.length, 3, 'and the next run comes at its time');
      h.calls[2]!.resolve(await report([100]));
      await h.settle();
      assert.equal(h.after(1000).view.doctor?.error, null);
    } finally {
      h.f.cleanup();
    }
  });

  test('a doctor that throws before its first await does not break the reading', async () => {
    const f = host618();
    try {
      const doctor = new LiveDoctorRunner({
        run: () => {
          throw new Error('no /proc');
        },
      });
      const sampler = new LiveSampler({
        sources: f.sources,
        intervalMs: 1000,
        hz: 250,
        ksmdCpuNs: () => 0,
        doctor,
      });
      assert.equal(sampler.sample().view.error, null);
      await new Promise<void>((r) => setImmediate(r));
      assert.equal(sampler.sample().view.doctor?.error, 'the doctor failed: no /proc');
    } finally {
      f.cleanup();
    }
  });

  test('without a doctor the view has no panel', () => {
    const f = host618();
    try {
      const sampler = new LiveSampler({ sources: f.sources, intervalMs: 1000, hz: 250, ksmdCpuNs: () => 0 });
      assert.equal('doctor' in sampler.sample().view, false);
    } finally {
      f.cleanup();
    }
  });
});
