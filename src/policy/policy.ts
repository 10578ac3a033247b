/**
 * Hardening policies of the simulated host (issue 8): settings that trade some
 * of KSM's saving for less of what a page-sharing side channel can learn. The
 * host, KSM and the sysfs surface each read the one `PolicyConfig` they are
 * given; this module only names and parses them, so every layer can import it.
 *
 * | policy            | where it acts                      | threat removed                              |
 * |-------------------|------------------------------------|---------------------------------------------|
 * | none              | nowhere (Linux 6.18 as it is)      | nothing                                     |
 * | dormant           | sysfs: run=1 needs CAP_SYS_ADMIN   | KSM switched on by a process that may not   |
 * | fortress          | sysfs: run=1 always EPERM          | KSM switched on at all                      |
 * | trust-domains     | KSM trees keyed by (nid, domain)   | cross-domain merge: the COW timing channel  |
 * | zero-pages-only   | KSM declines non-zero pages        | every content channel but "this page is 0"  |
 * | vusion            | host traps idle mergeable pages    | telling merged from unmerged pages          |
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

/** What puts two processes in one trust domain: the same uid, the same cgroup path, or the same label. */
export type TrustDomainKey = 'user' | 'cgroup' | 'label';

export const TRUST_DOMAIN_KEYS: readonly TrustDomainKey[] = ['user', 'cgroup', 'label'];

export interface PolicyConfig {
  readonly name: PolicyName;
  /** Only for trust-domains; default 'label'. */
  readonly trustDomainBy?: TrustDomainKey;
}

export const NO_POLICY: PolicyConfig = { name: 'none' };

const ALLOWED = [...POLICY_NAMES, ...TRUST_DOMAIN_KEYS.map((k) => `trust-domains:${k}`)].join(', ');

function isPolicyName(text: string): text is PolicyName {
  return (POLICY_NAMES as readonly string[]).includes(text);
}

function isTrustDomainKey(text: string): text is TrustDomainKey {
  return (TRUST_DOMAIN_KEYS as readonly string[]).includes(text);
}

/** "vusion", "trust-domains", "trust-domains:user", ...; anything else is an Error naming the text and what is allowed. */
export function parsePolicy(text: string): PolicyConfig {
  const [name = '', key, ...rest] = text.trim().split(':');
  if (isPolicyName(name) && rest.length === 0) {
    if (key === undefined) return { name };
    if (name === 'trust-domains' && isTrustDomainKey(key)) return { name, trustDomainBy: key };
  }
  throw new Error(`unknown policy ${JSON.stringify(text)}; allowed: ${ALLOWED}`);
}

/** The domain key in force for a trust-domains policy. */
export function trustDomainKeyOf(config: PolicyConfig): TrustDomainKey {
  return config.trustDomainBy ?? 'label';
}

/** The name as parsePolicy reads it back (`trust-domains:user`). */
export function policyLabel(config: PolicyConfig): string {
  return config.name === 'trust-domains' ? `trust-domains:${trustDomainKeyOf(config)}` : config.name;
}

/** One line for tables. */
export function describePolicy(config: PolicyConfig): string {
  switch (config.name) {
    case 'none':
      return 'none: Linux 6.18 as it is';
    case 'dormant':
      return 'dormant: ksmd off until a process with CAP_SYS_ADMIN writes run=1; every write audited';
    case 'fortress':
      return 'fortress: run=1 refused (EPERM) even with CAP_SYS_ADMIN; every write audited';
    case 'trust-domains':
      return `trust-domains: pages merge only within one ${trustDomainKeyOf(config)} (trees keyed by node and domain)`;
    case 'zero-pages-only':
      return 'zero-pages-only: only all-zero pages merge';
    case 'vusion':
      return 'vusion: idle mergeable pages trapped, merged or not; any access copies onto a random fresh frame';
  }
}
