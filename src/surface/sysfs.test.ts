import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { describe, test } from 'node:test';
import { skipKernelTest } from '../testing/kernel-required.ts';
import { kstrtobool, kstrtoint, kstrtouint } from './kstrto.ts';
import { SimulatedHost } from './simulated-host.ts';
import { KSM_SYSFS, KSM_SYSFS_DIR, sysfsValue } from './sysfs.ts';

function writeErr(sim: SimulatedHost, name: string, value: string): string | null {
  try {
    sim.sysfs.write(name, value);
    return null;
  } catch (e) {
    return (e as { code: string }).code;
  }
}

describe('sysfs table', () => {
  test('every file of Linux 6.18 is in the table', () => {
    const expected = [
      'advisor_max_cpu',
      'advisor_max_pages_to_scan',
      'advisor_min_pages_to_scan',
      'advisor_mode',
      'advisor_target_scan_time',
      'full_scans',
      'general_profit',
      'ksm_zero_pages',
      'max_page_sharing',
      'merge_across_nodes',
      'pages_scanned',
      'pages_shared',
      'pages_sharing',
      'pages_skipped',
      'pages_to_scan',
      'pages_unshared',
      'pages_volatile',
      'run',
      'sleep_millisecs',
      'smart_scan',
      'stable_node_chains',
      'stable_node_chains_prune_millisecs',
      'stable_node_dups',
      'use_zero_pages',
    ];
    assert.deepEqual(KSM_SYSFS.map((a) => a.name).sort(), expected);
  });

  test('and matches this machine, where it has /sys/kernel/mm/ksm', (t) => {
    if (!existsSync(KSM_SYSFS_DIR)) {
      skipKernelTest(t, `no ${KSM_SYSFS_DIR} on this machine`);
      return;
    }
    assert.deepEqual(KSM_SYSFS.map((a) => a.name).sort(), readdirSync(KSM_SYSFS_DIR).sort());
  });

  test('defaults read back as Linux 6.18 prints them', () => {
    const sim = new SimulatedHost({ memoryBytes: 64 * 2 ** 20 });
    const read = (n: string) => sim.sysfs.read(n);
    assert.equal(read('run'), '0\n');
    assert.equal(read('pages_to_scan'), '100\n');
    assert.equal(read('sleep_millisecs'), '20\n');
    assert.equal(read('max_page_sharing'), '256\n');
    assert.equal(read('stable_node_chains_prune_millisecs'), '2000\n');
    assert.equal(read('advisor_mode'), '[none] scan-time\n');
    assert.equal(read('smart_scan'), '1\n');
    assert.equal(read('use_zero_pages'), '0\n');
    assert.equal(read('general_profit'), '0\n');
  });
});

