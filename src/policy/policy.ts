/**
 * SHIM (branch `attack`): the policy types of /work/notes/policy-contract.md,
 * so that the attack model and the policy table build before branch `policy`
 * lands. Drop this file for branch `policy`'s at merge time.
 */

export type PolicyName = 'none' | 'dormant' | 'fortress' | 'trust-domains' | 'zero-pages-only' | 'vusion';

export const POLICY_NAMES: readonly PolicyName[] = [
  'none',
  'dormant',
  'fortress',
  'trust-domains',
  'zero-pages-only',
  'vusion',
];

export type TrustDomainKey = 'user' | 'cgroup' | 'label';

const TRUST_DOMAIN_KEYS: readonly TrustDomainKey[] = ['user', 'cgroup', 'label'];

export interface PolicyConfig {
  readonly name: PolicyName;
  /** trust-domains only; default 'label'. */
  readonly trustDomainBy?: TrustDomainKey;
}

/** "trust-domains", "trust-domains:user", ...; anything else throws naming the text and what is allowed. */
export function parsePolicy(text: string): PolicyConfig {
  const [name, key, ...rest] = text.trim().split(':');
  const allowed = `${POLICY_NAMES.join(', ')} (trust-domains:${TRUST_DOMAIN_KEYS.join('|')})`;
  if (!POLICY_NAMES.includes(name as PolicyName) || rest.length > 0)
    throw new Error(`unknown policy "${text}"; allowed: ${allowed}`);
  if (key === undefined) return { name: name as PolicyName };
  if (name !== 'trust-domains' || !TRUST_DOMAIN_KEYS.includes(key as TrustDomainKey))
    throw new Error(`unknown policy "${text}"; allowed: ${allowed}`);
  return { name: 'trust-domains', trustDomainBy: key as TrustDomainKey };
}

/** One line for tables. */
export function describePolicy(config: PolicyConfig): string {
  switch (config.name) {
    case 'none':
      return 'no policy: every mergeable page may merge with any other';
    case 'dormant':
      return 'ksmd off until a privileged process turns it on (audited)';
    case 'fortress':
      return 'ksmd can never be turned on, even by a privileged process';
    case 'trust-domains':
      return `pages merge only within a trust domain (by ${config.trustDomainBy ?? 'label'})`;
    case 'zero-pages-only':
      return 'only pages of zeroes merge';
    case 'vusion':
      return 'every idle mergeable page is copied on access, merged or not (VUsion)';
  }
}
