#!/usr/bin/env node
// Node 20's `node --test` discovers no .ts file and would pass with zero tests:
// collect the list ourselves, refuse an empty one, then type-check, lint, and run.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

function collect(dir, out) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) collect(path, out);
    else if (name.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out;
}

const only = process.argv.slice(2);
const files = (only.length > 0 ? only : collect(join(root, 'src'), [])).sort();
if (files.length === 0) {
  console.error('test: no *.test.ts files found under src/: refusing to report a pass with zero tests');
  process.exit(1);
}

function run(label, cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`test: ${label} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status ?? 1);
  }
}

if (only.length === 0) {
  const bin = (name) => join(root, 'node_modules', '.bin', name);
  run('type-check', bin('tsc'), ['-p', 'tsconfig.json', '--noEmit']);
  run('type-check of the core layers (no Node types)', bin('tsc'), ['-p', 'tsconfig.core.json', '--noEmit']);
  run('type-check of the live page (DOM types)', bin('tsc'), ['-p', 'tsconfig.web.json', '--noEmit']);
  run('lint and format', bin('biome'), ['check', '--error-on-warnings', '.']);
}
console.log(`test: ${files.length} test files`);
run('tests', process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...files]);
