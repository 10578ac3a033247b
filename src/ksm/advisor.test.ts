/**
 * scan_time_advisor()'s arithmetic (mm/ksm.c), in the kernel's C types: the
 * worked example of the reference (§3.2), the EWMA's start from zero, and the
 * wraps a JS number would get wrong (unsigned int pages_to_scan * 100, the
 * unsigned long settings up to 2^64 - 1).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ADVISOR_CTX_ZERO, type AdvisorSettings, scanTimeAdvisor } from './advisor.ts';

const DEFAULTS: AdvisorSettings = { maxCpu: 70, maxPagesToScan: 30000n, targetScanTimeS: 200n };
const MS = 1_000_000n;

describe('scanTimeAdvisor', () => {
  test('the reference example: 500 pages, 50 s pass, 5 s of CPU: 500 again (the 10% floor)', () => {
    const r = scanTimeAdvisor(ADVISOR_CTX_ZERO, DEFAULTS, {
      passMs: 50_000,
      cpuTimeNs: 5000n * MS,
      pagesToScan: 500,
    });
    assert.deepEqual(r, {
      pagesToScan: 500,
      ctx: { scanTimeS: 50n, change: 30n, cpuTimeNs: 5000n * MS },
      scanTimeS: 50,
      cpuPercent: 10,
    });
  });

  test('a short pass under a long target grows pages_to_scan up to the CPU cap; the EWMA carries over', () => {
    // 2 s passes, target 20 s: factor 1000, pages shrink by the factor and grow by the change.
    const settings = { ...DEFAULTS, targetScanTimeS: 1n };
    const first = scanTimeAdvisor(ADVISOR_CTX_ZERO, settings, {
      passMs: 2_999,
      cpuTimeNs: 1_000n * MS,
      pagesToScan: 1000,
    });
    // scan_time 2 s, cpu 1000 ms → 50%; factor 50; change ewma(0, 100) = 30; pages 1000*100/50*30/100 = 600;
    // per_page_cost 1000/50 = 20: cap 20*70 = 1400, floor 200.
    assert.deepEqual([first.pagesToScan, first.cpuPercent, first.scanTimeS], [600, 50, 2]);
    const second = scanTimeAdvisor(first.ctx, settings, {
      passMs: 2_000,
      cpuTimeNs: 1_500n * MS,
      pagesToScan: first.pagesToScan,
    });
    // cpu 500 ms over 2 s → 25%; change ewma(30, 100) = 51; pages 600*100/50*51/100 = 612; cap 24*70.
    assert.deepEqual([second.pagesToScan, second.cpuPercent, second.ctx.change], [612, 25, 51n]);
  });

  test('pages_to_scan * 100 wraps in unsigned int; the result is stored into 32 bits', () => {
    const settings: AdvisorSettings = {
      maxCpu: 4294967295,
      maxPagesToScan: 18446744073709551615n,
      targetScanTimeS: 1n,
    };
    // 50,000,000 * 100 = 5e9 wraps to 705,032,704 before the division by factor 100.
    const r = scanTimeAdvisor(ADVISOR_CTX_ZERO, settings, {
      passMs: 1_000,
      cpuTimeNs: 0n,
      pagesToScan: 50_000_000,
    });
    // pages = 705032704 / 100 = 7050327, * ewma(0, 100)=30 / 100 = 2115098; cpu 0 → 1%:
    // per_page_cost 50,000,000, floor 500,000,000 wins.
    assert.equal(r.pagesToScan, 500_000_000);
    const capped = scanTimeAdvisor(
      ADVISOR_CTX_ZERO,
      { ...settings, maxPagesToScan: 2n ** 40n + 7n },
      {
        passMs: 1_000,
        cpuTimeNs: 0n,
        pagesToScan: 4294967295,
      },
    );
    // per_page_cost * 10 = 42949672950 (above 2^32) is the floor; the unsigned int keeps its low 32 bits.
    assert.equal(capped.pagesToScan, Number(42949672950n % 2n ** 32n));
  });

  test('a pass shorter than a second counts as one second; a negative length is refused', () => {
    const r = scanTimeAdvisor(ADVISOR_CTX_ZERO, DEFAULTS, { passMs: 400, cpuTimeNs: 0n, pagesToScan: 500 });
    assert.equal(r.scanTimeS, 1);
    assert.throws(
      () => scanTimeAdvisor(ADVISOR_CTX_ZERO, DEFAULTS, { passMs: -1, cpuTimeNs: 0n, pagesToScan: 500 }),
      /passMs -1 is not a whole number of ms >= 0/,
    );
  });
});
