/**
 * `ksmkit tune` as a process, against a directory in place of
 * /sys/kernel/mm/ksm and one in place of /proc (a meminfo and one stand-in
 * `qemu-system-x86_64 -enable-kvm` process): SIGUSR1 retunes now, SIGHUP
 * rereads the conf, a second instance is refused, SIGTERM puts back what was
 * changed, --dry-run writes nothing, ksmtuned's DEBUG lines go to its
 * LOGFILE, and the last decision reaches `status --prometheus`.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseTuneDecision, tuneDecisionFile } from './metrics.ts';
import { KSMKIT_MAIN, spawnKsmkit } from './testing.ts';

const MAIN = KSMKIT_MAIN;
const MIB_KB = 1024;

function fixture(dir: string): { sysfs: string; proc: string } {
  const sysfs = join(dir, 'ksm');
  const proc = join(dir, 'proc');
  mkdirSync(sysfs);
  mkdirSync(join(proc, '4242'), { recursive: true });
  const files: Record<string, string> = {
    run: '0',
    pages_to_scan: '100',
    sleep_millisecs: '20',
    full_scans: '0',
    pages_scanned: '0',
    pages_shared: '0',
    pages_sharing: '0',
  };
  for (const [k, v] of Object.entries(files)) writeFileSync(join(sysfs, k), `${v}\n`);
  // 1 GiB host, 50 MiB free: under ksmtuned's 20% threshold, so it boosts.
  writeFileSync(
    join(proc, 'meminfo'),
    `MemTotal: ${1024 * MIB_KB} kB\nMemFree: ${50 * MIB_KB} kB\nMemAvailable: ${60 * MIB_KB} kB\nBuffers: 0 kB\nCached: 0 kB\nSwapFree: 0 kB\n`,
  );
  writeFileSync(join(proc, '4242', 'cmdline'), 'qemu-system-x86_64\0-enable-kvm\0-m\x292\0');
  writeFileSync(join(proc, '4242', 'status'), `Name:\tqemu\nVmRSS:\t  ${512 * MIB_KB} kB\n`);
  return { sysfs, proc };
}

/** The options that point `tune` at the fixture instead of the machine. */
function onFixture(dir: string, sysfs: string, proc: string, metrics: string): string[] {
  return [
    '--sysfs-dir',
    sysfs,
    '--proc-dir',
    proc,
    '--lock-file',
    join(dir, 'lock'),
    '--metrics-file',
    metrics,
  ];
}

async function until(what: string, ok: () => boolean, lines: string[]): Promise<void> {
  // Generous: a tsx start on a loaded machine takes seconds.
  for (let i = 0; i < 1200; i++) {
    if (ok()) return;
    await sleep(25);
  }
  assert.fail(`timed out waiting for ${what}; output:\n${lines.join('\n')}`);
}

