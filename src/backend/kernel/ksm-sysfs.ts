/**
 * The real /sys/kernel/mm/ksm and /proc/PID/ksm_* files, read and written
 * synchronously. Synchronous on purpose: the same calls run in
 * `process.on('exit')`, where nothing asynchronous gets to finish.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { parseKsmStat } from '../../surface/procfs.ts';
import type { ErrnoName, ProcessCounters, SysfsWriteResult } from '../backend.ts';

export const KSM_DIR = '/sys/kernel/mm/ksm';

const ERRNO_NAMES: ReadonlySet<string> = new Set<ErrnoName>([
  'EINVAL',
  'EBUSY',
  'ENOMEM',
  'EPERM',
  'ESRCH',
  'EAGAIN',
  'EACCES',
  'ERANGE',
  'EINTR',
]);

/** The interface's errno name for a Node error code, or undefined when it is not one of the closed set. */
export function errnoNameOf(code: string | undefined): ErrnoName | undefined {
  return code !== undefined && ERRNO_NAMES.has(code) ? (code as ErrnoName) : undefined;
}

export function ksmPath(name: string): string {
  if (!/^[a-z_]+$/.test(name)) throw new Error(`ksm sysfs: ${JSON.stringify(name)} is not a file name`);
  return `${KSM_DIR}/${name}`;
}

/** Every file of the directory, sorted, with whether it is writable (mode 0644) or read-only (0444). */
export function listKsmFiles(): ReadonlyArray<{ readonly name: string; readonly writable: boolean }> {
  return readdirSync(KSM_DIR)
    .sort()
    .map((name) => ({ name, writable: (statSync(ksmPath(name)).mode & 0o200) !== 0 }));
}

/** The file's text without its trailing newline. */
export function readKsm(name: string): string {
  return readFileSync(ksmPath(name), 'latin1').trimEnd();
}

export function readKsmNumber(name: string): number {
  const text = readKsm(name);
  const value = Number(text);
  if (!Number.isSafeInteger(value))
    throw new Error(`${ksmPath(name)}: expected an integer, read ${JSON.stringify(text)}`);
  return value;
}

export { selectedWord } from '../../surface/sysfs.ts';

/**
 * One write(2) of `value`, exactly as given (the kernel's parsers accept one
 * trailing newline; anything else is the caller's to decide). A refusal comes
 * back as its errno name; an errno outside the interface's closed set is not a
 * refusal the workload format knows, so it throws.
 */
export function writeKsm(name: string, value: string): SysfsWriteResult {
  try {
    writeFileSync(ksmPath(name), value, { encoding: 'latin1', flag: 'w' });
    return { ok: true };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const errno = errnoNameOf(code);
    if (errno === undefined) throw e;
    return { ok: false, errno };
  }
}

/** Like writeKsm, for writes that must succeed (the backend's own settings). */
export function writeKsmOrThrow(name: string, value: string): void {
  const r = writeKsm(name, value);
  if (!r.ok) throw new Error(`${r.errno}: cannot write ${JSON.stringify(value)} to ${ksmPath(name)}`);
}

/**
 * /proc/PID/ksm_stat (six lines, yes/no as booleans) plus
 * /proc/PID/ksm_merging_pages, or undefined when the process has no mm (gone,
 * or a zombie).
 */
export function readProcessCounters(pid: number): ProcessCounters | undefined {
  let stat: string;
  let merging: string;
  try {
    stat = readFileSync(`/proc/${pid}/ksm_stat`, 'latin1');
    merging = readFileSync(`/proc/${pid}/ksm_merging_pages`, 'latin1').trim();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH') return undefined;
    throw e;
  }
  if (stat === '' || merging === '') return undefined;
  const parsed = parseKsmStat(stat);
  const mergingPages = Number(merging);
  // The two files are read one after the other; on a quiet system (ksmd asleep) they agree.
  if (mergingPages !== parsed.ksm_merging_pages) {
    throw new Error(
      `/proc/${pid}: ksm_merging_pages ${mergingPages} but ksm_stat says ${parsed.ksm_merging_pages}: was ksmd running?`,
    );
  }
  return { ...parsed };
}
