/**
 * Skipping a real-kernel test, or failing it where CI said the kernel must run.
 *
 * Every test that needs this machine's kernel (root, KSM, the built agent or
 * helpers, python3 for the workloads) skips with a one-line reason where it
 * cannot run, so that `npm test` passes on a laptop. On a machine that has all
 * of it (CI, the project's own host), a skip would let the run pass green with
 * the kernel silently out of it: `.ci/run` exports KSMKIT_REQUIRE_KERNEL=1, and
 * then every such skip is a failure that names the reason instead.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';

export const REQUIRE_KERNEL_ENV = 'KSMKIT_REQUIRE_KERNEL';

/** True where KSMKIT_REQUIRE_KERNEL=1; any other value than unset, '' or 0/1 is refused (a typo must not pass). */
export function kernelRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = env[REQUIRE_KERNEL_ENV];
  if (value === undefined || value === '' || value === '0') return false;
  if (value === '1') return true;
  throw new Error(`${REQUIRE_KERNEL_ENV}=${JSON.stringify(value)}: allowed: 1 (kernel tests must run) or 0`);
}

/** The failure's message: why the kernel part did not run, and what asked for it. */
export function requiredMessage(reason: string): string {
  return `${REQUIRE_KERNEL_ENV}=1 but a real-kernel test cannot run here: ${reason}`;
}

const reported = new Set<string>();

/**
 * node:test's `skip` option for a real-kernel test: false where it can run
 * (`reason` undefined or false), else the reason. With KSMKIT_REQUIRE_KERNEL=1
 * the tests still skip (their bodies would fail on something less clear), and
 * one test named after the reason fails in their place, once per reason and file.
 */
export function kernelSkip(reason: string | false | undefined): string | false {
  if (reason === undefined || reason === false) return false;
  if (kernelRequired() && !reported.has(reason)) {
    reported.add(reason);
    test(`real-kernel tests required (${REQUIRE_KERNEL_ENV}=1)`, () => {
      assert.fail(requiredMessage(reason));
    });
  }
  return reason;
}

/** Inside a running test: skips it with the reason, or fails it with KSMKIT_REQUIRE_KERNEL=1. */
export function skipKernelTest(t: TestContext, reason: string): void {
  if (kernelRequired()) assert.fail(requiredMessage(reason));
  t.skip(reason);
}
