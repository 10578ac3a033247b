/**
 * `npm run bench`: the engine against the real ksmd on the same workloads,
 * pages per CPU-second per pass, side by side; a table here and a JSON file.
 *
 *   npm run bench                               256M, 1G and 4G; every mix; ksmd where it can run
 *   npm run bench -- --quick                    256M only
 *   npm run bench -- --sizes 1G --mixes dup50   one workload
 *   npm run bench -- --no-kernel --scale        the engine only, plus the 64 GiB scale run
 *
 * The logic is in src/bench/ (see harness.ts); this file only wires it up.
 */
import { writeFileSync } from 'node:fs';
import { CommanderError } from '@commander-js/extra-typings';
import { readmeTable, renderTerminal } from '../src/bench/format.ts';
import { runBench } from '../src/bench/harness.ts';
import { parseBenchCommandLine } from '../src/bench/options.ts';

let line: ReturnType<typeof parseBenchCommandLine>;
try {
  line = parseBenchCommandLine(process.argv.slice(2), process.stdout.isTTY === true);
} catch (e) {
  process.exit(e instanceof CommanderError ? e.exitCode : 2);
}
const results = await runBench({ ...line.bench, log: (l) => console.error(l) });
writeFileSync(line.jsonPath, `${JSON.stringify(results, null, 2)}\n`);
console.log(renderTerminal(results, line.color));
console.log(`results: ${line.jsonPath}`);
if (line.markdownPath !== undefined) {
  writeFileSync(line.markdownPath, `${readmeTable(results)}\n`);
  console.log(`README table: ${line.markdownPath}`);
}
