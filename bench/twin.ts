/**
 * `npm run bench:twin [-- --size 16GiB --processes 16 --samples 2 --interval 5s]`:
 * how long `simulate --from-host` takes on a large set of processes. Starts
 * `--processes` Node processes holding `--size` of memory in all (per
 * process: 60% pages of one image shared by all, 15% zero-filled, 25% of its
 * own), builds their twin as the command does (every KSM-compatible VMA,
 * `--samples` reads `--interval` apart), runs it on the engine at Linux's
 * default settings until the saving settles, and prints the two wall times,
 * the reading speed, the peak resident memory and the run's result (JSON with
 * --json). A benchmark, not a test: the issue's goal is under a minute for
 * each at 16 GiB, and the figures depend on the machine and its load.
 *
 * The processes register nothing with KSM (no madvise): KSM is not touched.
 * Mind the machine's memory: the processes hold --size, the twin 8 bytes a
 * page, the engine about 100 bytes a page.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { processCpuNs, readPeakRssBytes } from '../src/bench/proc.ts';
import { loadCalibration } from '../src/simulate/cost.ts';
import { runOnEngine } from '../src/simulate/engine-run.ts';
import { summarize } from '../src/simulate/summary.ts';
import { twinPages, twinScenario, twinWritesPerSecond } from '../src/simulate/twin.ts';
import { captureHost } from '../src/simulate/twin-capture.ts';
import { formatBytes, formatDuration, parseDurationMs, parseSizeBytes } from '../src/simulate/units.ts';

const PAGE_BYTES = 4096;

/** A process holding `bytes`: image pages (the same in every process), zero pages, its own pages; then "ready". */
function holderScript(bytes: number, seed: number): string {
  return `
const { randomFillSync } = require('node:crypto');
const pages = ${Math.floor(bytes / PAGE_BYTES)};
const chunkPages = 65536;
const chunks = [];
for (let first = 0; first < pages; first += chunkPages) {
  const n = Math.min(chunkPages, pages - first);
  const b = Buffer.alloc(n * 4096);
  for (let i = 0; i < n; i++) {
    const p = first + i;
    const share = p / pages;
    if (share < 0.6) b.writeUInt32LE(p + 1, i * 4096);
    else if (share < 0.75) b[i * 4096] = 0;
    else { randomFillSync(b, i * 4096, 64); b.writeUInt32LE(${seed}, i * 4096 + 64); }
  }
  chunks.push(b);
}
process.stdout.write('ready ' + process.pid + '\\n');
setInterval(() => chunks.length, 1 << 30);
`;
}

