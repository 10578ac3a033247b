/**
 * Tenants in scenarios, `ksmkit simulate --policy`, and the policy table
 * (`ksmkit policies`): its JSON shape, and the goal of issue 8 on the built-in
 * multi-tenant scenario.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { policiesCommand, rowSpecs } from '../cli/policies.ts';
import { simulateCommand } from '../cli/simulate.ts';
import { describePolicy } from '../policy/policy.ts';
import { SHIPPED_CALIBRATION } from '../simulate/cost.ts';
import { runOnEngine } from '../simulate/engine-run.ts';
import { builtIn } from '../simulate/library.ts';
import { parseScenario, ScenarioError, TENANT_FIRST_UID } from '../simulate/scenario.ts';
import { buildPolicyTable, type PolicyTable } from './policy-table.ts';
import { trialsForHalfWidth, zForConfidence } from './stats.ts';

const figures = SHIPPED_CALIBRATION.figures;

/** Two tenants with two guests of 4 MiB each: a shared image, a tenant image, zeroes, own data. */
const TWO_TENANTS = `
version: 1
name: two-tenants
host: { memory: 64MiB }
ksm: { pages_to_scan: 1000 }
run: { duration: 10s, sample_every: 1s }
groups:
  - name: a-vm
    tenant: alpha
    count: 2
    memory: 4MiB
    content:
      - { share: 0.5, image: os }
      - { share: 0.25, image: alpha-app }
      - { share: 0.25, unique: true }
  - name: b-vm
    tenant: beta
    count: 2
    memory: 4MiB
    content:
      - { share: 0.5, image: os }
      - { share: 0.25, image: beta-app }
      - { share: 0.25, unique: true }
`;

describe('tenants in scenarios', () => {
  it('gives each tenant a uid (in order of first appearance), a cgroup and a label', () => {
    const s = parseScenario(
      `${TWO_TENANTS}  - { name: a-more, tenant: alpha, memory: 1MiB, content: [{ share: 1, unique: true }] }\n`,
      't.yaml',
    );
    assert.deepEqual(s.groups[0]!.tenant, {
      name: 'alpha',
      uid: TENANT_FIRST_UID,
      cgroup: '/tenants/alpha',
      label: 'alpha',
    });
    assert.equal(s.groups[1]!.tenant!.uid, TENANT_FIRST_UID + 1);
    assert.deepEqual(s.groups[2]!.tenant, s.groups[0]!.tenant);
    assert.equal(builtIn('kvm-clones').groups[0]!.tenant, undefined, 'no tenant: the host’s own');
  });

  it('names a bad tenant by file, line and key', () => {
    try {
      parseScenario(TWO_TENANTS.replace('tenant: beta', 'tenant: "beta corp"'), 't.yaml');
      assert.fail('accepted');
    } catch (e) {
      assert.ok(e instanceof ScenarioError);
      assert.match(
        e.message,
        /^t\.yaml:\d+:\d+: groups\.1\.tenant: expected a tenant name of \[A-Za-z0-9._-\]\+, got "beta corp"$/,
      );
    }
  });

  it('under trust domains the shared image merges within each tenant only', () => {
    const scenario = parseScenario(TWO_TENANTS, 't.yaml');
    const final = (name: 'none' | 'trust-domains') =>
      runOnEngine(scenario, { figures, policy: { name } }).samples.at(-1)!;
    const none = final('none');
    const trust = final('trust-domains');
    // os: 512 pages in 4 guests; each app image: 256 pages in 2 guests.
    assert.equal(none.pages_shared, 512 + 2 * 256);
    assert.equal(none.pages_sharing, 512 * 3 + 2 * 256);
    assert.equal(trust.pages_shared, 2 * 512 + 2 * 256);
    assert.equal(trust.pages_sharing, 2 * 512 + 2 * 256);
  });
});

describe('ksmkit simulate --policy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ksmkit-policy-'));
  const file = join(dir, 'two.yaml');
  writeFileSync(file, TWO_TENANTS);
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('runs a scenario under a policy; fortress leaves ksmd off and says why', async () => {
    const out: string[] = [];
    const code = await simulateCommand(
      file,
      { policy: 'fortress', progress: false, color: false },
      { out: (l) => out.push(l), err: () => undefined },
    );
    assert.equal(code, 0);
    assert.ok(out.includes(`Policy: ${describePolicy({ name: 'fortress' })}.`));
    assert.ok(out.some((l) => /ksmd did not run: the policy refused run=1 \(EPERM\)/.test(l)));
  });

  it('--policy all prints the policy table (as ksmkit policies does)', async () => {
    const out: string[] = [];
    const code = await simulateCommand(
      file,
      { policy: 'all', color: false },
      { out: (l) => out.push(l), err: () => undefined },
    );
    assert.equal(code, 0);
    for (const label of [
      'none',
      'dormant (ksmd off, as shipped)',
      'fortress',
      'trust-domains',
      'zero-pages-only',
      'vusion',
    ])
      assert.ok(
        out.some((l) => l.includes(`│ ${label} `)),
        label,
      );
    assert.ok(
      out.some((l) => /^Goal: .*Met by: trust-domains, vusion\.$/.test(l)),
      out.join('\n'),
    );
  });

  it('refuses an unknown policy, listing the allowed ones', async () => {
    const err: string[] = [];
    const code = await simulateCommand(
      file,
      { policy: 'paranoid' },
      { out: () => undefined, err: (l) => err.push(l) },
    );
    assert.equal(code, 2);
    assert.match(
      err[0]!,
      /unknown policy "paranoid"; allowed: none, dormant, fortress, trust-domains, zero-pages-only, vusion/,
    );
  });
});

