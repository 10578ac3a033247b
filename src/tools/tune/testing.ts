/** For the tune tests: `ksmkit ARGS` as a child process (its stdout and stderr lines collected as they come), and a decision. */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { DecisionRecord } from '../../tuner/loop.ts';

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

/** A decision of the objective policy, as TuneLoop records it: the exports' tests. */
export function tuneDecisionRecord(seq: number, over: Partial<DecisionRecord> = {}): DecisionRecord {
  const gib = 1024 * 1024;
  return {
    seq,
    policy: 'objective',
    inputs: {
      nowMs: 0,
      meminfo: {
        MemTotal: 16 * gib,
        MemFree: 8 * gib,
        MemAvailable: 8 * gib,
        Buffers: 0,
        Cached: 0,
        SwapFree: 0,
      },
      committedKb: 0,
      ksm: {
        run: 1,
        pages_to_scan: 100,
        sleep_millisecs: 20,
        advisor_mode: 'none',
        full_scans: 4,
        pages_scanned: 40_000,
        pages_shared: 10,
        pages_sharing: 90,
      },
      ksmdCpuNs: 0,
    },
    measured: undefined,
    decision: {
      action: 'adjust',
      settings: { pages_to_scan: 400 },
      reason: 'full scan 480 s, target 120 s: pages_to_scan 100 → 400\n(second line)',
      warnings: [],
      debug: [],
    },
    written: { pages_to_scan: 400 },
    failures: [],
    dryRun: false,
    cowLeftKb: 8 * gib,
    ...over,
  };
}
