/**
 * Steps the real ksmd one full pass at a time (linux-ksm-behaviour.md, "Stepping
 * the real ksmd one full pass at a time"; mm/ksm.c `ksm_scan_thread`):
 *
 * ```c
 * while (!kthread_should_stop()) {
 *     mutex_lock(&ksm_thread_mutex);
 *     if (ksmd_should_run())                     // run has MERGE and the mm list is not empty
 *         ksm_do_scan(ksm_thread_pages_to_scan); // one batch; a pass always ends a batch
 *     mutex_unlock(&ksm_thread_mutex);
 *     if (ksmd_should_run()) {                   // (T) timed wait, on ksm_iter_wait
 *         sleep_ms = READ_ONCE(ksm_thread_sleep_millisecs);
 *         wait_event_freezable_timeout(ksm_iter_wait,
 *             sleep_ms != READ_ONCE(ksm_thread_sleep_millisecs), msecs_to_jiffies(sleep_ms));
 *     } else {                                   // (U) untimed wait, on ksm_thread_wait
 *         wait_event_freezable(ksm_thread_wait, ksmd_should_run() || kthread_should_stop());
 *     }
 * }
 * ```
 *
 * Why each setting:
 * - sleep_millisecs 3600000 (or 3600001): ksmd never wakes by itself, so every
 *   batch it runs is one we asked for. A write of the *other* value wakes a
 *   ksmd in (T) (its condition is "the value changed"); alternating the two
 *   values makes every such write a change.
 * - pages_to_scan 10000000 while a pass is wanted: one batch never runs out of
 *   budget, and since the end of a pass ends a batch, one wake-up is exactly
 *   one whole pass.
 * - pages_to_scan 0 at every other time (the brake): then any wake-up we did
 *   not plan runs `ksm_do_scan(0)`, whose loop body never executes, so it cannot
 *   process a page or complete a pass. This is how the "registration into an
 *   empty mm list wakes ksmd" trap (`__ksm_enter` wakes ksm_thread_wait when the
 *   list was empty) is handled: with run=1 the registration does wake ksmd, and
 *   ksmd does nothing. The same goes for a workload writing run=1 (run_store
 *   wakes ksmd even when the value is unchanged) or sleep_millisecs between
 *   scans. So run itself never has to be faked: it always reads what the
 *   workload wrote.
 *
 * One pass, as done by `pass()`:
 * 1. Wait until ksmd sleeps in (T) or (U): state S with wchan ksm_scan_thread
 *    (inside a batch it is running, or in D, or S somewhere else).
 * 2. Note full_scans, pages_scanned and ksmd's voluntary context switches.
 * 3. Kick: write the other sleep_millisecs value (wakes (T)), then run=1 (wakes
 *    (U)). Exactly one batch follows in every case: from (T) the sleep write
 *    wakes it and the run write finds nobody on ksm_thread_wait; from (U) the
 *    sleep write finds nobody on ksm_iter_wait and the run write wakes it; if
 *    ksmd was woken from (T) with run still 0 it re-checks should_run before
 *    sleeping in (U) and sees our run=1, or is woken by it. After the batch it
 *    reads the new sleep value, so no kick is left over to start a second one.
 * 4. Poll until full_scans moved (then wait for ksmd to be asleep again, so the
 *    counters are read from a quiet kernel), or until ksmd has slept again
 *    (context switches moved, and it is back in a wait) without the pass: then
 *    its mm list was empty (should_run false), see below. A timeout gives a
 *    clear error.
 *
 * When no mm is registered, ksmd does not scan: `ksmd_should_run()` is false,
 * the kick wakes it, it goes straight back to (U), and full_scans does not move.
 * `scan(N)` does what ksmd does: it stops at the first pass that ksmd would not
 * start, so full_scans grows by less than N (possibly 0), and that is not an
 * error. The simulator mirrors this (`Ksm.fullScans` loops while
 * `shouldRun()`). The list can also empty itself in the middle of `scan(N)`: a
 * pass that finds an mm with no VM_MERGEABLE VMA left drops its slot, and the
 * next kick finds the list empty.
 *
 * With advisor_mode scan-time the advisor owns pages_to_scan (writes are
 * EINVAL): there is no brake, and a pass may span several batches. `pass()`
 * then kicks again after each batch that processed pages without ending the
 * pass (a batch that stops before the pass's end has used all its
 * pages_to_scan budget). Unplanned wake-ups can then run a batch outside
 * `scan()`; `scan()` detects a full_scans that moved behind its back and throws.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { readKsm, readKsmNumber, selectedWord, writeKsmOrThrow } from './ksm-sysfs.ts';
import { findKsmdPid } from './ksmd-thread.ts';

const SLEEP_MS_A = 3_600_000;
const SLEEP_MS_B = 3_600_001;
/** A batch budget no pass reaches: 40 GB of 4 KiB pages. */
const PAGES_TO_SCAN_ONE_BATCH = 10_000_000;
const PAGES_TO_SCAN_BRAKE = 0;

