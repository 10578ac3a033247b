/**
 * Errors as the kernel reports them. The message has Node's shape
 * (`EINVAL: invalid argument, write '/sys/kernel/mm/ksm/run'`) and the same
 * `code`/`errno`/`syscall`/`path` fields, so a tool handles the simulator's
 * error and the real kernel's with one code path.
 */

export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EINVAL: 22,
  ERANGE: 34,
} as const;

export type ErrnoCode = keyof typeof ERRNO;

const DESCRIPTIONS: Record<ErrnoCode, string> = {
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or directory',
  ESRCH: 'no such process',
  EINTR: 'interrupted system call',
  EAGAIN: 'resource temporarily unavailable',
  ENOMEM: 'not enough memory',
  EACCES: 'permission denied',
  EFAULT: 'bad address',
  EBUSY: 'resource busy or locked',
  EEXIST: 'file already exists',
  EINVAL: 'invalid argument',
  ERANGE: 'result too large',
};

export class ErrnoError extends Error {
  override name = 'ErrnoError';
  readonly code: ErrnoCode;
  /** Negative, as Node reports it. */
  readonly errno: number;
  readonly syscall: string;
  readonly path: string | undefined;

  constructor(code: ErrnoCode, syscall: string, path?: string) {
    super(`${code}: ${DESCRIPTIONS[code]}, ${syscall}${path === undefined ? '' : ` '${path}'`}`);
    this.code = code;
    this.errno = -ERRNO[code];
    this.syscall = syscall;
    this.path = path;
  }
}

export function isErrnoError(e: unknown): e is ErrnoError {
  return e instanceof ErrnoError;
}
