import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_GUESSES, runAttack } from './attack.ts';

test('no policy: the attacker tells right guesses from wrong ones, across tenants', () => {
  const r = runAttack({ policy: { name: 'none' }, placement: 'cross-tenant' });
  assert.equal(r.rate.trials, DEFAULT_GUESSES);
  assert.ok(r.rate.trials >= 2401, 'enough trials for a +-2 point interval');
  assert.ok(r.rate.accuracy > 0.99, `accuracy ${r.rate.accuracy}`);
  assert.equal(r.rate.verdict, 'above chance');
  assert.ok(r.rate.pValue < 1e-12);
  assert.ok(r.truePositiveRate > 0.99 && r.falsePositiveRate < 0.01);
  // Every right guess merged with the victim's page and took a KSM COW fault.
  assert.equal(r.guessFaults['cow-ksm'], r.rate.trials / 2);
  assert.equal(r.threshold.calibrationAccuracy, 1);
});

test('trust domains: at chance across tenants (2,402 trials, interval +-2 points), not within one', () => {
  const cross = runAttack({ policy: { name: 'trust-domains' }, placement: 'cross-tenant' });
  assert.equal(cross.rate.verdict, 'at chance');
  assert.ok(cross.rate.ci95.low <= 0.5 && cross.rate.ci95.high >= 0.5);
  assert.ok((cross.rate.ci95.high - cross.rate.ci95.low) / 2 <= 0.02);
  assert.equal(cross.guessFaults['cow-ksm'], 0);
  // The attacker's own pairs still merge: it calibrated a working threshold and still learns nothing.
  assert.equal(cross.threshold.calibrationAccuracy, 1);
  const within = runAttack({ policy: { name: 'trust-domains' }, placement: 'within-tenant' });
  assert.ok(within.rate.accuracy > 0.99);
  assert.equal(within.rate.verdict, 'above chance');
});

test('VUsion: every idle mergeable page copied on access, the attacker is at chance even within a tenant', () => {
  const r = runAttack({ policy: { name: 'vusion' }, placement: 'within-tenant', seed: 5 });
  assert.equal(r.guessFaults['copy-on-access'], r.rate.trials);
  assert.equal(r.rate.verdict, 'at chance');
});

test('fortress: the operator cannot start ksmd (EPERM), nothing merges', () => {
  const r = runAttack({ policy: { name: 'fortress' }, placement: 'cross-tenant' });
  assert.deepEqual(r.ksmd, { running: false, refused: 'EPERM' });
  assert.equal(r.guessFaults.none, r.rate.trials);
  assert.equal(r.rate.verdict, 'at chance');
});

test('zero pages only: secrets are not zero pages, so nothing the attacker probes merges', () => {
  const r = runAttack({ policy: { name: 'zero-pages-only' }, placement: 'cross-tenant' });
  assert.equal(r.guessFaults['cow-ksm'], 0);
  assert.equal(r.rate.verdict, 'at chance');
});

test('ksmd off: nothing merges, at chance; a seed replays the same result', () => {
  const a = runAttack({ policy: { name: 'dormant' }, placement: 'cross-tenant', operatorEnablesKsmd: false });
  assert.deepEqual(a.ksmd, { running: false });
  assert.equal(a.rate.verdict, 'at chance');
  const b = runAttack({ policy: { name: 'dormant' }, placement: 'cross-tenant', operatorEnablesKsmd: false });
  assert.deepEqual(a, b);
});

test('bad sizes are refused with what is allowed', () => {
  assert.throws(
    () => runAttack({ policy: { name: 'none' }, placement: 'cross-tenant', guesses: 3 }),
    /guesses must be an even integer >= 2, got 3/,
  );
  assert.throws(
    () => runAttack({ policy: { name: 'none' }, placement: 'cross-tenant', calibrationPages: 0 }),
    /calibrationPages must be an even integer >= 2, got 0/,
  );
});

test('ksmd for a virtual time: too short to merge, the attack cannot tell; long enough, it can', () => {
  const settings = [
    { name: 'pages_to_scan', value: '1000' },
    { name: 'sleep_millisecs', value: '20' },
  ];
  // About 10,000 pages to scan at 1,000 per 24 ms: a pass takes about a quarter of a second.
  const early = runAttack({ policy: { name: 'none' }, placement: 'cross-tenant', settings, ksmdMs: 100 });
  assert.equal(early.fullScans, 0);
  assert.equal(early.guessFaults['cow-ksm'], 0);
  const late = runAttack({ policy: { name: 'none' }, placement: 'cross-tenant', settings, ksmdMs: 2000 });
  assert.ok(late.fullScans >= 2, `${late.fullScans} passes`);
  assert.equal(late.rate.verdict, 'above chance');
  assert.throws(
    () => runAttack({ policy: { name: 'none' }, placement: 'cross-tenant', ksmdMs: -1 }),
    /ksmdMs must be/,
  );
});