async function startHolder(bytes: number, seed: number): Promise<{ child: ChildProcess; pid: number }> {
  const child = spawn(process.execPath, ['--max-old-space-size=256', '-e', holderScript(bytes, seed)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const pid = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /ready (\d+)/.exec(out);
      if (m !== null) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`a holder exited (${code}) before it was ready`)));
  });
  return { child, pid };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: '16GiB' },
      processes: { type: 'string', default: '16' },
      samples: { type: 'string', default: '2' },
      interval: { type: 'string', default: '5s' },
      json: { type: 'boolean', default: false },
    },
  });
  const sizeBytes = parseSizeBytes(values.size);
  const processes = Number(values.processes);
  const samples = Number(values.samples);
  const intervalMs = parseDurationMs(values.interval);
  if (sizeBytes === undefined || sizeBytes <= 0)
    throw new Error(`--size ${values.size}: expected a size such as 16GiB`);
  if (!(Number.isInteger(processes) && processes >= 1))
    throw new Error('--processes: expected an integer >= 1');
  if (!(Number.isInteger(samples) && samples >= 1)) throw new Error('--samples: expected an integer >= 1');
  if (intervalMs === undefined || intervalMs <= 0)
    throw new Error(`--interval ${values.interval}: expected a duration`);
  const say = (line: string) => {
    if (!values.json) console.log(line);
  };
  say(`Starting ${processes} processes holding ${formatBytes(sizeBytes)} in all…`);
  const holders: { child: ChildProcess; pid: number }[] = [];
  const stop = () => {
    for (const h of holders) h.child.kill('SIGKILL');
  };
  process.once('SIGINT', () => {
    stop();
    process.exit(130);
  });
  try {
    for (let i = 0; i < processes; i++)
      holders.push(await startHolder(Math.floor(sizeBytes / processes), i + 1));
    say(`Building the twin (${samples} reads ${formatDuration(intervalMs)} apart)…`);
    const wall0 = performance.now();
    const cpu0 = processCpuNs();
    const twin = await captureHost({
      pids: holders.map((h) => h.pid),
      vmaMode: 'compatible',
      samples,
      intervalMs,
    });
    const buildWallMs = performance.now() - wall0;
    const buildCpuNs = processCpuNs() - cpu0;
    stop();
    const pages = twinPages(twin);
    // The reads themselves: the build less the waits between samples.
    const readWallMs = buildWallMs - (samples - 1) * intervalMs;
    const regions = twin.processes.reduce((n, p) => n + p.regions.length, 0);
    say(
      `Twin: ${formatBytes(pages * PAGE_BYTES)} in ${twin.processes.length} processes (${regions} volatile regions, ${Math.round(twinWritesPerSecond(twin))} pages rewritten a second), built in ${(buildWallMs / 1000).toFixed(1)} s ` +
        `(reads ${(readWallMs / 1000).toFixed(1)} s: ${((samples * pages * PAGE_BYTES) / 2 ** 30 / (readWallMs / 1000)).toFixed(2)} GiB/s)`,
    );
    const calibration = loadCalibration();
    // Linux's default pacing (this machine's ksmd may be held still by a test).
    const settings = [
      { name: 'pages_to_scan', value: '100' },
      { name: 'sleep_millisecs', value: '20' },
    ];
    const scenario = twinScenario(twin, { calibration, settings });
    say(`Running it: ${formatDuration(scenario.durationMs)} of virtual time at Linux's default pacing…`);
    const wall1 = performance.now();
    const cpu1 = processCpuNs();
    const run = runOnEngine(scenario, { figures: calibration.figures, settings });
    const runWallMs = performance.now() - wall1;
    const runCpuNs = processCpuNs() - cpu1;
    const summary = summarize(scenario, run.samples, calibration.figures, run.steadyAtMs);
    const result = {
      sizeBytes,
      processes,
      twinPages: pages,
      samples,
      intervalMs,
      buildWallMs: Math.round(buildWallMs),
      readWallMs: Math.round(readWallMs),
      buildCpuMs: Math.round(buildCpuNs / 1e6),
      runWallMs: Math.round(runWallMs),
      runCpuMs: Math.round(runCpuNs / 1e6),
      virtualMs: scenario.durationMs,
      volatileRegions: regions,
      writesPerSecond: Math.round(twinWritesPerSecond(twin)),
      steadyAtMs: run.steadyAtMs,
      savingBytes: summary.savingBytes,
      timeTo90Ms: summary.timeToMs[90],
      peakRssBytes: readPeakRssBytes(),
    };
    if (values.json) console.log(JSON.stringify(result));
    else {
      say(
        `Run: ${(runWallMs / 1000).toFixed(1)} s of wall time for ${formatDuration(scenario.durationMs)} of virtual time` +
          `${run.steadyAtMs === undefined ? '' : ` (steady from ${formatDuration(run.steadyAtMs)})`}; saving ${formatBytes(summary.savingBytes)}, ` +
          `90% after ${summary.timeToMs[90] === undefined ? '—' : formatDuration(summary.timeToMs[90])}`,
      );
      say(`Peak resident memory of this process: ${formatBytes(result.peakRssBytes)}`);
      say('Not a timed test: the figures depend on the machine and on what else runs on it.');
    }
  } finally {
    stop();
  }
}

main().catch((e: unknown) => {
  console.error(`bench:twin: ${(e as Error).message}`);
  process.exitCode = 1;
});