export interface KsmdStepperOptions {
  /** Longest a single pass may take before `scan` gives up; default 120 s. */
  readonly passTimeoutMs?: number;
}

interface KsmdSample {
  readonly state: string;
  readonly wchan: string;
  readonly voluntarySwitches: number;
}

export class KsmdStepper {
  private readonly ksmdPid: number;
  private readonly passTimeoutMs: number;
  /** full_scans as last seen by us; a different value at the next scan means ksmd ran behind our back. */
  private expectedFullScans: number;

  constructor(options: KsmdStepperOptions = {}) {
    this.ksmdPid = findKsmdPid();
    this.passTimeoutMs = options.passTimeoutMs ?? 120_000;
    this.expectedFullScans = readKsmNumber('full_scans');
  }

  get pid(): number {
    return this.ksmdPid;
  }

  /** The stepping sleep value currently in the file (one of the two). */
  get sleepMs(): number {
    return readKsmNumber('sleep_millisecs') === SLEEP_MS_A ? SLEEP_MS_A : SLEEP_MS_B;
  }

  /** True while the scan-time advisor owns pages_to_scan. */
  advisorOwnsPagesToScan(): boolean {
    return selectedWord(readKsm('advisor_mode')) === 'scan-time';
  }

  /**
   * Puts ksmd under our control: an hour-long sleep and the brake. Call after
   * any write that may have changed sleep_millisecs or pages_to_scan.
   */
  hold(): void {
    const sleepMs = readKsmNumber('sleep_millisecs');
    if (sleepMs !== SLEEP_MS_A && sleepMs !== SLEEP_MS_B)
      writeKsmOrThrow('sleep_millisecs', String(SLEEP_MS_A));
    if (!this.advisorOwnsPagesToScan() && readKsmNumber('pages_to_scan') !== PAGES_TO_SCAN_BRAKE) {
      writeKsmOrThrow('pages_to_scan', String(PAGES_TO_SCAN_BRAKE));
    }
  }

  /** Records full_scans as it is now (after a write that may reset it, such as run=2). */
  noteFullScans(): void {
    this.expectedFullScans = readKsmNumber('full_scans');
  }

  /**
   * Lets ksmd complete up to `passes` full passes, run set to 1 as needed.
   * Returns how many it completed: fewer only when ksmd's mm list was empty
   * (see the top of this file).
   */
  async scan(passes: number): Promise<number> {
    if (!Number.isSafeInteger(passes) || passes < 0) throw new Error(`scan: bad number of passes ${passes}`);
    const advisor = this.advisorOwnsPagesToScan();
    const fullScans = readKsmNumber('full_scans');
    if (fullScans !== this.expectedFullScans) {
      throw new Error(
        `ksmd completed passes outside scan(): full_scans is ${fullScans}, expected ${this.expectedFullScans}` +
          (advisor ? ' (advisor_mode scan-time leaves ksmd without a brake between scans)' : ''),
      );
    }
    // run=1 while the brake is still on: ksmd may wake, and does nothing. (With
    // the advisor there is no brake, and the first kick writes run=1 anyway.)
    if ((passes === 0 || !advisor) && readKsm('run') !== '1') writeKsmOrThrow('run', '1');
    if (passes === 0) return 0;
    let done = 0;
    try {
      if (advisor) {
        if (readKsmNumber('pages_to_scan') === 0) {
          throw new Error('ksmd cannot complete a pass: the scan-time advisor has set pages_to_scan to 0');
        }
      } else {
        await this.waitAsleep('before arming');
        writeKsmOrThrow('pages_to_scan', String(PAGES_TO_SCAN_ONE_BATCH));
      }
      while (done < passes && (await this.pass(done + 1, passes))) done++;
    } finally {
      if (!advisor) writeKsmOrThrow('pages_to_scan', String(PAGES_TO_SCAN_BRAKE));
      this.noteFullScans();
    }
    return done;
  }

