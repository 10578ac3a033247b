/** The round's pages: half the guesses right, calibration pages as they claim, all from the seed. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildRoundPages, PAGE_BYTES } from './pages.ts';

function pageKey(bytes: Uint8Array, i: number): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + i * PAGE_BYTES, PAGE_BYTES).toString('base64');
}

test('exactly half the guesses are victim pages, each a different one; the wrong ones match nothing', () => {
  const r = buildRoundPages({ seed: 7, pages: 64, calibrationPairs: 4 });
  assert.equal(r.truth.filter(Boolean).length, 32);
  const victim = new Set<string>();
  for (let i = 0; i < 64; i++) victim.add(pageKey(r.victim, i));
  assert.equal(victim.size, 64, 'every secret page differs');
  const attacker = new Map<string, number>();
  const seenSecrets = new Set<string>();
  r.attackerLayout.forEach((page, i) => {
    const key = pageKey(r.attacker, i);
    attacker.set(key, (attacker.get(key) ?? 0) + 1);
    if (page.kind === 'guess') {
      assert.equal(victim.has(key), r.truth[page.guess], `guess ${page.guess}`);
      if (r.truth[page.guess]) seenSecrets.add(key);
    } else assert.ok(!victim.has(key), 'calibration pages share nothing with the victim');
  });
  assert.equal(seenSecrets.size, 32, 'the right guesses name 32 different secrets');
  // Contents seen twice in the attacker are exactly the pairs.
  const twice = [...attacker.values()].filter((n) => n === 2).length;
  assert.equal(twice, 4);
  assert.ok([...attacker.values()].every((n) => n <= 2));
});

test('pairs are identical, unique pages are unique, and the kinds are shuffled together', () => {
  const r = buildRoundPages({ seed: 3, pages: 32, calibrationPairs: 8 });
  assert.equal(r.attackerLayout.length, 32 + 16 + 8);
  const pairs = new Map<number, string[]>();
  r.attackerLayout.forEach((page, i) => {
    if (page.kind === 'pair') pairs.set(page.pair, [...(pairs.get(page.pair) ?? []), pageKey(r.attacker, i)]);
  });
  assert.equal(pairs.size, 8);
  for (const [pair, keys] of pairs) {
    assert.equal(keys.length, 2);
    assert.equal(keys[0], keys[1], `pair ${pair}`);
  }
  const kinds = r.attackerLayout.map((p) => p.kind).join(',');
  assert.notEqual(kinds, [...r.attackerLayout.map((p) => p.kind)].sort().join(','), 'not in blocks');
});

test('the seed names the round: same seed same bytes, another seed others', () => {
  const a = buildRoundPages({ seed: 11, pages: 16, calibrationPairs: 2 });
  const b = buildRoundPages({ seed: 11, pages: 16, calibrationPairs: 2 });
  const c = buildRoundPages({ seed: 12, pages: 16, calibrationPairs: 2 });
  assert.deepEqual(a.truth, b.truth);
  assert.deepEqual(a.attackerLayout, b.attackerLayout);
  assert.ok(Buffer.from(a.victim).equals(Buffer.from(b.victim)));
  assert.ok(Buffer.from(a.attacker).equals(Buffer.from(b.attacker)));
  assert.ok(!Buffer.from(a.victim).equals(Buffer.from(c.victim)));
});

test('bad sizes are refused with what is allowed', () => {
  assert.throws(() => buildRoundPages({ seed: 1, pages: 7, calibrationPairs: 1 }), /even integer ≥ 2/);
  assert.throws(() => buildRoundPages({ seed: 1, pages: 0, calibrationPairs: 1 }), /even integer ≥ 2/);
  assert.throws(() => buildRoundPages({ seed: 1, pages: 8, calibrationPairs: 0 }), /positive integer/);
});
