/**
 * The real ksmtuned is the oracle for `tune --policy ksmtuned`: the Debian
 * script itself runs on recorded inputs in a private mount and pid namespace
 * (ksmtuned-oracle.ts: scratch /sys/kernel/mm/ksm, /proc/meminfo and
 * /etc/ksmtuned.conf, stand-in `qemu-system-x86_64 ... -enable-kvm` guests of
 * known size), and ksmkit's KsmtunedTuner, fed by the daemon's own look at
 * the same host (KernelTunerHost) and the same conf file parsed (not run),
 * must make the same decision at every step: start or stop, pages_to_scan and
 * sleep_millisecs, the same DEBUG lines, the same committed memory.
 * A mismatch is reported field by field: {sequence, step, field, expected, actual}.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../fuzz/rng.ts';
import type { MemInfoKb } from '../../tuner/inputs.ts';
import { KsmtunedTuner, ksmtunedStart, parseKsmtunedConf } from '../../tuner/ksmtuned.ts';
import { KSMTUNED_SCRIPT, type OracleSequence, type OracleSequenceResult } from './ksmtuned-oracle.ts';

const DRIVER = fileURLToPath(new URL('./ksmtuned-oracle.ts', import.meta.url));
const MIB_KB = 1024;

function unavailable(): string | false {
  if (process.platform !== 'linux') return 'the ksmtuned oracle needs Linux';
  if (process.getuid?.() !== 0) return 'the ksmtuned oracle needs root (private mount namespace)';
  if (!existsSync(KSMTUNED_SCRIPT))
    return `${KSMTUNED_SCRIPT} is not installed (apt-get install ksmtuned; .ci/run does)`;
  for (const tool of ['unshare', 'perl', 'pgrep', 'mount']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed`;
  }
  return false;
}

function meminfo(totalKb: number, freeKb: number, cacheKb = 0): MemInfoKb {
  const buffers = Math.floor(cacheKb / 8);
  return {
    MemTotal: totalKb,
    MemFree: freeKb,
    MemAvailable: Math.min(totalKb, freeKb + cacheKb),
    Buffers: buffers,
    Cached: cacheKb - buffers,
    SwapFree: 0,
  };
}

/** The threshold the script will compute for this conf and MemTotal (to place inputs on its edges). */
function thresOf(conf: string, totalKb: number): number {
  return ksmtunedStart(parseKsmtunedConf(conf).config, totalKb).state.thres;
}

const T = 256 * MIB_KB;

