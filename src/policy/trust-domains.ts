/**
 * The trust-domains policy: KSM merges a page only with pages of processes of
 * the same domain. Domains are numbered in the order their first mm registers
 * with KSM; KSM keeps one set of stable and unstable trees per (domain, NUMA
 * node), as mm/ksm.c keeps one per node with merge_across_nodes=0, so a page
 * never even meets a page of another domain.
 */
import type { ProcessIdentity } from '../host/mm.ts';
import { type PolicyConfig, type TrustDomainKey, trustDomainKeyOf } from './policy.ts';

/** The domain a process belongs to, as text: `uid:1000`, `cgroup:/tenants/a`, `label:tenant-a`. */
export function trustDomainOf(identity: ProcessIdentity, key: TrustDomainKey): string {
  switch (key) {
    case 'user':
      return `uid:${identity.uid}`;
    case 'cgroup':
      return `cgroup:${identity.cgroup}`;
    case 'label':
      return `label:${identity.label}`;
  }
}

export class TrustDomains {
  readonly key: TrustDomainKey;
  private readonly indices = new Map<string, number>();

  constructor(config: PolicyConfig) {
    this.key = trustDomainKeyOf(config);
  }

  /** The domain's number (0, 1, ... in order of first appearance). */
  indexOf(identity: ProcessIdentity): number {
    const name = trustDomainOf(identity, this.key);
    let index = this.indices.get(name);
    if (index === undefined) {
      index = this.indices.size;
      this.indices.set(name, index);
    }
    return index;
  }

  /** Domain names by number. */
  names(): string[] {
    return [...this.indices.keys()];
  }
}
