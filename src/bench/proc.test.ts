import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import { ksmdPid } from '../simulate/kernel-run.ts';
import { kernelSkip } from '../testing/kernel-required.ts';
import {
  parseSchedstatNs,
  parseStatusKbLine,
  parseVmstatCounter,
  processCpuNs,
  readKsmdCpuNs,
  readPagesSwappedOut,
  readPeakRssBytes,
} from './proc.ts';

describe('bench /proc readers', () => {
  test('schedstat: the first field is ns on a CPU', () => {
    assert.equal(parseSchedstatNs('123456789 2000 17\n'), 123456789);
    assert.throws(() => parseSchedstatNs('garbage'), /schedstat: cannot read "garbage"/);
  });

  test('status and vmstat fields', () => {
    const status = 'Name:\tnode\nVmPeak:\t  900 kB\nVmHWM:\t    4096 kB\nVmRSS:\t 2048 kB\n';
    assert.equal(parseStatusKbLine(status, 'VmHWM'), 4096 * 1024);
    assert.throws(() => parseStatusKbLine(status, 'VmSwap'), /no VmSwap line/);
    assert.equal(parseVmstatCounter('pswpin 3\npswpout 42\n', 'pswpout'), 42);
    assert.throws(() => parseVmstatCounter('pswpin 3\n', 'pswpout'), /no pswpout line/);
  });

  test('this machine: peak RSS, swap-outs and CPU time read and move the right way', {
    skip: kernelSkip(process.platform === 'linux' ? false : 'Linux /proc only'),
  }, () => {
    const rss = readPeakRssBytes();
    assert.ok(rss > 10 * 2 ** 20, `peak RSS ${rss}`);
    assert.ok(readPagesSwappedOut() >= 0);
    const cpu0 = processCpuNs();
    let x = 0;
    for (let i = 0; i < 3e6; i++) x += i % 7;
    assert.ok(x > 0 && processCpuNs() > cpu0);
  });

  test("ksmd's CPU time never goes back", {
    skip: kernelSkip(existsSync('/sys/kernel/mm/ksm/run') ? false : 'no KSM in this kernel'),
  }, () => {
    const pid = ksmdPid();
    const a = readKsmdCpuNs(pid);
    assert.ok(readKsmdCpuNs(pid) >= a);
  });
});
