/**
 * vusion: pages idle long enough to merge are trapped whether KSM merged them
 * or not, and any access copies them onto a random fresh frame (VUsion,
 * Oliverio et al., SOSP 2017), so a write cannot tell a merged page from an
 * unmerged one.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Rng } from '../fuzz/rng.ts';
import { PAGE_SIZE } from '../host/constants.ts';
import { type RegionHandle, scenario } from '../testing/scenario.ts';
import { SplitMix32 } from './random.ts';

const vusion = { policy: { name: 'vusion' } } as const;

describe('vusion', () => {
  test('a write to a merged page and a write to an idle unmerged page report the same fault', () => {
    const t = scenario(vusion);
    const a = t.process('A').mmap(1).fill(0x2a).madvise('mergeable');
    t.process('B').mmap(1).fill(0x2a).madvise('mergeable');
    const c = t.process('C').mmap(1).fill(0x77).madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 1, pages_sharing: 1, pages_unshared: 1 });
    a.write(0, [1]);
    const merged = t.host.lastAccessFault;
    c.write(0, [1]);
    const unmerged = t.host.lastAccessFault;
    assert.equal(merged, 'copy-on-access');
    assert.equal(unmerged, 'copy-on-access');
  });

  test('without the policy the two writes differ: the side channel vusion closes', () => {
    const t = scenario();
    const a = t.process('A').mmap(1).fill(0x2a).madvise('mergeable');
    t.process('B').mmap(1).fill(0x2a).madvise('mergeable');
    const c = t.process('C').mmap(1).fill(0x77).madvise('mergeable');
    t.ksmd.start();
    a.write(0, [1]);
    assert.equal(t.host.lastAccessFault, 'cow-ksm');
    c.write(0, [1]);
    assert.equal(t.host.lastAccessFault, 'none');
  });

  test('reads of trapped pages fault too, once; the copy reads back the contents', () => {
    const t = scenario(vusion);
    const a = t.process('A').mmap(2).fill(0x2a).madvise('mergeable');
    const c = t.process('C').mmap(1).fill(0x31).madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 1, pages_sharing: 1 });
    const before = a.frames()[0];
    assert.deepEqual(a.read(0), new Uint8Array(PAGE_SIZE).fill(0x2a));
    assert.equal(t.host.lastAccessFault, 'copy-on-access');
    assert.notEqual(a.frames()[0], before, 'the read moved the page to a fresh frame');
    a.read(0);
    assert.equal(t.host.lastAccessFault, 'none');
    assert.deepEqual(c.read(0), new Uint8Array(PAGE_SIZE).fill(0x31));
    assert.equal(t.host.lastAccessFault, 'copy-on-access');
    assert.equal(a.frames()[1], before, 'the untouched mapping keeps the KSM page');
  });

  test('a page written every pass is never trapped (it is not idle)', () => {
    const t = scenario(vusion);
    const a = t.process('A').mmap(1).fill(1).madvise('mergeable');
    t.write('run', '1');
    for (let pass = 0; pass < 4; pass++) {
      a.fill(pass + 10);
      t.ksmd.fullScans(1);
    }
    a.write(0, [1]);
    assert.equal(t.host.lastAccessFault, 'none');
  });

  test('merged pages nobody touches keep sharing; touched ones come back after they settle', () => {
    const t = scenario(vusion);
    const a = t.process('A').mmap(8).fill(0x2a).madvise('mergeable');
    t.process('B').mmap(8).fill(0x2a).madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ pages_shared: 1, pages_sharing: 15 });
    a.read(0);
    a.read(1);
    t.ksmd.fullScans(1);
    t.expectSysfs({ pages_shared: 1, pages_sharing: 15 });
    assert.equal(t.host.vmstat.cow_ksm, 2);
  });

  test('KSM zero pages (use_zero_pages) are trapped as well', () => {
    const t = scenario(vusion);
    t.write('use_zero_pages', '1');
    const a = t.process('A').mmap(1).fill(0).madvise('mergeable');
    t.ksmd.start();
    t.expectSysfs({ ksm_zero_pages: 1 });
    assert.deepEqual(a.read(0), new Uint8Array(PAGE_SIZE));
    assert.equal(t.host.lastAccessFault, 'copy-on-access');
    t.expectSysfs({ ksm_zero_pages: 0 });
  });

  test('the copy lands on a random frame: the seed decides, the same seed replays', () => {
    const landing = (seed: number): number[] => {
      const t = scenario({ ...vusion, seed });
      const r = t
        .process('A')
        .mmap(16)
        .fill((p) => p + 1)
        .madvise('mergeable');
      t.ksmd.start();
      for (let p = 0; p < 16; p++) r.read(p);
      return r.frames();
    };
    assert.deepEqual(landing(1), landing(1));
    assert.notDeepEqual(landing(1), landing(2));
    const frames = landing(3);
    const sorted = [...frames].sort((x, y) => x - y);
    assert.notDeepEqual(frames, sorted, 'not handed out in allocation order');
  });

  test('an injected random source is used', () => {
    let draws = 0;
    const source = new SplitMix32(9);
    const t = scenario({
      policy: { name: 'vusion' },
      random: {
        nextU32: () => {
          draws++;
          return source.nextU32();
        },
      },
    });
    const r = t.process('A').mmap(2).fill(3).madvise('mergeable');
    t.ksmd.start();
    r.read(0);
    assert.equal(draws, 1);
  });

  test('pinned pages are never trapped (KSM cannot merge them either)', () => {
    const t = scenario(vusion);
    const a = t.process('A').mmap(1).fill(5).madvise('mergeable');
    t.host.pin(a.owner.pid, a.address, PAGE_SIZE);
    t.ksmd.start();
    a.write(0, [1]);
    assert.equal(t.host.lastAccessFault, 'none');
  });
});

describe('vusion, random operations', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    test(`seed ${seed}: every process reads back what it wrote; invariants hold after every operation`, () => {
      const rng = new Rng(seed);
      const t = scenario({ ...vusion, seed, memoryBytes: 64 * 2 ** 20 });
      const pages = 6;
      interface Proc {
        region: RegionHandle;
        model: number[];
        alive: boolean;
      }
      const procs: Proc[] = [];
      const spawn = (): void => {
        const h = t.process(`P${procs.length}`);
        const region = h.mmap(pages).fill(0).madvise('mergeable');
        procs.push({ region, model: new Array<number>(pages).fill(0), alive: true });
      };
      spawn();
      spawn();
      t.write('use_zero_pages', rng.chance(0.5) ? '1' : '0');
      t.write('run', '1');
      const log: string[] = [];
      let copies = 0;
      let merged = 0;
      for (let op = 0; op < 300; op++) {
        const live = procs.filter((p) => p.alive);
        const p = rng.pick(live);
        const page = rng.int(0, pages - 1);
        const kind = rng.weighted({ write: 4, read: 4, scan: 3, fork: live.length < 5 ? 1 : 0, exit: 1 });
        log.push(`${kind} ${procs.indexOf(p)} ${page}`);
        try {
          switch (kind) {
            case 'write': {
              const value = rng.int(0, 3);
              p.region.fill(value, page, 1);
              p.model[page] = value;
              break;
            }
            case 'read': {
              const got = p.region.read(page);
              if (t.host.lastAccessFault === 'copy-on-access') copies++;
              assert.ok(
                got.every((b) => b === p.model[page]),
                `P${procs.indexOf(p)} page ${page}: read ${got[0]}, wrote ${p.model[page]}`,
              );
              break;
            }
            case 'scan':
              t.ksmd.scanPages(rng.int(1, 20));
              merged = Math.max(merged, t.read('pages_sharing') + t.read('ksm_zero_pages'));
              break;
            case 'fork': {
              const child = p.region.owner.fork(`P${procs.length}`);
              procs.push({ region: child.region(p.region), model: [...p.model], alive: true });
              break;
            }
            case 'exit':
              if (live.length > 1) {
                p.region.owner.exit();
                p.alive = false;
              }
              break;
          }
          t.verify();
        } catch (e) {
          throw new Error(`seed ${seed}, after ${log.join('; ')}: ${(e as Error).message}`);
        }
      }
      for (const p of procs.filter((q) => q.alive)) {
        for (let page = 0; page < pages; page++) {
          assert.ok(p.region.read(page).every((b) => b === p.model[page]));
        }
      }
      assert.ok(copies > 0 && merged > 0, `the run must merge and trap: ${copies} copies, ${merged} merged`);
    });
  }
});
