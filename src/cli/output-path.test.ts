/** Output paths are refused before any work, with the reason, and accepted when they can be written. */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { UsageError } from './exit.ts';
import { checkOutputPath } from './output-path.ts';

const DIR = mkdtempSync(join(tmpdir(), 'ksmkit-out-'));

test('checkOutputPath: folders, missing folders, files, created folders', () => {
  const refused = (path: string, message: RegExp, createFolders = false): void =>
    assert.throws(
      () => checkOutputPath('--report', path, { createFolders }),
      (e: unknown) => e instanceof UsageError && message.test(e.message),
    );
  refused(DIR, /^--report .*: is a directory; give a file name inside it$/);
  refused(join(DIR, 'no', 'r.html'), /the folder .*\/no does not exist$/);
  refused('', /an empty file name/);
  const file = join(DIR, 'file');
  writeFileSync(file, 'x');
  refused(join(file, 'r.html'), /file is not a folder$/);
  refused(join(file, 'a', 'r.html'), /file is not a folder$/, true);
  checkOutputPath('--report', join(DIR, 'r.html'));
  checkOutputPath('--report', file);
  checkOutputPath('--out', join(DIR, 'new', 'deeper', 'c.json'), { createFolders: true });
});
