/**
 * Parser fuzz: 10,000 random and mutated bad inputs to every parser a user
 * feeds (workload files, scenario files, /sys/kernel/mm/ksm values, the CLI's
 * option values, dump files). Each must be accepted or refused with the
 * parser's own error naming what was wrong (the file and place, the sysfs
 * file, the option): never a TypeError, a RangeError or any other crash that
 * would surface as a stack trace, and never a hang (each input has a time
 * budget). Seeded: a failure prints the seed, the input and the error.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { applyOverrides } from '../cli/simulate.ts';
import { Rng } from '../fuzz/rng.ts';
import { ErrnoError } from '../host/errno.ts';
import { parsePolicy } from '../policy/policy.ts';
import { parseScenario, ScenarioError } from '../simulate/scenario.ts';
import { parseSetOption } from '../simulate/sweep.ts';
import { SimulatedHost } from '../surface/simulated-host.ts';
import { checkDumpFiles } from '../tools/estimate/estimate.ts';
import { WRITABLE_SYSFS_NAMES } from '../workload/counters.ts';
import { parseWorkload, WorkloadError } from '../workload/parse.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SEED = 17_017;
/** No single input may take longer than this (a hang shows as a blown budget, not a stuck test). */
const BUDGET_MS = 1000;

const CORPUS_WORKLOADS = readdirSync(join(ROOT, 'conformance'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => readFileSync(join(ROOT, 'conformance', f), 'utf8'));
const CORPUS_SCENARIOS = readdirSync(join(ROOT, 'scenarios'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => readFileSync(join(ROOT, 'scenarios', f), 'utf8'));

const NASTY = [
  '',
  '-1',
  '0',
  '1e309',
  'NaN',
  'Infinity',
  '9007199254740993',
  '-0',
  '0x10',
  '1_000',
  '  7 ',
  '\u0000',
  '\uFEFF',
  '\u202E',
  '~',
  'null',
  '[]',
  '{}',
  '"',
  "'",
  '&a',
  '*a',
  '!!binary x',
  '<<: *x',
  '%YAML 1.1',
  '---',
  '...',
  '{a: [b, {c: d}]}',
  '1GiB',
  '18446744073709551616',
  '99999999999999999999TiB',
  '1.5min',
  'yes',
  'scan-time',
];

function randomText(rng: Rng, maxLength: number): string {
  const alphabets = [
    'abcdefghijklmnopqrstuvwxyz_',
    '0123456789.-+eE',
    ' \t\n:,[]{}#&*!|>\'"%@`-?',
    '\u0000\u0007\u001b\uFFFD\u00e9\u4e2d\uD83D\uDE00',
  ];
  let out = '';
  const length = rng.int(0, maxLength);
  for (let i = 0; i < length; i++) {
    if (rng.chance(0.05)) out += rng.pick(NASTY);
    else {
      const a = rng.pick(alphabets);
      out += a[rng.int(0, a.length - 1)];
    }
  }
  return out;
}

/** One edit of a valid text: the kind of damage a hand-edited file gets. */
function mutate(rng: Rng, text: string): string {
  const lines = text.split('\n');
  const at = rng.int(0, Math.max(0, text.length - 1));
  switch (rng.int(0, 8)) {
    case 0:
      return text.slice(0, at) + text.slice(at + rng.int(1, 40));
    case 1:
      return text.slice(0, at) + randomText(rng, 12) + text.slice(at);
    case 2:
      return text.slice(0, at);
    case 3: {
      const i = rng.int(0, lines.length - 1);
      const j = rng.int(0, lines.length - 1);
      [lines[i], lines[j]] = [lines[j]!, lines[i]!];
      return lines.join('\n');
    }
    case 4:
      // A number replaced by a hostile one.
      return text.replace(/\d+(\.\d+)?/g, (m) => (rng.chance(0.2) ? rng.pick(NASTY) : m));
    case 5:
      // A key misspelt.
      return text.replace(/^(\s*-?\s*)([a-z_]+):/gm, (m, pre: string, key: string) =>
        rng.chance(0.15) ? `${pre}${key.slice(0, -1)}x:` : m,
      );
    case 6: {
      const i = rng.int(0, lines.length - 1);
      lines[i] = ` ${lines[i]}`;
      return lines.join('\n');
    }
    case 7:
      return text.replace(/: (\S+)/, `: ${rng.pick(NASTY)}`);
    default: {
      let t = text;
      for (let k = 0; k < 3; k++) t = mutate(rng, t);
      return t;
    }
  }
}

interface Outcome {
  readonly accepted: number;
  readonly refused: number;
}

/**
 * Feeds `count` inputs to `parse`; an error must pass `isAnswer` (the parser's
 * own error, with a message naming the problem). Returns how many were
 * accepted and refused, so the test can check that the mutations do reach the
 * checks.
 */
function fuzz<T>(
  name: string,
  count: number,
  make: (rng: Rng, index: number) => T,
  parse: (input: T) => void,
  isAnswer: (error: unknown, input: T) => string | undefined,
): Outcome {
  const rng = new Rng(SEED);
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < count; i++) {
    const input = make(rng, i);
    const started = performance.now();
    try {
      parse(input);
      accepted++;
    } catch (error) {
      refused++;
      const wrong = isAnswer(error, input);
      if (wrong !== undefined)
        assert.fail(
          `${name} #${i} (seed ${SEED}): ${wrong}\ninput: ${JSON.stringify(input).slice(0, 2000)}\nerror: ${
            error instanceof Error ? error.stack : String(error)
          }`,
        );
    }
    const ms = performance.now() - started;
    assert.ok(
      ms < BUDGET_MS,
      `${name} #${i} took ${ms.toFixed(0)} ms: ${JSON.stringify(input).slice(0, 500)}`,
    );
  }
  return { accepted, refused };
}

/** Every issue of a file error names the file and a place or a key, and says something. */
function fileIssuesAnswer(error: unknown, file: string): string | undefined {
  if (!(error instanceof WorkloadError || error instanceof ScenarioError))
    return `not the parser's error: ${String(error)}`;
  if (error.issues.length === 0) return 'an error without an issue';
  for (const issue of error.issues) {
    if (issue.file !== file) return `an issue naming ${issue.file}, not ${file}`;
    if (issue.line === undefined && issue.path === '')
      return `an issue with neither a place nor a key: ${issue.message}`;
    if (issue.message.trim() === '') return 'an empty message';
  }
  return undefined;
}

/** A one-line message that names what it refuses. */
function sentence(error: unknown, names: string): string | undefined {
  if (!(error instanceof Error) || (error.constructor !== Error && error.name !== 'UsageError'))
    return `not a plain Error: ${error instanceof Error ? error.name : typeof error}`;
  if (error.message.includes('\n')) return 'a message of several lines';
  if (!error.message.includes(names)) return `the message does not name ${names}`;
  return undefined;
}

describe('parser fuzz: 10,000 bad inputs, each refused with a sentence', () => {
  test('workload files: 3,000 mutated corpus files and random texts', () => {
    const outcome = fuzz(
      'workload',
      3000,
      (rng, i) => (i % 10 === 9 ? randomText(rng, 300) : mutate(rng, rng.pick(CORPUS_WORKLOADS))),
      (text) => parseWorkload(text, 'fuzz.yaml', { baseDir: ROOT }),
      (error) => fileIssuesAnswer(error, 'fuzz.yaml'),
    );
    assert.ok(outcome.refused > 1500, `most mutations are caught (${outcome.refused} refused)`);
  });

  test('scenario files: 3,000 mutated built-ins and random texts', () => {
    const outcome = fuzz(
      'scenario',
      3000,
      (rng, i) => (i % 10 === 9 ? randomText(rng, 300) : mutate(rng, rng.pick(CORPUS_SCENARIOS))),
      (text) => parseScenario(text, 'fuzz-scenario.yaml'),
      (error) => fileIssuesAnswer(error, 'fuzz-scenario.yaml'),
    );
    assert.ok(outcome.refused > 1000, `most mutations are caught (${outcome.refused} refused)`);
  });

  test('/sys/kernel/mm/ksm values: 2,000 writes of random values to every writable file', () => {
    const sim = new SimulatedHost({ memoryBytes: 1 << 24 });
    const outcome = fuzz(
      'sysfs',
      2000,
      (rng) => ({
        file: rng.pick(WRITABLE_SYSFS_NAMES),
        value: rng.chance(0.3) ? rng.pick(NASTY) : randomText(rng, 24),
      }),
      ({ file, value }) => sim.sysfs.write(file, value),
      (error, { file }) =>
        !(error instanceof ErrnoError)
          ? `not an errno: ${String(error)}`
          : !error.message.includes(`/sys/kernel/mm/ksm/${file}`)
            ? `the message does not name the file: ${error.message}`
            : undefined,
    );
    assert.ok(outcome.refused > 1000, `${outcome.refused} refused`);
  });

  test('CLI option values: 1,500 of --set, --duration, --scale, --policy', () => {
    const scenario = parseScenario(CORPUS_SCENARIOS[0]!, 'base.yaml');
    const options = ['--set', '--duration', '--scale', '--policy'] as const;
    const outcome = fuzz(
      'cli',
      1500,
      (rng) => ({
        option: rng.pick(options),
        value: rng.chance(0.3)
          ? rng.pick(NASTY)
          : rng.chance(0.5)
            ? `${rng.pick(['pages_to_scan', 'run', 'sleep_millisecs', 'x'])}=${randomText(rng, 8)}`
            : randomText(rng, 16),
      }),
      ({ option, value }) => {
        if (option === '--set') parseSetOption(value);
        else if (option === '--policy') parsePolicy(value);
        else applyOverrides(scenario, option === '--duration' ? { duration: value } : { scale: value });
      },
      (error, { option }) => sentence(error, option === '--policy' ? '' : option),
    );
    assert.ok(outcome.refused > 1000, `${outcome.refused} refused`);
  });

  test('dump files: 500 random and damaged ELF and raw files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ksmkit-fuzz-dump-'));
    const elfHead = Buffer.alloc(64);
    elfHead.writeUInt32LE(0x464c457f, 0);
    elfHead[4] = 2;
    elfHead[5] = 1;
    const outcome = fuzz(
      'dump',
      500,
      (rng, i) => {
        const size = rng.pick([0, 1, 63, 64, 100, 4095, 4096, 8192 + rng.int(0, 100)]);
        const bytes = Buffer.alloc(size);
        for (let k = 0; k < size; k++) bytes[k] = rng.int(0, 255);
        if (rng.chance(0.6)) elfHead.copy(bytes, 0, 0, Math.min(size, rng.int(4, 64)));
        const path = join(dir, `f${i}.dump`);
        writeFileSync(path, bytes);
        return {
          path,
          format: rng.pick(['auto', 'raw', 'elf'] as const),
          offset: rng.pick([0, 0, 1, 4096, 1e9]),
        };
      },
      ({ path, format, offset }) => {
        const problems = checkDumpFiles([path], format, offset);
        if (problems.length > 0) throw new Error(problems.join('\n'));
      },
      (error, { path }) =>
        !(error instanceof Error) || error.constructor !== Error
          ? `a crash: ${String(error)}`
          : !error.message.startsWith(`${path}: `)
            ? 'the message does not start with the file'
            : error.message.split(path).length !== 2
              ? 'the path is named twice'
              : undefined,
    );
    assert.ok(outcome.refused > 250, `${outcome.refused} refused`);
  });
});