test('tune daemon: SIGUSR1 retunes, SIGHUP rereads, one instance, SIGTERM restores, DEBUG lines, metrics', {
  timeout: 180_000,
}, async () => {
  const dir = mkdtempSync('/tmp/ksmkit-tune-daemon-');
  let daemon: ChildProcess | undefined;
  try {
    const { sysfs, proc } = fixture(dir);
    const conf = join(dir, 'ksmtuned.conf');
    const log = join(dir, 'ksmtuned.log');
    const metrics = join(dir, 'tune.prom');
    writeFileSync(conf, `KSM_MONITOR_INTERVAL=3600\nDEBUG=1\nLOGFILE=${log}\n`);
    const read = (name: string) => readFileSync(join(sysfs, name), 'latin1').trim();
    const common = onFixture(dir, sysfs, proc, metrics);
    const d = spawnKsmkit(['tune', '--policy', 'ksmtuned', '--config', conf, ...common]);
    daemon = d.child;
    await until(
      'the daemon to start',
      () => d.lines.some((l) => l.startsWith('ksmkit tune: policy=ksmtuned')),
      d.lines,
    );
    // ksmtuned decides after its interval (an hour here): nothing written yet.
    assert.equal(read('run'), '0');

    d.child.kill('SIGUSR1');
    await until('a decision on SIGUSR1', () => read('pages_to_scan') === '300', d.lines);
    // The sysfs writes come first, then the log line, ksmtuned's DEBUG lines and the metrics.
    await until(
      'the step to be logged',
      () => existsSync(metrics) && d.lines.some((l) => l.includes('trigger=SIGUSR1')),
      d.lines,
    );
    assert.equal(read('run'), '1');
    assert.equal(read('sleep_millisecs'), '160'); // 10 ms x 16 GiB / 1 GiB
    assert.match(
      d.lines.find((l) => l.includes('trigger=SIGUSR1'))!,
      /committed_kb=524288 .*reason="free 51200 kB <= threshold 209715 kB/,
    );
    assert.match(
      readFileSync(log, 'latin1'),
      /^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \S+ \d{4}: total 1048576\n/,
    );
    assert.match(readFileSync(log, 'latin1'), /: KSMCTL start 300 160\n$/);
    assert.match(readFileSync(metrics, 'utf8'), /^ksmkit_tune_pages_to_scan 300$/m);
    // Beside it, the decision with its reason, for the live page's marks.
    const exported = parseTuneDecision(readFileSync(tuneDecisionFile(metrics), 'utf8'));
    assert.equal(exported?.policy, 'ksmtuned');
    assert.match(exported?.set ?? '', /pages_to_scan=300/);
    assert.notEqual(exported?.reason, '');

    // One instance.
    const second = spawnSync(
      process.execPath,
      ['--import', 'tsx', MAIN, 'tune', '--policy', 'ksmtuned', ...common],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(second.status, 1);
    assert.match(second.stderr, /another ksmkit tune holds .*lock/);

    // SIGHUP: a new conf; the next decision follows it.
    writeFileSync(conf, `KSM_MONITOR_INTERVAL=3600\nKSM_NPAGES_BOOST=500\n`);
    d.child.kill('SIGHUP');
    await until('the reread', () => d.lines.some((l) => l.includes('SIGHUP: configuration reread')), d.lines);
    d.child.kill('SIGUSR1');
    await until('a decision with the new boost', () => read('pages_to_scan') === '500', d.lines);

    // The decision beside status --prometheus.
    const status = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        MAIN,
        'status',
        '--prometheus',
        '--sysfs-dir',
        sysfs,
        '--proc-dir',
        proc,
        '--tune-metrics',
        metrics,
      ],
      { encoding: 'utf8' },
    );
    assert.match(status.stdout, /^ksm_run 1$/m);
    assert.match(
      status.stdout,
      /^ksmkit_tune_decision_info\{policy="ksmtuned",action="start",dry_run="0"\} 1$/m,
    );

    // SIGTERM: every setting it changed goes back.
    // 'close': the exit and every line of its output (an 'exit' may come before the last lines).
    const exited = once(d.child, 'close');
    d.child.kill('SIGTERM');
    assert.deepEqual(await exited, [0, null]);
    assert.deepEqual([read('run'), read('pages_to_scan'), read('sleep_millisecs')], ['0', '100', '20']);
    assert.match(
      d.lines.at(-1)!,
      /SIGTERM: stopping; settings restored: pages_to_scan=100 sleep_millisecs=20 run=0/,
    );
    assert.equal(existsSync(join(dir, 'lock')), false);

    // --dry-run --once: the decision, logged; nothing written, no lock taken.
    const dry = spawnSync(
      process.execPath,
      ['--import', 'tsx', MAIN, 'tune', '--dry-run', '--once', ...common],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(dry.status, 0, dry.stderr);
    assert.match(
      dry.stdout,
      /policy=objective action=start set="pages_to_scan=100 sleep_millisecs=20 run=1" dry_run=1/,
    );
    assert.deepEqual([read('run'), read('pages_to_scan'), read('sleep_millisecs')], ['0', '100', '20']);
  } finally {
    // A failed assertion leaves the daemon running: end it before its files go.
    if (daemon !== undefined && daemon.exitCode === null && daemon.signalCode === null) {
      const gone = once(daemon, 'exit');
      daemon.kill('SIGKILL');
      await gone;
    }
    rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
  }
});

test('tune: a conf line that is not a plain assignment is refused (exit 2), nothing run', () => {
  const dir = mkdtempSync('/tmp/ksmkit-tune-conf-');
  try {
    const { sysfs, proc } = fixture(dir);
    const marker = join(dir, 'ran');
    writeFileSync(join(dir, 'bad.conf'), `KSM_NPAGES_MAX=$(touch ${marker})\n`);
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        MAIN,
        'tune',
        '--policy',
        'ksmtuned',
        '--config',
        join(dir, 'bad.conf'),
        '--once',
        ...onFixture(dir, sysfs, proc, ''),
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 2);
    assert.match(r.stderr, /bad\.conf:1: not a plain KEY=value assignment/);
    assert.equal(existsSync(marker), false);
    assert.equal(readFileSync(join(sysfs, 'run'), 'latin1').trim(), '0');
  } finally {
    rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
  }
});
