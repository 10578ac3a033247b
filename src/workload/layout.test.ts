import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AddressLayout, LAYOUT_START_ADDRESS, regionStrideBytes } from './layout.ts';

const MiB = 1024 * 1024;

describe('region layout', () => {
  test('the stride is the size rounded up to 2 MiB, plus a 2 MiB gap', () => {
    assert.equal(regionStrideBytes(1), 4 * MiB);
    assert.equal(regionStrideBytes(512), 4 * MiB); // exactly 2 MiB
    assert.equal(regionStrideBytes(513), 6 * MiB);
    assert.equal(regionStrideBytes(1024), 6 * MiB);
  });

  test('regions of a process follow each other from 0x100000000000; each process has its own cursor', () => {
    const layout = new AddressLayout();
    layout.spawn('a');
    layout.spawn('b');
    assert.equal(layout.place('a', 'r1', 1), 0x1000_0000_0000);
    assert.equal(layout.place('a', 'r2', 1024), 0x1000_0040_0000);
    assert.equal(layout.place('a', 'r3', 1), 0x1000_00a0_0000);
    assert.equal(layout.place('b', 'r1', 10), LAYOUT_START_ADDRESS);
    for (const region of ['r1', 'r2', 'r3'])
      assert.equal((layout.addressOf('a', region) ?? 1) % (2 * MiB), 0);
  });

  test('an unmapped region leaves its space unused', () => {
    const layout = new AddressLayout();
    layout.spawn('a');
    layout.place('a', 'r1', 1);
    layout.unmap('a', 'r1');
    assert.equal(layout.addressOf('a', 'r1'), undefined);
    assert.equal(layout.place('a', 'r1', 1), LAYOUT_START_ADDRESS + 4 * MiB);
  });

  test("a forked child copies its parent's cursor and regions, then goes its own way", () => {
    const layout = new AddressLayout();
    layout.spawn('a');
    layout.place('a', 'r1', 600);
    layout.fork('a', 'c');
    assert.equal(layout.addressOf('c', 'r1'), LAYOUT_START_ADDRESS);
    assert.equal(layout.cursorOf('c'), LAYOUT_START_ADDRESS + 6 * MiB);
    assert.equal(layout.place('c', 'r2', 1), LAYOUT_START_ADDRESS + 6 * MiB);
    assert.equal(layout.place('a', 'r2', 600), LAYOUT_START_ADDRESS + 6 * MiB);
    assert.equal(layout.cursorOf('a'), LAYOUT_START_ADDRESS + 12 * MiB);
    layout.exit('c');
    layout.fork('a', 'c');
    assert.equal(layout.cursorOf('c'), LAYOUT_START_ADDRESS + 12 * MiB);
  });
});
