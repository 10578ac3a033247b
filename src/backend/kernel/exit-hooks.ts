/**
 * Clean-up for what a kernel test or script starts besides the kernel
 * backend's agents (a tuning daemon, a vm.nr_hugepages reservation), on every
 * exit path. The SysfsGuard ends the process on a signal by sending it again,
 * so an 'exit' handler alone would not run there.
 */

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Runs `fn` once on exit or on a signal, whichever comes first; returns the
 * call that cancels it. After `fn` a signal still ends the process: through
 * the SysfsGuard's own handler when one is installed (register this first,
 * before the kernel backend starts, so that the guard's runs after it),
 * else by sending the signal again.
 */
export function onEveryExit(fn: () => void): () => void {
  const onSignal = (signal: NodeJS.Signals): void => {
    cancel();
    fn();
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  const onExit = (): void => {
    cancel();
    fn();
  };
  const cancel = (): void => {
    process.off('exit', onExit);
    for (const s of SIGNALS) process.off(s, onSignal);
  };
  process.once('exit', onExit);
  for (const s of SIGNALS) process.once(s, onSignal);
  return cancel;
}
