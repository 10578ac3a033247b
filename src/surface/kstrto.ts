/**
 * The kernel's integer and boolean parsers for sysfs writes (lib/kstrtox.c),
 * byte for byte: base 10, an optional leading '+', one trailing newline, and
 * nothing else. They return the value or the errno the parser itself gives;
 * each store function decides whether to pass that errno on or to say EINVAL.
 */
import type { ErrnoCode } from '../host/errno.ts';

export type Parsed<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly errno: ErrnoCode };

const U64_MAX = (1n << 64n) - 1n;

/** _kstrtoull(s, 10): digits, then at most one '\n', then the end. */
function parseDigits(s: string): Parsed<bigint> {
  let i = 0;
  let value = 0n;
  let overflow = false;
  while (i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) {
    value = value * 10n + BigInt(s.charCodeAt(i) - 48);
    if (value > U64_MAX) overflow = true;
    i++;
  }
  if (i === 0) return { ok: false, errno: 'EINVAL' };
  if (overflow) return { ok: false, errno: 'ERANGE' };
  if (s[i] === '\n') i++;
  if (i !== s.length) return { ok: false, errno: 'EINVAL' };
  return { ok: true, value };
}

/** kstrtoull(): an optional '+' first. */
export function kstrtoull(s: string): Parsed<bigint> {
  return parseDigits(s.startsWith('+') ? s.slice(1) : s);
}

/** kstrtoul() on a 64-bit kernel is kstrtoull(). */
export const kstrtoul = kstrtoull;

/** kstrtouint(): kstrtoull() then ERANGE above 32 bits. */
export function kstrtouint(s: string): Parsed<bigint> {
  const r = kstrtoull(s);
  if (!r.ok) return r;
  return r.value > 0xffffffffn ? { ok: false, errno: 'ERANGE' } : r;
}

/** kstrtoll(): a leading '-' negates (and then no '+' may follow). */
export function kstrtoll(s: string): Parsed<bigint> {
  if (s.startsWith('-')) {
    const r = parseDigits(s.slice(1));
    if (!r.ok) return r;
    if (r.value > 1n << 63n) return { ok: false, errno: 'ERANGE' };
    return { ok: true, value: -r.value };
  }
  const r = kstrtoull(s);
  if (!r.ok) return r;
  return r.value >= 1n << 63n ? { ok: false, errno: 'ERANGE' } : r;
}

/** kstrtoint(): kstrtoll() then ERANGE outside 32-bit signed. */
export function kstrtoint(s: string): Parsed<bigint> {
  const r = kstrtoll(s);
  if (!r.ok) return r;
  return r.value > 0x7fffffffn || r.value < -0x80000000n ? { ok: false, errno: 'ERANGE' } : r;
}

/**
 * kstrtobool(): decided by the first character (y Y t T 1 e E → true,
 * n N f F 0 d D → false); for o/O by the second (n N → true, f F → false).
 * Whatever follows the deciding character is ignored.
 */
export function kstrtobool(s: string): Parsed<boolean> {
  switch (s[0]) {
    case 'y':
    case 'Y':
    case 't':
    case 'T':
    case '1':
    case 'e':
    case 'E':
      return { ok: true, value: true };
    case 'n':
    case 'N':
    case 'f':
    case 'F':
    case '0':
    case 'd':
    case 'D':
      return { ok: true, value: false };
    case 'o':
    case 'O':
      switch (s[1]) {
        case 'n':
        case 'N':
          return { ok: true, value: true };
        case 'f':
        case 'F':
          return { ok: true, value: false };
        default:
          return { ok: false, errno: 'EINVAL' };
      }
    default:
      return { ok: false, errno: 'EINVAL' };
  }
}

/** sysfs_streq(): equal, ignoring one trailing newline on either side. */
export function sysfsStreq(a: string, b: string): boolean {
  const strip = (x: string): string => (x.endsWith('\n') ? x.slice(0, -1) : x);
  return strip(a) === strip(b);
}
