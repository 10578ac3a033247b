/**
 * Fingerprint mode (8 bytes per page instead of 4096) must give the very same
 * counters as byte mode on any workload whose pages are one 8-byte value
 * repeated: the same random operation sequence runs on two hosts, one per
 * mode, and every counter and every byte is compared after every operation.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { PAGE_SIZE } from '../host/constants.ts';
import { ErrnoError } from '../host/errno.ts';
import { FingerprintModeError } from '../host/frames.ts';
import { ksmStatOf } from '../surface/procfs.ts';
import { SimulatedHost } from '../surface/simulated-host.ts';

type Op =
  | { kind: 'value'; proc: number; page: number; value: number }
  | { kind: 'fork'; proc: number }
  | { kind: 'exit'; proc: number }
  | { kind: 'unmergeable'; proc: number }
  | { kind: 'scan'; pages: number }
  | { kind: 'full' }
  | { kind: 'set'; name: string; value: string };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('value' as const),
      proc: fc.nat(4),
      page: fc.nat(63),
      value: fc.nat(5),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('fork' as const), proc: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('exit' as const), proc: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unmergeable' as const), proc: fc.nat(4) }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('scan' as const), pages: fc.integer({ min: 1, max: 80 }) }),
  },
  { weight: 4, arbitrary: fc.constant({ kind: 'full' as const }) },
  {
    weight: 2,
    arbitrary: fc.oneof(
      fc.record({
        kind: fc.constant('set' as const),
        name: fc.constant('use_zero_pages'),
        value: fc.constantFrom('0', '1'),
      }),
      fc.record({
        kind: fc.constant('set' as const),
        name: fc.constant('max_page_sharing'),
        value: fc.constantFrom('2', '3', '256'),
      }),
      fc.record({
        kind: fc.constant('set' as const),
        name: fc.constant('run'),
        value: fc.constantFrom('1', '2'),
      }),
    ),
  },
);

/** Values chosen so that memcmp order and numeric order disagree if a mode got them wrong. */
const VALUES: ReadonlyArray<readonly [number, number]> = [
  [0, 0],
  [0, 1],
  [0x80000000, 0],
  [0x01020304, 0xffffffff],
  [0x01020304, 0x00000001],
  [0xffffffff, 0xfffffffe],
];

function twin(): { hosts: SimulatedHost[]; pids: number[][]; addr: number } {
  const hosts = [
    new SimulatedHost({ memoryBytes: 32 * 2 ** 20 }),
    new SimulatedHost({ memoryBytes: 32 * 2 ** 20, contentMode: 'fingerprint' }),
  ];
  const pids: number[][] = [[], []];
  let addr = 0;
  hosts.forEach((sim, k) => {
    for (let p = 0; p < 3; p++) {
      const pid = sim.host.spawn().pid;
      addr = sim.host.mmap(pid, { address: 0x100000000000, lengthBytes: 64 * PAGE_SIZE });
      for (let i = 0; i < 64; i++) {
        const [hi, lo] = VALUES[(i * 7 + p) % VALUES.length]!;
        sim.host.writePageValue(pid, addr + i * PAGE_SIZE, hi, lo);
      }
      sim.host.madvise(pid, addr, 64 * PAGE_SIZE, 'mergeable');
      pids[k]!.push(pid);
    }
    sim.sysfs.write('run', '1');
  });
  return { hosts, pids, addr };
}

function apply(sim: SimulatedHost, pids: number[], addr: number, op: Op): void {
  const pick = (i: number): number | undefined => (pids.length === 0 ? undefined : pids[i % pids.length]);
  switch (op.kind) {
    case 'value': {
      const pid = pick(op.proc);
      if (pid === undefined) return;
      const [hi, lo] = VALUES[op.value]!;
      sim.host.writePageValue(pid, addr + op.page * PAGE_SIZE, hi, lo);
      return;
    }
    case 'fork': {
      const pid = pick(op.proc);
      if (pid !== undefined && pids.length < 6) pids.push(sim.host.fork(pid).pid);
      return;
    }
    case 'exit': {
      const pid = pick(op.proc);
      if (pid === undefined) return;
      sim.host.exit(pid);
      pids.splice(pids.indexOf(pid), 1);
      return;
    }
    case 'unmergeable': {
      const pid = pick(op.proc);
      if (pid !== undefined) sim.host.madvise(pid, addr, 32 * PAGE_SIZE, 'unmergeable');
      return;
    }
    case 'scan':
      sim.ksm.scanPages(op.pages);
      return;
    case 'full':
      sim.ksm.fullScans(1);
      return;
    case 'set':
      try {
        sim.sysfs.write(op.name, op.value);
      } catch (e) {
        if (!(e instanceof ErrnoError && e.code === 'EBUSY')) throw e;
      }
      return;
  }
}

describe('fingerprint mode', () => {
  test('gives the same counters, stats and bytes as byte mode on random operation sequences', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 5, maxLength: 80, size: 'max' }), (ops) => {
        const { hosts, pids, addr } = twin();
        const [bytes, fp] = hosts as [SimulatedHost, SimulatedHost];
        for (const op of ops) {
          apply(bytes, pids[0]!, addr, op);
          apply(fp, pids[1]!, addr, op);
          assert.deepEqual(fp.ksm.counters(), bytes.ksm.counters(), `after ${JSON.stringify(op)}`);
          for (const [i, pid] of pids[0]!.entries()) {
            const other = pids[1]![i]!;
            assert.deepEqual(
              ksmStatOf(fp.ksm, fp.host.process(other).mm),
              ksmStatOf(bytes.ksm, bytes.host.process(pid).mm),
            );
            assert.deepEqual(
              fp.host.peek(other, addr, 64 * PAGE_SIZE),
              bytes.host.peek(pid, addr, 64 * PAGE_SIZE),
            );
          }
        }
      }),
      { numRuns: 60 },
    );
  });

  test('refuses a write that would not leave one 8-byte value repeated, and accepts one that does', () => {
    const sim = new SimulatedHost({ memoryBytes: 8 * 2 ** 20, contentMode: 'fingerprint' });
    const pid = sim.host.spawn().pid;
    const addr = sim.host.mmap(pid, { lengthBytes: PAGE_SIZE });
    assert.throws(() => sim.host.write(pid, addr + 5, Uint8Array.of(1)), FingerprintModeError);
    sim.host.write(pid, addr, new Uint8Array(PAGE_SIZE).fill(9));
    assert.deepEqual(sim.host.read(pid, addr, 16), new Uint8Array(16).fill(9));
  });

  test('holds 8 bytes of contents per frame: a 4 GiB host needs no page of bytes', () => {
    const sim = new SimulatedHost({ memoryBytes: 4 * 2 ** 30, contentMode: 'fingerprint' });
    const pid = sim.host.spawn().pid;
    const pages = 100_000;
    const addr = sim.host.mmap(pid, { lengthBytes: pages * PAGE_SIZE });
    const before = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < pages; i++) sim.host.writePageValue(pid, addr + i * PAGE_SIZE, 0, i % 1000);
    const grownBytes = process.memoryUsage().arrayBuffers - before;
    assert.ok(grownBytes < 16 * 2 ** 20, `array buffers grew by ${grownBytes} bytes for ${pages} pages`);
  });
});
