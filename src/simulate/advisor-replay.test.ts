/**
 * The scan-time advisor against the real one: the real ksmd runs with
 * advisor_mode scan-time while its full scans are watched (full_scans,
 * pages_scanned and pages_to_scan every 2 ms, ksmd's CPU time from
 * /proc/<ksmd>/schedstat); each pass's length and the CPU time at its end are
 * then fed to the engine's advisor (src/ksm/advisor.ts, the code the engine's
 * ksmd runs), which must choose the kernel's pages_to_scan within 5% after
 * every pass, over ten passes or more. The engine's choices are chained: each
 * pass's input is the engine's own previous choice and context.
 *
 * What userspace cannot see exactly is when a pass started and ended (the
 * kernel reads ktime inside the batch): only that the first batch ran between
 * two polls (pages_scanned moved) and that the last did (full_scans moved).
 * Polls are 2 ms apart when the machine lets this process run, much more
 * when others load it. The advisor truncates the pass to whole seconds: when
 * the bounds of a pass's length straddle a whole second, each candidate is
 * tried, and the one whose result is the kernel's carries the context on.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ADVISOR_CTX_ZERO, type AdvisorCtx, type AdvisorSettings, scanTimeAdvisor } from '../ksm/advisor.ts';
import { kernelSkip } from '../testing/kernel-required.ts';
import { kernelRunUnavailable, ksmdPid, ksmdSchedstat, runOnKernel } from './kernel-run.ts';
import { parseScenario } from './scenario.ts';

const POLL_MS = 2;
const MIN_PASSES = 10;

const SCENARIO = parseScenario(
  `version: 1
name: advisor
host: { memory: 256MiB }
ksm: { advisor_mode: scan-time, advisor_target_scan_time: 3, advisor_max_cpu: 40, sleep_millisecs: 4 }
run: { duration: 20s, sample_every: ${POLL_MS}ms }
groups:
  - name: guest
    count: 4
    memory: 32MiB
    content:
      - { share: 0.5, image: base }
      - { share: 0.5, unique: true }
`,
  'advisor.yaml',
);
const SETTINGS: AdvisorSettings = { maxCpu: 40, maxPagesToScan: 30000n, targetScanTimeS: 3n };
/** advisor_min_pages_to_scan's default: what switching the mode on sets. */
const FIRST_PAGES_TO_SCAN = 500;

interface Poll {
  readonly tMs: number;
  readonly fullScans: number;
  readonly pagesScanned: number;
  readonly pagesToScan: number;
  /** ksmd's CPU since boot: the advisor's first pass counts all of it (its context starts at 0). */
  readonly cpuNs: number;
}

/** One full pass as userspace saw it, and the pages_to_scan the kernel chose at its end. */
interface PassRecord {
  /** The pass's length lies between these (the polls around its first and its last batch). */
  readonly minMs: number;
  readonly maxMs: number;
  readonly cpuNs: number;
  readonly kernelChoice: number;
}

/**
 * The passes the polls show, up to the first one that cannot be told apart
 * (two ended between two polls, or a pass began before the previous poll
 * saw the last one end): the context of every later pass depends on it.
 */
function passesOf(polls: readonly Poll[]): { passes: PassRecord[]; cutAtMs?: number } {
  const passes: PassRecord[] = [];
  let start: { readonly before: number; readonly at: number } | undefined;
  let scannedAtEnd = 0;
  for (let i = 1; i < polls.length; i++) {
    const p = polls[i]!;
    const prev = polls[i - 1]!;
    if (start === undefined && p.pagesScanned > scannedAtEnd) start = { before: prev.tMs, at: p.tMs };
    if (p.fullScans === prev.fullScans) continue;
    if (p.fullScans !== prev.fullScans + 1 || start === undefined || start.at === p.tMs)
      return { passes, cutAtMs: p.tMs };
    passes.push({
      minMs: prev.tMs - start.at,
      maxMs: p.tMs - start.before,
      cpuNs: p.cpuNs,
      kernelChoice: p.pagesToScan,
    });
    start = undefined;
    scannedAtEnd = p.pagesScanned;
  }
  return { passes };
}

