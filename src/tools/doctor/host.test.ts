/** Host checks on synthetic readings: each verdict from the reading that shows it, with its exact fix. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  assessHost,
  batchPeriodSeconds,
  type HostReading,
  hostFindings,
  KSMTUNED_DEFAULTS,
  ksmtunedDecision,
  parseKsmtunedConf,
} from './host.ts';
import { findTuners } from './host-reading.ts';

function reading(
  overrides: Partial<HostReading> = {},
  settings: Partial<HostReading['settings']> = {},
): HostReading {
  return {
    available: true,
    kernel: '6.18.44',
    settings: {
      run: 1,
      pagesToScan: 100,
      sleepMillisecs: 20,
      advisorMode: 'none',
      advisorTargetScanTime: 200,
      useZeroPages: 0,
      smartScan: 1,
      mergeAcrossNodes: 1,
      maxPageSharing: 256,
      ...settings,
    },
    missingFiles: [],
    numaNodes: 1,
    pagesToVisit: 1000,
    windowSeconds: 0,
    ksmdCpuPercent: null,
    pagesScannedInWindow: null,
    thpSplitsInWindow: null,
    tuners: [],
    ...overrides,
  };
}

const verdicts = (r: HostReading, zero?: number): string[] =>
  hostFindings(r, {
    targetScanSeconds: 180,
    ...(zero === undefined ? {} : { zeroPagesUnmerged: zero, pagesExamined: 10_000 }),
  }).findings.map((f) => f.verdict);

test('a healthy host: no host finding', () => {
  assert.deepEqual(verdicts(reading()), []);
});

test('ksm-missing: no /sys/kernel/mm/ksm, and a kernel without smart_scan', () => {
  const f = hostFindings(
    reading({ available: false, unavailableReason: 'no /sys/kernel/mm/ksm: CONFIG_KSM is off' }),
    {
      targetScanSeconds: 180,
    },
  ).findings;
  assert.deepEqual(
    f.map((x) => [x.verdict, x.evidence]),
    [['ksm-missing', 'no /sys/kernel/mm/ksm: CONFIG_KSM is off']],
  );
  assert.deepEqual(verdicts(reading({ missingFiles: ['smart_scan'] })), ['ksm-missing']);
});

test('ksmd-stopped and ksmd-unmerging, each with the write that starts ksmd', () => {
  const stopped = hostFindings(reading({}, { run: 0 }), { targetScanSeconds: 180 }).findings;
  assert.deepEqual(
    stopped.map((f) => [f.verdict, f.fix]),
    [['ksmd-stopped', 'echo 1 > /sys/kernel/mm/ksm/run']],
  );
  assert.deepEqual(verdicts(reading({}, { run: 2 })), ['ksmd-unmerging']);
});

test('scan-too-slow from the settings: 1e6 pages at 100 per 24 ms batch is 4 min; the fix meets 3 min', () => {
  const r = reading({ pagesToVisit: 1_000_000 });
  assert.equal(batchPeriodSeconds(20), 0.024);
  const a = assessHost(r, 180);
  assert.equal(a.fullScanBasis, 'settings');
  assert.ok(Math.abs(a.fullScanSeconds! - 240) < 1e-9);
  assert.equal(a.suggestedPagesToScan, Math.ceil(1_000_000 / (180 / 0.024)));
  const f = hostFindings(r, { targetScanSeconds: 180 }).findings;
  assert.deepEqual(
    f.map((x) => x.verdict),
    ['scan-too-slow'],
  );
  assert.equal(
    f[0]!.fix,
    `echo 134 > /sys/kernel/mm/ksm/pages_to_scan (or echo scan-time > /sys/kernel/mm/ksm/advisor_mode)`,
  );
});

test('scan-too-slow measured: pages_scanned over the window wins over the settings', () => {
  const r = reading({ pagesToVisit: 100_000, windowSeconds: 2, pagesScannedInWindow: 200 });
  const a = assessHost(r, 180);
  assert.equal(a.fullScanBasis, 'measured');
  assert.equal(a.fullScanSeconds, 1000);
  // Under the advisor the fix is the advisor's target.
  const f = hostFindings(
    { ...r, settings: { ...r.settings, advisorMode: 'scan-time' } },
    { targetScanSeconds: 150 },
  );
  assert.match(
    f.findings.find((x) => x.verdict === 'scan-too-slow')!.fix,
    /^echo 150 > \/sys\/kernel\/mm\/ksm\/advisor_target_scan_time/,
  );
  assert.ok(f.findings.some((x) => x.verdict === 'advisor-mode'));
});

test('zero-pages-off only with many unmerged zero pages; smart-scan-off; merge-across-nodes on two nodes', () => {
  assert.deepEqual(verdicts(reading(), 100), []);
  assert.deepEqual(verdicts(reading(), 300), ['zero-pages-off']);
  assert.deepEqual(verdicts(reading({}, { useZeroPages: 1 }), 300), []);
  assert.deepEqual(verdicts(reading({}, { smartScan: 0 })), ['smart-scan-off']);
  assert.deepEqual(verdicts(reading({ numaNodes: 2 })), ['merge-across-nodes']);
  assert.deepEqual(verdicts(reading({ numaNodes: 2 }, { mergeAcrossNodes: 0 })), []);
});

test('ksmd-cpu is reported; above half a CPU its fix caps the advisor', () => {
  const f = hostFindings(reading({ ksmdCpuPercent: 72.5, windowSeconds: 1 }), {
    targetScanSeconds: 180,
  }).findings;
  assert.equal(f[0]!.verdict, 'ksmd-cpu');
  assert.equal(f[0]!.evidence, 'ksmd used 72.5% of a CPU over 1.0 s');
  assert.match(f[0]!.fix, /advisor_max_cpu/);
});

test("ksmtuned's rule: on an idle 24 GiB host it stops KSM; with qemu memory committed it starts it", () => {
  const meminfo = { totalKb: 24_000_000, freeKb: 20_000_000, buffersKb: 0, cachedKb: 1_000_000 };
  const idle = ksmtunedDecision(KSMTUNED_DEFAULTS, meminfo, 0);
  assert.deepEqual(idle, {
    totalKb: 24_000_000,
    thresholdKb: 4_800_000,
    committedKb: 0,
    freeKb: 21_000_000,
    stopsKsm: true,
  });
  assert.equal(ksmtunedDecision(KSMTUNED_DEFAULTS, meminfo, 20_000_000).stopsKsm, false);
  const tuner = {
    pid: 7,
    name: 'ksmtuned' as const,
    command: '/bin/bash /usr/sbin/ksmtuned',
    config: KSMTUNED_DEFAULTS,
    decision: idle,
  };
  const gating = hostFindings(reading({ tuners: [tuner] }, { run: 0 }), { targetScanSeconds: 180 }).findings;
  assert.deepEqual(
    gating.map((f) => f.verdict),
    ['tuner-gating'],
  );
  assert.match(gating[0]!.fix, /systemctl disable --now ksmtuned/);
  const running = hostFindings(reading({ tuners: [tuner] }), { targetScanSeconds: 180 }).findings;
  assert.deepEqual(
    running.map((f) => [f.verdict, f.evidence]),
    [['tuner-running', 'ksmtuned (pid 7) is running; pages_to_scan kept in [64, 1250]']],
  );
});

test('/etc/ksmtuned.conf: set lines override the defaults, comments do not', () => {
  const c = parseKsmtunedConf(
    '# KSM_THRES_COEF=20\nKSM_THRES_COEF=35\nKSM_NPAGES_MAX="3000"\nKSM_NPAGES_DECAY=-25 # slower\n',
  );
  assert.deepEqual(c, { ...KSMTUNED_DEFAULTS, thresCoef: 35, npagesMax: 3000, npagesDecay: -25 });
  assert.deepEqual(parseKsmtunedConf(''), KSMTUNED_DEFAULTS);
});

test('tuning daemons by process: ksmtuned (with its configuration file) and ksmkit tune', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ksmkit-doctor-'));
  try {
    const conf = join(dir, 'ksmtuned.conf');
    writeFileSync(conf, 'KSM_THRES_COEF=50\nKSM_NPAGES_MAX=2000\n');
    const tuners = findTuners(
      [
        { pid: 10, comm: 'bash', cmdline: '-bash' },
        { pid: 11, comm: 'ksmtuned', cmdline: '/bin/bash /usr/sbin/ksmtuned' },
        { pid: 12, comm: 'node', cmdline: 'node /opt/ksmkit/dist/cli/main.js tune --interval 60' },
        { pid: 13, comm: 'vim', cmdline: 'vim ksmtuned.conf' },
      ],
      conf,
    );
    assert.deepEqual(
      tuners.map((t) => [t.pid, t.name]),
      [
        [11, 'ksmtuned'],
        [12, 'ksmkit tune'],
      ],
    );
    const ksmtuned = tuners[0]!;
    assert.deepEqual(ksmtuned.config, { ...KSMTUNED_DEFAULTS, thresCoef: 50, npagesMax: 2000 });
    assert.equal(ksmtuned.decision?.thresholdKb, Math.floor((ksmtuned.decision!.totalKb * 50) / 100));
    assert.deepEqual(tuners[1], {
      pid: 12,
      name: 'ksmkit tune',
      command: 'node /opt/ksmkit/dist/cli/main.js tune --interval 60',
    });
    // Two tuners at once: each is a finding, and each says the other is there.
    const both = hostFindings(reading({ tuners }, { run: 0 }), { targetScanSeconds: 180 }).findings;
    assert.deepEqual(
      both.map((f) => f.verdict),
      ['tuner-gating', 'tuner-gating'],
    );
    assert.match(both[1]!.evidence, /1 other tuner running: they overwrite each other$/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});
