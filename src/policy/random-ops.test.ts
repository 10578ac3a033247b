/**
 * trust-domains and zero-pages-only under random operations: after every
 * operation the whole-host invariants hold, and so does what the policy
 * promises (no frame mapped across domains; no KSM page that is not zero).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Rng } from '../fuzz/rng.ts';
import { FRAME_KSM, ZERO_FRAME } from '../host/frames.ts';
import { type RegionHandle, type Scenario, scenario } from '../testing/scenario.ts';
import type { PolicyConfig } from './policy.ts';

interface Proc {
  readonly region: RegionHandle;
  readonly model: number[];
  alive: boolean;
}

const PAGES = 6;

/** Runs 250 random operations over processes labelled a, b or c; `check` runs after each. */
function randomRun(seed: number, policy: PolicyConfig, check: (t: Scenario, procs: Proc[]) => void): number {
  const rng = new Rng(seed);
  const t = scenario({ policy, memoryBytes: 64 * 2 ** 20 });
  const procs: Proc[] = [];
  const spawn = (): void => {
    const h = t.process(`P${procs.length}`, { label: rng.pick(['a', 'b', 'c']) });
    const region = h.mmap(PAGES).fill(0).madvise('mergeable');
    procs.push({ region, model: new Array<number>(PAGES).fill(0), alive: true });
  };
  for (let i = 0; i < 3; i++) spawn();
  t.write('use_zero_pages', rng.chance(0.5) ? '1' : '0');
  t.write('run', '1');
  let mostSharing = 0;
  const log: string[] = [];
  for (let op = 0; op < 250; op++) {
    const live = procs.filter((p) => p.alive);
    const p = rng.pick(live);
    const page = rng.int(0, PAGES - 1);
    const kind = rng.weighted({
      write: 4,
      read: 2,
      scan: 3,
      spawn: live.length < 6 ? 1 : 0,
      fork: 1,
      exit: 1,
    });
    log.push(`${kind} P${procs.indexOf(p)} ${page}`);
    try {
      switch (kind) {
        case 'write': {
          const value = rng.int(0, 2);
          p.region.fill(value, page, 1);
          p.model[page] = value;
          break;
        }
        case 'read':
          assert.ok(p.region.read(page).every((b) => b === p.model[page]));
          break;
        case 'scan':
          t.ksmd.scanPages(rng.int(1, 25));
          mostSharing = Math.max(mostSharing, t.read('pages_sharing'));
          break;
        case 'spawn':
          spawn();
          break;
        case 'fork':
          if (live.length < 7) {
            const child = p.region.owner.fork(`P${procs.length}`);
            procs.push({ region: child.region(p.region), model: [...p.model], alive: true });
          }
          break;
        case 'exit':
          if (live.length > 1) {
            p.region.owner.exit();
            p.alive = false;
          }
          break;
      }
      check(t, procs);
    } catch (e) {
      throw new Error(`seed ${seed}, after ${log.join('; ')}: ${(e as Error).message}`);
    }
  }
  return mostSharing;
}

describe('policies under random operations', () => {
  for (const seed of [11, 12, 13, 14]) {
    test(`trust-domains, seed ${seed}: no frame is mapped by two domains`, () => {
      const sharing = randomRun(seed, { name: 'trust-domains' }, (_t, procs) => {
        const owner = new Map<number, string>();
        for (const p of procs.filter((q) => q.alive)) {
          for (const frame of p.region.frames()) {
            if (frame === ZERO_FRAME) continue;
            const label = p.region.owner.proc.label;
            assert.equal(owner.get(frame) ?? label, label, `frame ${frame} mapped by two domains`);
            owner.set(frame, label);
          }
        }
      });
      assert.ok(sharing > 0, 'the run merged something within a domain');
    });

    test(`zero-pages-only, seed ${seed}: every KSM page is zero`, () => {
      randomRun(seed, { name: 'zero-pages-only' }, (t) => {
        const frames = t.host.frames;
        for (let f = 1; f < frames.frameCount; f++) {
          if (frames.flags[f]! & FRAME_KSM && frames.mapcount[f]! > 0)
            assert.ok(frames.isZero(f), `KSM page ${f}`);
        }
      });
    });
  }
});