/** The pass lengths the advisor may have measured, one per whole second the bounds allow. */
function candidateMs(pass: PassRecord): number[] {
  const out: number[] = [];
  for (let s = Math.floor(Math.max(0, pass.minMs) / 1000); s <= Math.floor(pass.maxMs / 1000); s++)
    out.push(Math.min(Math.max(s * 1000, Math.round(pass.minMs)), Math.round(pass.maxMs)));
  return out;
}

describe('the scan-time advisor against the real one', () => {
  const reason = kernelRunUnavailable();
  it(`chooses the kernel's pages_to_scan within 5% after each of ${MIN_PASSES} passes or more`, {
    skip: kernelSkip(reason === undefined ? false : `kernel backend unavailable: ${reason}`),
    timeout: 300_000,
  }, async (t) => {
    const pid = ksmdPid();
    const polls: Poll[] = [];
    await runOnKernel(SCENARIO, {
      onSample: (s) => {
        polls.push({
          tMs: s.tMs,
          fullScans: s.full_scans,
          pagesScanned: s.pages_scanned,
          pagesToScan: s.pages_to_scan,
          cpuNs: ksmdSchedstat(pid).cpuNs,
        });
      },
    });
    const { passes, cutAtMs } = passesOf(polls);
    if (cutAtMs !== undefined)
      t.diagnostic(`passes after ${cutAtMs.toFixed(0)} ms left out: the polls missed a pass end`);
    assert.ok(passes.length >= MIN_PASSES, `only ${passes.length} full passes could be told apart`);

    let ctx: AdvisorCtx = ADVISOR_CTX_ZERO;
    let pagesToScan = FIRST_PAGES_TO_SCAN;
    const problems: string[] = [];
    let ambiguous = 0;
    for (const [i, pass] of passes.entries()) {
      const tries = candidateMs(pass).map((passMs) => ({
        passMs,
        r: scanTimeAdvisor(ctx, SETTINGS, { passMs, cpuTimeNs: BigInt(pass.cpuNs), pagesToScan }),
      }));
      if (tries.length > 1) ambiguous++;
      const off = (x: number): number => Math.abs(x - pass.kernelChoice) / pass.kernelChoice;
      const best = tries.reduce((a, b) => (off(b.r.pagesToScan) < off(a.r.pagesToScan) ? b : a));
      t.diagnostic(
        `pass ${i + 1}: ${pass.minMs.toFixed(0)}-${pass.maxMs.toFixed(0)} ms, ksmd CPU ${(pass.cpuNs / 1e6).toFixed(0)} ms ` +
          `since boot: pages_to_scan ${pagesToScan} -> kernel ${pass.kernelChoice}, engine ${best.r.pagesToScan} ` +
          `(scan_time ${best.r.scanTimeS} s, cpu ${best.r.cpuPercent}%)`,
      );
      if (off(best.r.pagesToScan) > 0.05)
        problems.push(`pass ${i + 1}: kernel ${pass.kernelChoice}, engine ${best.r.pagesToScan}`);
      ctx = best.r.ctx;
      pagesToScan = best.r.pagesToScan;
    }
    t.diagnostic(`${passes.length} passes, ${ambiguous} of them with two candidate lengths in whole seconds`);
    assert.deepEqual(problems, []);
    // The run must have made the advisor work: the first pass's CPU since boot, the 10% floor, the EWMA,
    // the cap; it ends pinned at advisor_max_pages_to_scan (every pass then takes under a second).
    const choices = new Set(passes.map((p) => p.kernelChoice));
    assert.ok(choices.size >= 5, `the kernel chose only ${[...choices].join(', ')}`);
  });
});
