/**
 * docs/workload-format.md is the format as this code implements it: every
 * step, content kind, advice and process/region key the schema accepts is in
 * it, so a key added to the schema without a word in the document fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CONTENT_KINDS, MADVISE_ADVICES, processSchema, regionSchema } from './schema.ts';
import { STEP_OPS } from './workload.ts';

const DOC = readFileSync(
  join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'workload-format.md'),
  'utf8',
);

test('the workload format document names everything the schema accepts', () => {
  for (const op of STEP_OPS) assert.match(DOC, new RegExp(`\\| \`${op}: `), `step ${op}`);
  for (const kind of CONTENT_KINDS) assert.match(DOC, new RegExp(`\`${kind}: `), `content ${kind}`);
  for (const advice of MADVISE_ADVICES) assert.match(DOC, new RegExp(`\`${advice}\``), `advice ${advice}`);
  for (const key of Object.keys(regionSchema.shape))
    assert.match(DOC, new RegExp(`\\b${key}:`), `region key ${key}`);
  for (const key of Object.keys(processSchema.shape))
    assert.match(DOC, new RegExp(`\\b${key}:`), `process key ${key}`);
  assert.match(DOC, /`as: PROCESS`/, 'as: beside set');
});