/** Hand-made sequences: each of the script's branches and edges. */
const HAND_MADE: OracleSequence[] = [
  {
    name: 'defaults: boost to the maximum under steady pressure, then hold at 1250',
    conf: '',
    steps: Array.from({ length: 7 }, () => ({ meminfo: meminfo(T, 10 * MIB_KB), guestsMiB: [64, 64] })),
  },
  {
    name: 'defaults: start on committed memory, decay to the minimum, stop when guests leave',
    conf: '',
    steps: [
      { meminfo: meminfo(T, 20 * MIB_KB), guestsMiB: [96, 96] },
      ...Array.from({ length: 6 }, () => ({ meminfo: meminfo(T, 120 * MIB_KB), guestsMiB: [96, 96] })),
      { meminfo: meminfo(T, 200 * MIB_KB), guestsMiB: [16] },
      { meminfo: meminfo(T, 10 * MIB_KB), guestsMiB: [16] },
    ],
  },
  {
    name: 'free exactly at the threshold: not stopped, and decays (the test is free < thres)',
    conf: '',
    steps: [
      { meminfo: meminfo(T, thresOf('', T)), guestsMiB: [] },
      { meminfo: meminfo(T, thresOf('', T) - 1), guestsMiB: [] },
      { meminfo: meminfo(T, thresOf('', T) + 1), guestsMiB: [] },
      { meminfo: meminfo(T, thresOf('', T)), guestsMiB: [] },
    ],
  },
  {
    name: 'KSM_THRES_CONST is in kB: COEF 0 leaves a 2 MiB threshold',
    conf: 'KSM_THRES_COEF=0\nKSM_THRES_CONST=2048',
    steps: [
      { meminfo: meminfo(T, 3 * MIB_KB), guestsMiB: [] },
      { meminfo: meminfo(T, MIB_KB), guestsMiB: [] },
      { meminfo: meminfo(T, 2048), guestsMiB: [] },
      { meminfo: meminfo(T, 10 * MIB_KB), guestsMiB: [200] },
    ],
  },
  {
    name: 'page cache counts as free: a host full of cache keeps KSM off',
    conf: '',
    steps: [
      { meminfo: meminfo(T, 5 * MIB_KB, 150 * MIB_KB), guestsMiB: [48] },
      { meminfo: meminfo(T, 5 * MIB_KB, 40 * MIB_KB), guestsMiB: [48] },
      { meminfo: meminfo(T, 5 * MIB_KB, 200 * MIB_KB), guestsMiB: [48] },
    ],
  },
  {
    name: 'sleep floor: a large MemTotal gives under 10 ms, raised to 10',
    conf: 'KSM_SLEEP_MSEC=10',
    steps: [
      { meminfo: meminfo(64 * 1024 * MIB_KB, 10 * MIB_KB), guestsMiB: [] },
      { meminfo: meminfo(64 * 1024 * MIB_KB, 10 * MIB_KB), guestsMiB: [] },
    ],
  },
  {
    name: 'custom boost, decay, min and max; quoted and exported values, comments, an empty value',
    conf:
      '# tuned for a small host\nexport KSM_NPAGES_BOOST="1000"\nKSM_NPAGES_DECAY=\'-400\'\nKSM_NPAGES_MIN=10 # floor\n' +
      'KSM_NPAGES_MAX=2000\nKSM_SLEEP_MSEC=\nKSM_THRES_COEF=30',
    steps: [
      { meminfo: meminfo(T, MIB_KB), guestsMiB: [32] },
      { meminfo: meminfo(T, MIB_KB), guestsMiB: [32] },
      { meminfo: meminfo(T, MIB_KB), guestsMiB: [32] },
      { meminfo: meminfo(T, 100 * MIB_KB), guestsMiB: [200] },
      { meminfo: meminfo(T, 100 * MIB_KB), guestsMiB: [200] },
      { meminfo: meminfo(T, 100 * MIB_KB), guestsMiB: [200] },
      { meminfo: meminfo(T, 100 * MIB_KB), guestsMiB: [200] },
      { meminfo: meminfo(T, 100 * MIB_KB), guestsMiB: [200] },
      { meminfo: meminfo(T, 100 * MIB_KB), guestsMiB: [200] },
    ],
  },
  {
    name: 'npages survives a stop: stop, start again from where it was',
    conf: 'KSM_THRES_CONST=100000',
    steps: [
      { meminfo: meminfo(T, MIB_KB), guestsMiB: [] },
      { meminfo: meminfo(T, MIB_KB), guestsMiB: [] },
      { meminfo: meminfo(T, 200 * MIB_KB), guestsMiB: [] },
      { meminfo: meminfo(T, 200 * MIB_KB), guestsMiB: [] },
      { meminfo: meminfo(T, MIB_KB), guestsMiB: [] },
    ],
  },
];