  /** One pass; false when ksmd woke and found no mm to scan. */
  private async pass(index: number, of: number): Promise<boolean> {
    await this.waitAsleep(`before pass ${index} of ${of}`);
    const fullScansBefore = readKsmNumber('full_scans');
    let pagesScannedBefore = readKsmNumber('pages_scanned');
    let switchesBefore = this.sample().voluntarySwitches;
    this.kick(true);
    const deadline = Date.now() + this.passTimeoutMs;
    for (let poll = 0; ; poll++) {
      if (readKsmNumber('full_scans') !== fullScansBefore) return this.passDone(fullScansBefore);
      const s = this.sample();
      if (s.voluntarySwitches !== switchesBefore && isInItsWait(s)) {
        // Asleep again after our kick; full_scans is read after seeing that.
        if (readKsmNumber('full_scans') !== fullScansBefore) return this.passDone(fullScansBefore);
        const pagesScanned = readKsmNumber('pages_scanned');
        if (pagesScanned === pagesScannedBefore) return false; // should_run was false: no mm registered
        // A batch ended on its budget before the pass's end (only with the advisor's pages_to_scan).
        pagesScannedBefore = pagesScanned;
        switchesBefore = s.voluntarySwitches;
        this.kick(false);
      }
      if (Date.now() > deadline) {
        throw new Error(
          `ksmd did not complete pass ${index} of ${of} within ${this.passTimeoutMs} ms: full_scans stayed at ` +
            `${fullScansBefore}, pages_scanned is ${readKsmNumber('pages_scanned')}, ksmd (pid ${this.ksmdPid}) ` +
            `is in state ${s.state} at ${s.wchan}`,
        );
      }
      await sleep(poll < 20 ? 0 : 1);
    }
  }

  private async passDone(fullScansBefore: number): Promise<true> {
    await this.waitAsleep('after a pass');
    const fullScans = readKsmNumber('full_scans');
    if (fullScans !== fullScansBefore + 1) {
      throw new Error(
        `ksmd ran ${fullScans - fullScansBefore} passes for one kick (full_scans ${fullScans})`,
      );
    }
    return true;
  }

  /** Wakes ksmd from either wait (see step 3 at the top); `withRun` false: the timed wait only. */
  private kick(withRun: boolean): void {
    writeKsmOrThrow('sleep_millisecs', String(this.sleepMs === SLEEP_MS_A ? SLEEP_MS_B : SLEEP_MS_A));
    if (withRun) writeKsmOrThrow('run', '1');
  }

  private sample(): KsmdSample {
    const stat = readFileSync(`/proc/${this.ksmdPid}/stat`, 'latin1');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? '?';
    const wchan = readFileSync(`/proc/${this.ksmdPid}/wchan`, 'latin1').trim();
    const status = readFileSync(`/proc/${this.ksmdPid}/status`, 'latin1');
    const voluntarySwitches = Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status)?.[1] ?? Number.NaN);
    return { state, wchan, voluntarySwitches };
  }

  /** Waits until ksmd sleeps in one of its two waits (not inside a batch). */
  private async waitAsleep(when: string): Promise<void> {
    const deadline = Date.now() + this.passTimeoutMs;
    for (let poll = 0; ; poll++) {
      const s = this.sample();
      if (isInItsWait(s)) return;
      if (Date.now() > deadline) {
        throw new Error(
          `ksmd (pid ${this.ksmdPid}) did not go back to sleep ${when} within ${this.passTimeoutMs} ms ` +
            `(state ${s.state} at ${s.wchan})`,
        );
      }
      await sleep(poll < 20 ? 0 : 1);
    }
  }
}

/**
 * ksmd asleep in (T) or (U): interruptible sleep, and the first non-scheduler
 * function of its stack is ksm_scan_thread itself (inside a batch it would be
 * a callee, or it would be running). A kernel that hides wchan prints "0":
 * then the state alone decides.
 */
function isInItsWait(s: KsmdSample): boolean {
  return s.state === 'S' && (s.wchan === 'ksm_scan_thread' || s.wchan === '0');
}