describe('ksmkit policies', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ksmkit-policies-'));
  const file = join(dir, 'two.yaml');
  writeFileSync(file, TWO_TENANTS);
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('--json: one object with the setup, the rule, a row per policy and who meets the goal', async () => {
    const out: string[] = [];
    const code = await policiesCommand(
      file,
      { json: true, policy: ['trust-domains'] },
      { out: (l) => out.push(l), err: () => undefined },
    );
    assert.equal(code, 0);
    const t = JSON.parse(out.join('\n')) as PolicyTable;
    assert.deepEqual(Object.keys(t), ['scenario', 'attackSetup', 'chanceRule', 'goal', 'rows', 'goalMetBy']);
    assert.equal(t.scenario.name, 'two-tenants');
    // 2 rows x 2 placements: each interval at 1 - 0.05 / 4, and trials for +-2 points at that level.
    assert.equal(t.attackSetup.confidence, 1 - 0.05 / 4);
    assert.equal(trialsForHalfWidth(0.02, zForConfidence(1 - 0.05 / 4)), 3900);
    assert.equal(t.attackSetup.guesses, 3900);
    assert.equal(t.attackSetup.attacker.label, 'alpha');
    assert.equal(t.attackSetup.crossTenantVictim.label, 'beta');
    assert.deepEqual(
      t.rows.map((r) => r.label),
      ['none', 'trust-domains'],
    );
    const [none, trust] = t.rows;
    assert.deepEqual(Object.keys(none!).sort(), [
      'attack',
      'description',
      'ksmd',
      'ksmdCpuMs',
      'ksmdCpuPercent',
      'label',
      'meetsGoal',
      'policy',
      'savingBytes',
      'savingFraction',
    ]);
    assert.deepEqual(Object.keys(none!.attack), ['cross-tenant', 'within-tenant']);
    const cell = none!.attack['cross-tenant'];
    for (const key of [
      'trials',
      'successes',
      'accuracy',
      'ci95',
      'pValue',
      'verdict',
      'truePositiveRate',
      'falsePositiveRate',
    ])
      assert.ok(key in cell, key);
    assert.equal(none!.savingFraction, 1);
    assert.equal(cell.verdict, 'above chance');
    assert.equal(trust!.attack['cross-tenant'].verdict, 'at chance');
    assert.equal(trust!.attack['within-tenant'].verdict, 'above chance');
    // pages_sharing 1536 under trust domains against 2048 without (less the same rmap item overhead): about 3/4.
    assert.ok(trust!.savingFraction > 0.7 && trust!.savingFraction < 0.8, `${trust!.savingFraction}`);
    assert.deepEqual(t.goalMetBy, ['trust-domains']);
  });

  it('--policy names rows (none always first); bad names are refused', () => {
    assert.deepEqual(
      rowSpecs(['vusion,zero-pages-only']).map((r) => r.label),
      ['none', 'zero-pages-only', 'vusion'],
    );
    assert.equal(rowSpecs([]).length, 7);
    assert.deepEqual(
      rowSpecs(['trust-domains:user']).map((r) => r.label),
      ['none', 'trust-domains:user'],
    );
    assert.throws(() => rowSpecs(['trust']), /unknown policy "trust"/);
  });

  it('the multi-tenant scenario: trust domains and VUsion stop the cross-tenant attack and keep half the saving', () => {
    const t = buildPolicyTable(builtIn('multi-tenant'), { figures });
    const row = (label: string) => t.rows.find((r) => r.label === label)!;
    const none = row('none');
    assert.ok(none.savingBytes > 0);
    assert.equal(none.attack['cross-tenant'].verdict, 'above chance');
    assert.ok(none.attack['cross-tenant'].accuracy > 0.99);
    for (const label of ['trust-domains', 'vusion']) {
      const r = row(label);
      assert.equal(r.attack['cross-tenant'].verdict, 'at chance', label);
      assert.ok(r.attack['cross-tenant'].trials >= 5307, 'Bonferroni over 14 cells');
      const ci = r.attack['cross-tenant'].ci95;
      assert.ok((ci.high - ci.low) / 2 <= 0.02);
      assert.ok(r.savingFraction >= 0.5, `${label} keeps ${r.savingFraction}`);
      assert.ok(r.meetsGoal);
    }
    assert.equal(row('trust-domains').attack['within-tenant'].verdict, 'above chance');
    // The guests keep reading the hot part of their images: under VUsion each read copies a trapped
    // page, so those pages stay mostly unshared and VUsion keeps less than all of the saving.
    assert.ok(row('vusion').savingFraction < 0.95, `vusion keeps ${row('vusion').savingFraction}`);
    assert.ok(row('vusion').savingBytes < row('none').savingBytes);
    for (const label of ['dormant (ksmd off, as shipped)', 'fortress']) {
      assert.equal(row(label).savingBytes, 0, label);
      assert.equal(row(label).ksmd.running, false);
    }
    assert.deepEqual(row('fortress').ksmd, { running: false, refused: 'EPERM' });
    assert.equal(row('dormant (operator turned ksmd on)').savingBytes, none.savingBytes);
    assert.ok(row('zero-pages-only').savingFraction < 0.5);
    assert.deepEqual(t.goalMetBy, ['trust-domains', 'vusion']);
    // No cell that leaks nothing is called anything but chance.
    for (const r of t.rows)
      for (const cell of Object.values(r.attack))
        if (cell.guessFaults['cow-ksm'] === 0) assert.equal(cell.verdict, 'at chance', r.label);
  });
});
