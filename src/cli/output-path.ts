/**
 * Output files are checked before any work starts: a report path in a missing
 * folder, or one that is a folder, is a usage error found in a millisecond,
 * not after a 90-second simulation.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError } from './exit.ts';

/**
 * Throws a UsageError naming the option and what is wrong with `path` as a
 * file to write. `createFolders`: missing folders will be made (the nearest
 * existing one must then be a writable folder).
 */
export function checkOutputPath(
  option: string,
  path: string,
  options: { createFolders?: boolean } = {},
): void {
  if (path === '') throw new UsageError(`${option}: an empty file name`);
  const full = resolve(path);
  const existing = statOrUndefined(full);
  if (existing?.isDirectory() === true)
    throw new UsageError(`${option} ${path}: is a directory; give a file name inside it`);
  if (existing !== undefined) {
    if (!canWrite(full)) throw new UsageError(`${option} ${path}: the file exists and is not writable`);
    return;
  }
  let folder = dirname(full);
  if (options.createFolders === true)
    while (statOrUndefined(folder) === undefined && dirname(folder) !== folder) folder = dirname(folder);
  const parent = statOrUndefined(folder);
  if (parent === undefined) throw new UsageError(`${option} ${path}: the folder ${folder} does not exist`);
  if (!parent.isDirectory()) throw new UsageError(`${option} ${path}: ${folder} is not a folder`);
  if (!canWrite(folder)) throw new UsageError(`${option} ${path}: the folder ${folder} is not writable`);
}

function statOrUndefined(path: string): ReturnType<typeof statSync> | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function canWrite(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}
