/**
 * The built-in scenarios: the YAML files of the repository's `scenarios/`
 * folder (found from this module, so the same from src/ and from dist/).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseScenario, type Scenario } from './scenario.ts';

export const SCENARIO_DIR = fileURLToPath(new URL('../../scenarios/', import.meta.url));

/** The scenario `ksmkit simulate` runs when none is named. */
export const DEFAULT_SCENARIO = 'kvm-clones';

/** Names of the built-in scenarios, sorted. */
export function builtInNames(): string[] {
  if (!existsSync(SCENARIO_DIR)) return [];
  return readdirSync(SCENARIO_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -'.yaml'.length))
    .sort();
}

/** The file of a built-in scenario, or undefined when `name` is not one. */
export function builtInPath(name: string): string | undefined {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) return undefined;
  const path = join(SCENARIO_DIR, `${name}.yaml`);
  return existsSync(path) ? path : undefined;
}

/** A built-in scenario, parsed (throws ScenarioError if the shipped file is broken). */
export function builtIn(name: string): Scenario {
  const path = builtInPath(name);
  if (path === undefined)
    throw new Error(`no built-in scenario "${name}"; built in: ${builtInNames().join(', ')}`);
  return parseScenario(readFileSync(path, 'utf8'), `scenarios/${name}.yaml`);
}

/** Edit distance (insert, delete, substitute one character), for "did you mean". */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row.push(
        Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)),
      );
    previous = row;
  }
  return previous[b.length]!;
}

/** The built-in names, the closest to `name` first (ties in name order). */
export function builtInNamesClosestTo(name: string): string[] {
  const wanted = name.toLowerCase();
  return builtInNames()
    .map((n) => ({ n, d: editDistance(wanted, n) - (n.startsWith(wanted) || wanted.startsWith(n) ? 1 : 0) }))
    .sort((x, y) => x.d - y.d || x.n.localeCompare(y.n))
    .map((x) => x.n);
}
