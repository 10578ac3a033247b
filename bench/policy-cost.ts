/**
 * What each hardening policy costs on a small mixed workload (not a test: a
 * measure to read). 8 guests of 2048 pages in 4 tenants (labels; 2 guests
 * each): 60% pages of one image common to all, 10% zero pages, 30% unique.
 * After every full scan each guest touches 2% of its pages at random, half
 * reads, half writes of new contents. Reported after 12 passes and a final
 * one: the saving (pages_sharing + ksm_zero_pages) and its share of no
 * policy's, the faults the guests took on KSM or trapped pages, ksmd's CPU.
 *
 *   npx tsx bench/policy-cost.ts
 */
import { Rng } from '../src/fuzz/rng.ts';
import { POLICY_NAMES, type PolicyConfig } from '../src/policy/policy.ts';
import { SimulatedHost } from '../src/surface/simulated-host.ts';

const GUESTS = 8;
const PAGES = 2048;
const PASSES = 12;
const PAGE = 4096;

interface Cost {
  readonly saved: number;
  /** Mean over the passes of the saving right after the guests' accesses (before ksmd re-merges). */
  readonly savedAfterAccess: number;
  readonly cowKsm: number;
  readonly copyOnAccess: number;
  readonly ksmdCpuMs: number;
}

function run(policy: PolicyConfig, useZeroPages: boolean): Cost {
  const sim = new SimulatedHost({ memoryBytes: 256 * 2 ** 20, policy, contentMode: 'fingerprint' });
  const rng = new Rng(7);
  const guests: { pid: number; address: number }[] = [];
  for (let g = 0; g < GUESTS; g++) {
    const p = sim.host.spawn({ comm: `guest${g}`, label: `tenant${g >> 1}` });
    const address = sim.host.mmap(p.pid, { lengthBytes: PAGES * PAGE });
    for (let i = 0; i < PAGES; i++) {
      const [hi, lo] = i < PAGES * 0.6 ? [1, i] : i < PAGES * 0.7 ? [0, 0] : [2 + g, i];
      sim.host.writePageValue(p.pid, address + i * PAGE, hi, lo);
    }
    sim.host.madvise(p.pid, address, PAGES * PAGE, 'mergeable');
    guests.push({ pid: p.pid, address });
  }
  if (useZeroPages) sim.sysfs.write('use_zero_pages', '1');
  try {
    sim.sysfs.write('run', '1');
  } catch {
    return { saved: 0, savedAfterAccess: 0, cowKsm: 0, copyOnAccess: 0, ksmdCpuMs: 0 };
  }
  let cowKsm = 0;
  let copyOnAccess = 0;
  let savedAfterAccess = 0;
  // What is mapped now: KSM's own counters lag until ksmd revisits a page.
  const savingNow = (): number => sim.host.frames.usedFrames;
  const unmergedFrames = GUESTS * PAGES;
  for (let pass = 0; pass < PASSES; pass++) {
    sim.ksm.fullScans(1);
    for (const g of guests) {
      for (let k = 0; k < PAGES * 0.02; k++) {
        const at = g.address + rng.int(0, PAGES - 1) * PAGE;
        if (rng.chance(0.5)) sim.host.read(g.pid, at, 8);
        else sim.host.writePageValue(g.pid, at, 100 + pass, rng.nextU32());
        if (sim.host.lastAccessFault === 'cow-ksm') cowKsm++;
        if (sim.host.lastAccessFault === 'copy-on-access') copyOnAccess++;
      }
    }
    savedAfterAccess += unmergedFrames - savingNow();
  }
  sim.ksm.fullScans(1);
  const saved = sim.counter('pages_sharing') + sim.counter('ksm_zero_pages');
  return {
    saved,
    savedAfterAccess: Math.round(savedAfterAccess / PASSES),
    cowKsm,
    copyOnAccess,
    ksmdCpuMs: Math.round(sim.ksm.ksmdCpuNs / 1e6),
  };
}

for (const useZeroPages of [false, true]) {
  const none = run({ name: 'none' }, useZeroPages);
  console.log(`use_zero_pages=${useZeroPages ? 1 : 0}`);
  for (const name of POLICY_NAMES) {
    const c = run({ name }, useZeroPages);
    const share = (part: number, whole: number): string =>
      `${((100 * part) / whole).toFixed(1)}%`.padStart(6);
    console.log(
      `  ${name.padEnd(16)} saved ${String(c.saved).padStart(5)} pages (${share(c.saved, none.saved)}), after accesses ${String(c.savedAfterAccess).padStart(5)} (${share(c.savedAfterAccess, none.savedAfterAccess)})  cow-ksm ${String(c.cowKsm).padStart(4)}  copy-on-access ${String(c.copyOnAccess).padStart(4)}  ksmd ${c.ksmdCpuMs} ms`,
    );
  }
}
