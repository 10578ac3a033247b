import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { describePolicy, POLICY_NAMES, parsePolicy, policyLabel } from './policy.ts';

describe('policy names', () => {
  test('every name parses to itself and has a one-line description', () => {
    for (const name of POLICY_NAMES) {
      const config = parsePolicy(name);
      assert.equal(config.name, name);
      assert.ok(describePolicy(config).startsWith(`${name}:`));
      assert.ok(!describePolicy(config).includes('\n'));
    }
  });

  test('trust-domains takes its key after a colon, label by default', () => {
    assert.deepEqual(parsePolicy('trust-domains:user'), { name: 'trust-domains', trustDomainBy: 'user' });
    assert.deepEqual(parsePolicy('trust-domains:cgroup'), { name: 'trust-domains', trustDomainBy: 'cgroup' });
    assert.equal(policyLabel(parsePolicy('trust-domains')), 'trust-domains:label');
    assert.match(describePolicy(parsePolicy('trust-domains:user')), /one user/);
  });

  test('an unknown name, a key on another policy or a bad key is refused, naming the text and what is allowed', () => {
    for (const bad of ['vusoin', 'dormant:user', 'trust-domains:pid', 'trust-domains:user:x', '']) {
      assert.throws(
        () => parsePolicy(bad),
        (e: Error) =>
          e.message.includes(JSON.stringify(bad)) &&
          e.message.includes('allowed: none, dormant, fortress, trust-domains, zero-pages-only, vusion') &&
          e.message.includes('trust-domains:cgroup'),
      );
    }
  });
});
