/** A programmer error: a broken invariant of the engine, never a user's bad input (those are errno errors). */
export class AssertionFailure extends Error {
  override name = 'AssertionFailure';
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionFailure(message);
}

/**
 * Throws an AssertionFailure. Hot paths write `if (!cond) fail(\`...\`)` so that
 * the message is only built when the check fails.
 */
export function fail(message: string): never {
  throw new AssertionFailure(message);
}

export function assertNever(value: never, what = 'value'): never {
  throw new AssertionFailure(`unexpected ${what}: ${String(value)}`);
}