/** Seeded sequences: MemTotal, conf and the guests drawn; free memory often near the threshold. */
function seeded(seed: number): OracleSequence {
  const rng = new Rng(seed);
  const totalKb = rng.int(150, 400) * MIB_KB + rng.int(0, 1023);
  const confLines: string[] = [];
  if (rng.chance(0.5)) confLines.push(`KSM_NPAGES_BOOST=${rng.int(1, 600)}`);
  if (rng.chance(0.5)) confLines.push(`KSM_NPAGES_DECAY=${-rng.int(0, 300)}`);
  if (rng.chance(0.3)) confLines.push(`KSM_NPAGES_MIN=${rng.int(0, 200)}`);
  if (rng.chance(0.3)) confLines.push(`KSM_NPAGES_MAX=${rng.int(300, 3000)}`);
  if (rng.chance(0.4)) confLines.push(`KSM_THRES_COEF=${rng.int(0, 60)}`);
  if (rng.chance(0.3)) confLines.push(`KSM_THRES_CONST=${rng.int(0, 120_000)}`);
  if (rng.chance(0.3)) confLines.push(`KSM_SLEEP_MSEC=${rng.int(0, 100)}`);
  const conf = confLines.join('\n');
  const thres = thresOf(conf, totalKb);
  const sizes = [8, 16, 24, 32, 48, 64];
  let guests: number[] = [];
  const steps = Array.from({ length: rng.int(5, 9) }, () => {
    if (rng.chance(0.4) && guests.length < 4) guests = [...guests, rng.pick(sizes)];
    else if (rng.chance(0.25) && guests.length > 0) guests = guests.slice(1);
    const freeKb = rng.choose<number>([
      [thres, 1],
      [Math.max(0, thres + rng.int(-2048, 2048)), 3],
      [rng.int(0, totalKb), 4],
    ]);
    const cacheKb = rng.chance(0.3) ? rng.int(0, Math.floor(freeKb / 2)) : 0;
    return { meminfo: meminfo(totalKb, freeKb - cacheKb, cacheKb), guestsMiB: guests };
  });
  return { name: `seed ${seed}`, conf, steps };
}

const SEQUENCES = [...HAND_MADE, ...Array.from({ length: 16 }, (_, i) => seeded(1000 + i))];

interface Mismatch {
  readonly sequence: string;
  readonly step: number;
  readonly field: string;
  readonly expected: string;
  readonly actual: string;
}

function compare(result: OracleSequenceResult): Mismatch[] {
  const out: Mismatch[] = [];
  const tuner = new KsmtunedTuner(parseKsmtunedConf(result.conf).config);
  result.steps.forEach((step, index) => {
    const d = tuner.decide(step.inputs, undefined);
    const check = (field: string, expected: string, actual: string) => {
      if (expected !== actual) out.push({ sequence: result.name, step: index, field, expected, actual });
    };
    check('run', step.sysfs.run, String(d.settings.run));
    if (step.sysfs.run === '1') {
      check('pages_to_scan', step.sysfs.pages_to_scan, String(d.settings.pages_to_scan));
      check('sleep_millisecs', step.sysfs.sleep_millisecs, String(d.settings.sleep_millisecs));
    }
    check('debug', step.debug.join(' | '), d.debug.join(' | '));
    const committed = /^committed (\d+) free/.exec(step.debug.find((l) => l.startsWith('committed ')) ?? '');
    check('committed', committed?.[1] ?? '?', String(step.inputs.committedKb));
  });
  return out;
}

test(`tune --policy ksmtuned decides as the real ksmtuned, step for step, on ${SEQUENCES.length} input sequences`, {
  skip: unavailable(),
  timeout: 300_000,
}, () => {
  const dir = mkdtempSync('/tmp/ksmkit-oracle-test-');
  try {
    const plan = join(dir, 'plan.json');
    const out = join(dir, 'out.json');
    writeFileSync(plan, JSON.stringify(SEQUENCES));
    const r = spawnSync(
      'unshare',
      [
        '--mount',
        '--pid',
        '--fork',
        '--mount-proc',
        '--propagation',
        'private',
        process.execPath,
        '--import',
        'tsx',
        DRIVER,
        plan,
        out,
      ],
      { encoding: 'utf8', timeout: 280_000 },
    );
    assert.equal(r.status, 0, `the oracle driver failed: ${r.stderr}`);
    const results = JSON.parse(readFileSync(out, 'utf8')) as OracleSequenceResult[];
    assert.equal(results.length, SEQUENCES.length);
    const steps = results.reduce((n, s) => n + s.steps.length, 0);
    const starts = results.flatMap((s) => s.steps).filter((s) => s.sysfs.run === '1').length;
    // The sequences must exercise both branches, or agreement would prove little.
    assert.ok(starts > steps / 5 && starts < (steps * 4) / 5, `${starts} starts of ${steps} steps`);
    assert.deepEqual(results.flatMap(compare), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
