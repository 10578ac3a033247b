/**
 * KSMKIT_REQUIRE_KERNEL: a real-kernel test that cannot run skips with its
 * reason, and with the variable set (as `.ci/run` does) the run fails naming
 * that reason. Checked on a small test file run by node --test in a child.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { kernelRequired, REQUIRE_KERNEL_ENV, requiredMessage } from './kernel-required.ts';

const REASON = 'no /sys/kernel/mm/ksm in this pretend machine';
const HELPER_URL = new URL('./kernel-required.ts', import.meta.url).href;

const dir = mkdtempSync(join(tmpdir(), 'ksmkit-kernel-required-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const fixture = join(dir, 'fixture.test.ts');
writeFileSync(
  fixture,
  `import { test } from 'node:test';
import { kernelSkip, skipKernelTest } from ${JSON.stringify(HELPER_URL)};
const skip = kernelSkip(${JSON.stringify(REASON)});
test('needs the kernel, option form', { skip }, () => { throw new Error('ran where it should not'); });
test('needs the kernel too, same reason', { skip }, () => { throw new Error('ran where it should not'); });
test('needs the kernel, in-test form', (t) => { skipKernelTest(t, ${JSON.stringify(REASON)}); });
test('an ordinary test', { skip: kernelSkip(false) }, () => {});
`,
);

function runFixture(requireKernel: string | undefined): { status: number | null; out: string } {
  const env = { ...process.env };
  delete env[REQUIRE_KERNEL_ENV];
  // Else the child takes itself for a subtest of this run and runs nothing.
  delete env.NODE_TEST_CONTEXT;
  if (requireKernel !== undefined) env[REQUIRE_KERNEL_ENV] = requireKernel;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', fixture], {
    env,
    encoding: 'utf8',
  });
  return { status: r.status, out: r.stdout + r.stderr };
}

describe('KSMKIT_REQUIRE_KERNEL', () => {
  test('unset: the kernel tests skip with their one-line reason and the run passes', () => {
    const r = runFixture(undefined);
    assert.equal(r.status, 0, r.out);
    assert.equal(r.out.split(`# SKIP ${REASON}`).length - 1, 3, r.out);
    assert.match(r.out, /# pass 1\b/);
    assert.doesNotMatch(r.out, /ran where it should not/);
  });

  test('=1: the same skips fail the run, naming the reason, once per reason plus the in-test one', () => {
    const r = runFixture('1');
    assert.equal(r.status, 1, r.out);
    assert.ok(r.out.includes(requiredMessage(REASON)), r.out);
    assert.match(r.out, /# fail 2\b/);
    assert.doesNotMatch(r.out, /ran where it should not/);
  });

  test('=0 or empty is off; anything else is refused with what is allowed', () => {
    assert.equal(kernelRequired({}), false);
    assert.equal(kernelRequired({ [REQUIRE_KERNEL_ENV]: '' }), false);
    assert.equal(kernelRequired({ [REQUIRE_KERNEL_ENV]: '0' }), false);
    assert.equal(kernelRequired({ [REQUIRE_KERNEL_ENV]: '1' }), true);
    assert.throws(
      () => kernelRequired({ [REQUIRE_KERNEL_ENV]: 'yes' }),
      /^Error: KSMKIT_REQUIRE_KERNEL="yes": allowed: 1 \(kernel tests must run\) or 0$/,
    );
  });
});