describe('sysfs write parsing and errno', () => {
  test('run: kstrtouint, every error EINVAL, > 2 EINVAL', () => {
    const sim = new SimulatedHost({ memoryBytes: 64 * 2 ** 20 });
    assert.equal(writeErr(sim, 'run', '3'), 'EINVAL');
    assert.equal(writeErr(sim, 'run', 'x'), 'EINVAL');
    assert.equal(writeErr(sim, 'run', '99999999999'), 'EINVAL');
    assert.equal(writeErr(sim, 'run', ' 1'), 'EINVAL');
    assert.equal(writeErr(sim, 'run', '1\n'), null);
    assert.equal(writeErr(sim, 'run', '+0'), null);
    assert.equal(sim.sysfs.read('run'), '0\n');
  });

  test('max_page_sharing: below 2 EINVAL, overflow ERANGE passed through', () => {
    const sim = new SimulatedHost({ memoryBytes: 64 * 2 ** 20 });
    assert.equal(writeErr(sim, 'max_page_sharing', '1'), 'EINVAL');
    assert.equal(writeErr(sim, 'max_page_sharing', '-5'), 'EINVAL');
    assert.equal(writeErr(sim, 'max_page_sharing', '4294967296'), 'ERANGE');
    assert.equal(writeErr(sim, 'max_page_sharing', 'abc'), 'EINVAL');
    assert.equal(writeErr(sim, 'max_page_sharing', '2'), null);
  });

  test('merge_across_nodes and max_page_sharing: EBUSY while pages are shared', () => {
    const sim = new SimulatedHost({ memoryBytes: 64 * 2 ** 20 });
    const p = sim.host.spawn();
    const addr = sim.host.mmap(p.pid, { lengthBytes: 4 * 4096 });
    sim.host.write(p.pid, addr, new Uint8Array(4 * 4096).fill(3));
    sim.host.madvise(p.pid, addr, 4 * 4096, 'mergeable');
    sim.sysfs.write('run', '1');
    sim.ksm.fullScans(2);
    assert.equal(sim.counter('pages_shared'), 1);
    assert.equal(writeErr(sim, 'merge_across_nodes', '0'), 'EBUSY');
    assert.equal(writeErr(sim, 'merge_across_nodes', '1'), null, 'the same value is always accepted');
    assert.equal(writeErr(sim, 'merge_across_nodes', '2'), 'EINVAL');
    assert.equal(writeErr(sim, 'max_page_sharing', '10'), 'EBUSY');
    sim.sysfs.write('run', '2');
    assert.equal(writeErr(sim, 'merge_across_nodes', '0'), null);
    assert.equal(writeErr(sim, 'max_page_sharing', '10'), null);
  });

  test('read-only files refuse a write open with EACCES, even for root; non-root writers too', () => {
    const sim = new SimulatedHost({ memoryBytes: 64 * 2 ** 20 });
    assert.equal(writeErr(sim, 'pages_shared', '0'), 'EACCES');
    assert.throws(
      () => sim.sysfs.write('run', '1', { root: false }),
      /EACCES: permission denied, open '\/sys\/kernel\/mm\/ksm\/run'/,
    );
  });

  test('errors have the kernel errno and Node message shape', () => {
    const sim = new SimulatedHost({ memoryBytes: 64 * 2 ** 20 });
    assert.throws(
      () => sim.sysfs.write('run', '7'),
      (e: unknown) => {
        const err = e as { code: string; errno: number; syscall: string; path: string; message: string };
        return (
          err.code === 'EINVAL' &&
          err.errno === -22 &&
          err.syscall === 'write' &&
          err.path === '/sys/kernel/mm/ksm/run' &&
          err.message === "EINVAL: invalid argument, write '/sys/kernel/mm/ksm/run'"
        );
      },
    );
  });

  test('advisor_mode accepts exactly none and scan-time', () => {
    const sim = new SimulatedHost({ memoryBytes: 64 * 2 ** 20 });
    assert.equal(writeErr(sim, 'advisor_mode', 'scan'), 'EINVAL');
    assert.equal(writeErr(sim, 'advisor_mode', 'scan-time\n'), null);
    assert.equal(sim.sysfs.read('advisor_mode'), 'none [scan-time]\n');
    assert.equal(writeErr(sim, 'pages_to_scan', '100'), 'EINVAL');
    assert.equal(writeErr(sim, 'advisor_target_scan_time', '0'), 'EINVAL');
    assert.equal(writeErr(sim, 'advisor_max_cpu', '4294967297'), null);
    assert.equal(sim.sysfs.read('advisor_max_cpu'), '1\n', 'stored into 32 bits');
  });

  // Checked on 6.18.44 (conformance/080-sysfs-advisor-unsigned-long.yaml is the recording).
  test('the advisor unsigned longs read back exactly to 2^64 - 1, as the kernel prints them', () => {
    const sim = new SimulatedHost({ memoryBytes: 64 * 2 ** 20 });
    const U64_MAX = '18446744073709551615';
    for (const name of [
      'advisor_min_pages_to_scan',
      'advisor_max_pages_to_scan',
      'advisor_target_scan_time',
    ]) {
      assert.equal(writeErr(sim, name, U64_MAX), null, name);
      assert.equal(sim.sysfs.read(name), `${U64_MAX}\n`, name);
      assert.equal(
        sysfsValue(name, sim.sysfs.read(name)),
        U64_MAX,
        `${name}: exact text, not a rounded number`,
      );
      assert.equal(
        writeErr(sim, name, '18446744073709551616'),
        'EINVAL',
        `${name}: ERANGE reported as EINVAL`,
      );
      assert.equal(writeErr(sim, name, '-1'), 'EINVAL', name);
      assert.equal(sim.sysfs.read(name), `${U64_MAX}\n`, `${name}: unchanged by a refused write`);
    }
    assert.equal(writeErr(sim, 'advisor_max_cpu', U64_MAX), null);
    assert.equal(sim.sysfs.read('advisor_max_cpu'), '4294967295\n');
    // set_advisor_defaults() stores the unsigned long into the unsigned int pages_to_scan.
    assert.equal(writeErr(sim, 'advisor_mode', 'scan-time'), null);
    assert.equal(sim.sysfs.read('pages_to_scan'), '4294967295\n');
    assert.equal(writeErr(sim, 'advisor_mode', 'none'), null);
    assert.equal(writeErr(sim, 'advisor_min_pages_to_scan', '4294967396'), null);
    assert.equal(writeErr(sim, 'advisor_mode', 'scan-time'), null);
    assert.equal(sim.sysfs.read('pages_to_scan'), '100\n');
  });

  test('sysfsValue: numbers where exact, text beyond 2^53, the bracketed advisor_mode word', () => {
    assert.equal(sysfsValue('pages_shared', '42\n'), 42);
    assert.equal(sysfsValue('general_profit', '-4096\n'), -4096);
    assert.equal(sysfsValue('advisor_max_pages_to_scan', '9007199254740991\n'), 9007199254740991);
    assert.equal(sysfsValue('advisor_max_pages_to_scan', '9007199254740993\n'), '9007199254740993');
    assert.equal(sysfsValue('advisor_mode', 'none [scan-time]\n'), 'scan-time');
  });
});

