/** For the tune tests: `ksmkit ARGS` as a child process, its stdout and stderr lines collected as they come. */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const KSMKIT_MAIN = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));

export function spawnKsmkit(args: readonly string[]): { child: ChildProcess; lines: string[] } {
  const child = spawn(process.execPath, ['--import', 'tsx', KSMKIT_MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  for (const stream of [child.stdout!, child.stderr!]) {
    let buffered = '';
    stream.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      lines.push(...parts);
    });
  }
  return { child, lines };
}
