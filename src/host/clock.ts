import { assert } from './assert.ts';
import { HZ } from './constants.ts';

/**
 * The engine's only time source. Nothing in the core reads the wall clock, so a
 * run is a pure function of its inputs and replays exactly from a seed.
 */
export class VirtualClock {
  private nowNsValue = 0;

  get nowNs(): number {
    return this.nowNsValue;
  }

  get nowMs(): number {
    return this.nowNsValue / 1e6;
  }

  /** The kernel's tick counter at HZ (jiffies start at 0 here, not at the kernel's -5 minutes). */
  get jiffies(): number {
    return Math.floor((this.nowNsValue * HZ) / 1e9);
  }

  advanceNs(deltaNs: number): void {
    assert(
      deltaNs >= 0 && Number.isFinite(deltaNs),
      `clock cannot go backwards or jump to infinity: ${deltaNs}`,
    );
    this.nowNsValue += deltaNs;
  }

  advanceTo(nowNs: number): void {
    if (nowNs > this.nowNsValue) this.nowNsValue = nowNs;
  }
}