describe('kstrto parsers', () => {
  test('kstrtobool decides on the first character (second for o)', () => {
    for (const s of ['y', 'Yes', 't', '1', 'e', 'enable', 'on', 'ON'])
      assert.deepEqual(kstrtobool(s), { ok: true, value: true }, s);
    for (const s of ['n', 'no', 'f', '0', 'd', 'disable', 'off', 'of'])
      assert.deepEqual(kstrtobool(s), { ok: true, value: false }, s);
    for (const s of ['', 'x', 'o', 'ox', '2']) assert.equal(kstrtobool(s).ok, false, s);
  });

  test('kstrtouint / kstrtoint ranges', () => {
    assert.deepEqual(kstrtouint('4294967295'), { ok: true, value: 4294967295n });
    assert.deepEqual(kstrtouint('4294967296'), { ok: false, errno: 'ERANGE' });
    assert.deepEqual(kstrtouint('18446744073709551616'), { ok: false, errno: 'ERANGE' });
    assert.deepEqual(kstrtoint('-2147483648'), { ok: true, value: -2147483648n });
    assert.deepEqual(kstrtoint('2147483648'), { ok: false, errno: 'ERANGE' });
    assert.deepEqual(kstrtoint('-+1'), { ok: false, errno: 'EINVAL' });
    assert.deepEqual(kstrtoint('5\n\n'), { ok: false, errno: 'EINVAL' });
  });
});

test('an empty write succeeds and changes nothing (sysfs_kf_write returns 0 for count 0)', () => {
  const sim = new SimulatedHost({ memoryBytes: 64 * 2 ** 20 });
  for (const name of ['run', 'advisor_mode', 'max_page_sharing', 'use_zero_pages'])
    assert.equal(writeErr(sim, name, ''), null);
  assert.equal(sim.sysfs.read('max_page_sharing'), '256\n');
  assert.equal(writeErr(sim, 'pages_shared', ''), 'EACCES');
});
