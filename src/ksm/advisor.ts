/**
 * The scan-time advisor's arithmetic: mm/ksm.c scan_time_advisor(), as a pure
 * function of its inputs, so that the engine's ksmd and a replay of the real
 * ksmd's measured scan times and CPU time (src/simulate/advisor-replay.test.ts)
 * run the very same code.
 *
 * Every quantity is the kernel's C type, in BigInt: unsigned long (64 bits)
 * wraps, unsigned int (32 bits) wraps, division truncates. The settings are
 * unsigned longs that sysfs accepts up to 18446744073709551615, beyond a JS
 * number's exact range, and `ksm_thread_pages_to_scan * 100` is computed in
 * unsigned int (both operands are 32-bit), so it wraps above 42949672 pages.
 */

const U64 = (v: bigint): bigint => BigInt.asUintN(64, v);
const U32 = (v: bigint): bigint => BigInt.asUintN(32, v);

/** KSM_ADVISOR_MIN_CPU: the floor of the CPU-percent cap. */
const ADVISOR_MIN_CPU = 10n;
/** EWMA_WEIGHT: the weight of the newest change sample, in percent. */
const EWMA_WEIGHT = 30n;

/** Mirrors `struct advisor_ctx` (minus start_scan, which the caller keeps): zeroed by set_advisor_defaults(). */
export interface AdvisorCtx {
  /** Last pass's scan time in seconds (unsigned long), 0 before the first. */
  readonly scanTimeS: bigint;
  /** The EWMA change factor in percent (unsigned long). */
  readonly change: bigint;
  /** ksmd's CPU time at the last pass end, ns (task_sched_runtime). */
  readonly cpuTimeNs: bigint;
}

export const ADVISOR_CTX_ZERO: AdvisorCtx = { scanTimeS: 0n, change: 0n, cpuTimeNs: 0n };

/** The advisor files' values (ksm_advisor_*), exactly as sysfs holds them. */
export interface AdvisorSettings {
  /** advisor_max_cpu: unsigned int. */
  readonly maxCpu: number;
  /** advisor_max_pages_to_scan: unsigned long. */
  readonly maxPagesToScan: bigint;
  /** advisor_target_scan_time: unsigned long, seconds. */
  readonly targetScanTimeS: bigint;
}

export interface AdvisorInputs {
  /** ktime_ms_delta(ktime_get(), advisor_ctx.start_scan): the pass's length in ms. */
  readonly passMs: number;
  /** task_sched_runtime(ksmd) at the pass end, ns. */
  readonly cpuTimeNs: bigint;
  /** ksm_thread_pages_to_scan during the pass (unsigned int). */
  readonly pagesToScan: number;
}

export interface AdvisorResult {
  /** The new ksm_thread_pages_to_scan (the unsigned long result stored into an unsigned int). */
  readonly pagesToScan: number;
  readonly ctx: AdvisorCtx;
  /** What the ksm_advisor tracepoint reports beside pages_to_scan. */
  readonly scanTimeS: number;
  readonly cpuPercent: number;
}

const min = (a: bigint, b: bigint): bigint => (a < b ? a : b);
const max = (a: bigint, b: bigint): bigint => (a > b ? a : b);
/** The kernel's `x ? x : 1`. */
const orOne = (v: bigint): bigint => (v === 0n ? 1n : v);

/** scan_time_advisor(): the new pages_to_scan from one pass's time and ksmd's CPU time. */
export function scanTimeAdvisor(
  ctx: AdvisorCtx,
  settings: AdvisorSettings,
  inputs: AdvisorInputs,
): AdvisorResult {
  if (!Number.isSafeInteger(inputs.passMs) || inputs.passMs < 0)
    throw new RangeError(`scanTimeAdvisor: passMs ${inputs.passMs} is not a whole number of ms >= 0`);
  const pagesToScan = BigInt(inputs.pagesToScan >>> 0);
  // div_s64() of a non-negative ms delta by MSEC_PER_SEC.
  const scanTime = orOne(BigInt(inputs.passMs) / 1000n);

  const cpuTimeDiffMs = U64(inputs.cpuTimeNs - ctx.cpuTimeNs) / 1000n / 1000n;
  const cpuPercent = orOne(U32(U64(cpuTimeDiffMs * 100n) / U64(scanTime * 1000n)));
  const lastScanTime = ctx.scanTimeS !== 0n ? ctx.scanTimeS : scanTime;

  const factor = orOne(U64(settings.targetScanTimeS * 100n) / scanTime);
  let change = orOne(U64(scanTime * 100n) / lastScanTime);
  change = U64(U64((100n - EWMA_WEIGHT) * ctx.change) + EWMA_WEIGHT * change) / 100n;

  let pages = U32(pagesToScan * 100n) / factor;
  pages = U64(pages * change) / 100n;

  const perPageCost = orOne(U32(pagesToScan / cpuPercent));
  pages = min(pages, U64(perPageCost * BigInt(settings.maxCpu >>> 0)));
  pages = max(pages, U64(perPageCost * ADVISOR_MIN_CPU));
  pages = min(pages, settings.maxPagesToScan);

  return {
    pagesToScan: Number(U32(pages)),
    ctx: { scanTimeS: scanTime, change, cpuTimeNs: inputs.cpuTimeNs },
    scanTimeS: Number(scanTime),
    cpuPercent: Number(cpuPercent),
  };
}
