#!/usr/bin/env node
// Builds native/agent.c into native/build/ksmkit-agent, the process that stands
// for one workload process on the kernel backend, and native/ksm-exec.c into
// native/build/ksmkit-exec, the helper of `ksmkit exec`, and native/probe.c into
// native/build/ksmkit-probe, the attacker and victim of `ksmkit probe`, and native/compress.c into
// native/build/ksmkit-compress.node, the page compressors of `ksmkit estimate --compare` (a Node-API
// addon linked with the reference LZ4 library: Debian's liblz4-dev). Run from package.json's
// install step. Never fails an install: on a machine that cannot run the kernel
// backend (not Linux, no C compiler, no source) it prints one line saying why
// and exits 0; the kernel backend then reports itself unavailable. A compile
// error on Linux with a compiler is a real failure of this repository: exit 1.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const source = join(root, 'native', 'agent.c');
const outDir = join(root, 'native', 'build');
const output = join(outDir, 'ksmkit-agent');
const execSource = join(root, 'native', 'ksm-exec.c');
const execOutput = join(outDir, 'ksmkit-exec');
const probeSource = join(root, 'native', 'probe.c');
const probeOutput = join(outDir, 'ksmkit-probe');
const self = new URL(import.meta.url).pathname;

function mtimeMs(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

function findCompiler() {
  const candidates = [process.env.CC, 'cc', 'gcc', 'clang'].filter((c) => c !== undefined && c !== '');
  for (const cc of candidates) {
    const probe = spawnSync(cc, ['--version'], { stdio: 'ignore' });
    if (probe.status === 0) return cc;
  }
  return undefined;
}

function skip(reason) {
  console.log(`build-agent: skipped, ${reason}; the kernel backend and ksmkit exec are unavailable`);
  process.exit(0);
}

if (process.platform !== 'linux') skip(`it needs Linux (this is ${process.platform})`);
if (mtimeMs(source) < 0) skip(`${source} is missing`);
const cc = findCompiler();
if (cc === undefined) skip('no C compiler found (tried $CC, cc, gcc, clang)');

/** Compiles one C file (unless up to date); exits 1 on a compile error. */
function build(source, output, { flags = [], libs = [] } = {}) {
  if (mtimeMs(output) >= Math.max(mtimeMs(source), mtimeMs(self))) {
    console.log(`build-agent: ${output} is up to date`);
    return;
  }
  mkdirSync(outDir, { recursive: true });
  // Built beside the target and renamed into place, so that a test running at
  // the same time never executes a half-written binary.
  const temp = `${output}.${process.pid}.tmp`;
  const args = ['-std=gnu11', '-O2', '-Wall', '-Wextra', '-Werror', ...flags, '-o', temp, source, ...libs];
  const r = spawnSync(cc, args, { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`build-agent: ${cc} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
  renameSync(temp, output);
  console.log(`build-agent: built ${output} with ${cc}`);
}

build(source, output);
// `ksmkit exec`'s helper: a missing source only means this checkout has no `exec` yet.
if (mtimeMs(execSource) < 0) console.log(`build-agent: ${execSource} is missing; ksmkit exec is unavailable`);
else build(execSource, execOutput);
if (mtimeMs(probeSource) < 0)
  console.log(`build-agent: ${probeSource} is missing; ksmkit probe is unavailable`);
else build(probeSource, probeOutput);

// The compressors: Node's own headers (the install's include/node, or npm's nodedir) and liblz4's.
const compressSource = join(root, 'native', 'compress.c');
const nodeIncludes = [
  process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
  join(dirname(process.execPath), '..', 'include', 'node'),
].filter((d) => d && existsSync(join(d, 'node_api.h')));
if (mtimeMs(compressSource) < 0) console.log(`build-agent: ${compressSource} is missing`);
else if (nodeIncludes.length === 0)
  console.log("build-agent: Node's headers (node_api.h) not found; ksmkit estimate --compare is unavailable");
else if (!existsSync('/usr/include/lz4.h'))
  console.log(
    'build-agent: lz4.h not found (apt-get install liblz4-dev); ksmkit estimate --compare is unavailable',
  );
else
  build(compressSource, join(outDir, 'ksmkit-compress.node'), {
    flags: ['-shared', '-fPIC', `-I${nodeIncludes[0]}`],
    libs: ['-llz4'],
  });
