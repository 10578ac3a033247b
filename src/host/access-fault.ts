/**
 * What a user access cost, as the process touching memory could time it: the
 * signal a page-sharing side channel reads (a write to a merged page takes a
 * copy-on-write fault that a write to an unmerged one does not).
 *
 * | kind             | when                                                                      |
 * |------------------|---------------------------------------------------------------------------|
 * | none             | PTE present and writable (a read: present, or the zero page)              |
 * | wp-reuse         | write-protect fault that reuses the page (do_wp_page → wp_page_reuse)     |
 * | anon             | first touch: a fresh frame, a THP, a page-cache page, or the zero page    |
 * | cow              | write to a shared non-KSM page (after fork) or to the shared zero page    |
 * | cow-ksm          | write to a KSM page or a KSM zero page: what the attacker looks for       |
 * | copy-on-access   | vusion: any access to a trapped page copies it onto a random fresh frame  |
 */

export type AccessFault = 'none' | 'wp-reuse' | 'anon' | 'cow' | 'cow-ksm' | 'copy-on-access';

export const ACCESS_FAULTS: readonly AccessFault[] = [
  'none',
  'wp-reuse',
  'anon',
  'cow',
  'cow-ksm',
  'copy-on-access',
];

/** Slowness order: a multi-page access reports the slowest kind it met (copy-on-access ranks with cow-ksm). */
export const ACCESS_FAULT_RANK: Readonly<Record<AccessFault, number>> = {
  none: 0,
  'wp-reuse': 1,
  anon: 2,
  cow: 3,
  'cow-ksm': 4,
  'copy-on-access': 4,
};

/** The slower of two kinds; the first one on a tie. */
export function slowerAccessFault(a: AccessFault, b: AccessFault): AccessFault {
  return ACCESS_FAULT_RANK[b] > ACCESS_FAULT_RANK[a] ? b : a;
}
