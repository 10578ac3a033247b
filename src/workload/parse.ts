/**
 * Reading a workload file: YAML or JSON text → a validated `Workload`, or a
 * `WorkloadError` listing every problem as `file:line:col: key.path: message`.
 *
 * Three passes, each collecting all it finds: YAML syntax (yaml's own errors),
 * shape (schema.ts), sequence (check.ts). JSON goes through the YAML parser too,
 * so both get positions.
 */

import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  type YAMLError,
} from 'yaml';
import type { z } from 'zod';
import { AssertionFailure, assertNever } from '../host/assert.ts';
import { sysfsValue } from '../surface/sysfs.ts';
import {
  checkSequence,
  completeProcess,
  type KeyPath,
  type PathIssue,
  type ProcessCheckEntry,
  type SequenceInput,
} from './check.ts';
import { parseCounterRef } from './counters.ts';
import {
  type ContentRunEntry,
  type ContentSpecEntry,
  nameSchema,
  type ProcessEntry,
  processSchema,
  type RegionEntry,
  regionSchema,
  type StepEntry,
  stepSchema,
  UNLESS_UNKNOWN_KEY,
  type WorkloadFile,
  workloadFileSchema,
} from './schema.ts';
import {
  type ContentRun,
  type ContentSpec,
  type ExpectedCounter,
  type ProcessSpec,
  type RegionSpec,
  type Step,
  type SysfsSetting,
  WORKLOAD_VERSION,
  type Workload,
} from './workload.ts';

export interface WorkloadIssue {
  /** The file name as given to the parser. */
  readonly file: string;
  /** 1-based; absent when the problem has no place in the text (the file cannot be read). */
  readonly line?: number;
  readonly col?: number;
  /** YAML key path, dot-separated (`processes.0.regions.0.pages`); empty for the whole document. */
  readonly path: string;
  readonly message: string;
}

/** `w.yaml:8:19: processes.0.regions.0.mergable: unknown key; allowed: ...` */
export function formatWorkloadIssue(issue: WorkloadIssue): string {
  const place = issue.line === undefined ? issue.file : `${issue.file}:${issue.line}:${issue.col ?? 1}`;
  return issue.path === '' ? `${place}: ${issue.message}` : `${place}: ${issue.path}: ${issue.message}`;
}

/** An invalid workload (exit status 2). `issues` holds every problem found, in file order. */
export class WorkloadError extends Error {
  override name = 'WorkloadError';
  readonly issues: readonly WorkloadIssue[];

  constructor(issues: readonly WorkloadIssue[]) {
    super(issues.map(formatWorkloadIssue).join('\n'));
    this.issues = issues;
  }
}

export interface ParseOptions {
  /** Directory for relative `file:` paths; default: the directory of `fileName`. */
  readonly baseDir?: string;
}

/**
 * Why a file named by the user could not be read, in words and without its
 * path (the caller names the file once): `no such file`, `is a directory`.
 */
export function fileReadProblem(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EISDIR') return 'is a directory, not a file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  return error instanceof Error ? error.message : String(error);
}

/** Reads and validates a workload file (YAML or JSON). Throws `WorkloadError`. */
export async function loadWorkload(path: string): Promise<Workload> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new WorkloadError([{ file: path, path: '', message: `cannot read: ${fileReadProblem(error)}` }]);
  }
  return parseWorkload(text, path);
}

/**
 * The document's value, or what the YAML library refused while building it
 * (an alias whose anchor is missing, an alias bomb) with where: these are
 * thrown by `toJS()`, after parsing found no error.
 */
export function documentValue(
  doc: ReturnType<typeof parseDocument>,
  text: string,
): { readonly value: unknown } | { readonly message: string; readonly offset: number } {
  try {
    return { value: doc.toJS({ maxAliasCount: 1000 }) };
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const alias = /alias[^:]*: (\S+)$/.exec(message)?.[1];
    const offset = alias === undefined ? 0 : Math.max(0, text.indexOf(`*${alias}`));
    return { message: message.replace(/^\w*Error: /, ''), offset };
  }
}

/** Validates workload text (YAML or JSON); `fileName` names it in messages. Throws `WorkloadError`. */
export function parseWorkload(text: string, fileName: string, options: ParseOptions = {}): Workload {
  const baseDir = options.baseDir ?? dirname(resolve(fileName));
  const lineCounter = new LineCounter();
  const doc = parseDocument(text.startsWith('\uFEFF') ? text.slice(1) : text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: true,
  });
  const issueAt = (offset: number, path: KeyPath, message: string): PositionedIssue => {
    const { line, col } = lineCounter.linePos(offset);
    return { offset, issue: { file: fileName, line, col, path: path.join('.'), message } };
  };

  if (doc.errors.length > 0) {
    throw toError(doc.errors.map((error) => issueAt(error.pos[0], [], yamlMessage(error))));
  }
  const js = documentValue(doc, text);
  if ('message' in js) throw toError([issueAt(js.offset, [], js.message)]);
  const raw: unknown = js.value;
  const locate = (pathIssue: PathIssue): PositionedIssue =>
    issueAt(locateOffset(doc, pathIssue.path), pathIssue.path, pathIssue.message);

  const shape = workloadFileSchema.safeParse(raw);
  if (shape.success) {
    const sequenceIssues = checkSequence({
      processes: shape.data.processes.map(completeProcess),
      steps: shape.data.steps,
      rawSteps: shape.data.steps,
      baseDir,
    });
    if (sequenceIssues.length > 0) throw toError(sequenceIssues.map(locate));
    return buildWorkload(shape.data, doc, fileName, baseDir);
  }

  const issues = shapeIssues(shape.error.issues).map(locate);
  issues.push(...checkSequence(partialEntries(raw, baseDir)).map(locate));
  throw toError(issues);
}

interface PositionedIssue {
  readonly offset: number;
  readonly issue: WorkloadIssue;
}

function toError(issues: readonly PositionedIssue[]): WorkloadError {
  const seen = new Set<string>();
  const unique = issues.filter(({ issue }) => {
    const key = formatWorkloadIssue(issue);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return new WorkloadError(unique.sort((a, b) => a.offset - b.offset).map(({ issue }) => issue));
}

/** yaml's message without its own position (ours is added), and in the workload's terms where yaml speaks of its API. */
function yamlMessage(error: YAMLError): string {
  if (error.code === 'MULTIPLE_DOCS') return 'a second YAML document; a workload file holds exactly one';
  return error.message.replace(/ at line \d+, column \d+:?[\s\S]*$/, '');
}

/** One issue per unknown key; issues that only follow from an unknown key in the same map are dropped. */
function shapeIssues(issues: readonly z.core.$ZodIssue[]): PathIssue[] {
  const pathsWithUnknownKeys = new Set(
    issues.filter((issue) => issue.code === 'unrecognized_keys').map((issue) => issue.path.join('\u0000')),
  );
  const result: PathIssue[] = [];
  for (const issue of issues) {
    const path = issue.path.map((segment) => (typeof segment === 'number' ? segment : String(segment)));
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) result.push({ path: [...path, key], message: issue.message });
      continue;
    }
    const dependsOnKeys =
      issue.code === 'custom' && issue.params?.unlessUnknownKey === UNLESS_UNKNOWN_KEY.unlessUnknownKey;
    if (dependsOnKeys && pathsWithUnknownKeys.has(issue.path.join('\u0000'))) continue;
    result.push({ path, message: issue.message });
  }
  return result;
}

/** When the file fails the shape check, each process, region and step is checked on its own for the sequence pass. */
function partialEntries(raw: unknown, baseDir: string): SequenceInput {
  const rawSteps = listAt(raw, 'steps');
  return {
    processes: listAt(raw, 'processes').map(partialProcess),
    steps: rawSteps.map((entry) => parsedOrUndefined(stepSchema.safeParse(entry))),
    rawSteps,
    baseDir,
  };
}

function partialProcess(raw: unknown): ProcessCheckEntry {
  const parsed = processSchema.safeParse(raw);
  if (parsed.success) return completeProcess(parsed.data);
  const rawRegions = listAt(raw, 'regions');
  const name = parsedOrUndefined(nameSchema.safeParse(valueAt(raw, 'name')));
  return {
    name,
    regions: rawRegions.map((region) => parsedOrUndefined(regionSchema.safeParse(region))),
    rawRegionNames: rawRegions.map((region) =>
      parsedOrUndefined(nameSchema.safeParse(valueAt(region, 'name'))),
    ),
  };
}

function parsedOrUndefined<T>(result: { success: true; data: T } | { success: false }): T | undefined {
  return result.success ? result.data : undefined;
}

function valueAt(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
}

function listAt(value: unknown, key: string): unknown[] {
  const list = valueAt(value, key);
  return Array.isArray(list) ? list : [];
}

/**
 * Offset of the node at `path`; for a key that is missing, of the deepest map
 * that exists on the way (where the key should be added).
 */
function locateOffset(doc: Document.Parsed, path: KeyPath): number {
  let node: Node | null = doc.contents;
  let offset = node?.range?.[0] ?? 0;
  for (const segment of path) {
    if (node === null || isAlias(node)) break;
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => isScalar(item.key) && String(item.key.value) === String(segment),
      );
      if (pair === undefined) break;
      const value = pair.value as Node | null;
      const valueIsEmpty = value === null || (isScalar(value) && value.value === null && value.source === '');
      const target = valueIsEmpty ? (pair.key as Node) : value;
      node = target;
      offset = target.range?.[0] ?? offset;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment] as Node | null | undefined;
      if (item === undefined || item === null) break;
      node = item;
      offset = item.range?.[0] ?? offset;
    } else {
      break;
    }
  }
  return offset;
}

// --- building the typed workload -------------------------------------------------

function buildWorkload(
  file: WorkloadFile,
  doc: Document.Parsed,
  fileName: string,
  baseDir: string,
): Workload {
  const workload: Workload = {
    version: WORKLOAD_VERSION,
    name: file.name,
    ksm: settings(file.ksm ?? {}, doc, ['ksm']),
    processes: file.processes.map(processSpec),
    steps: file.steps.map((entry, index) => step(entry, doc, ['steps', index])),
    fileName,
    baseDir,
  };
  return file.description === undefined ? workload : { ...workload, description: file.description };
}

/**
 * Settings in file order, each value as the exact text to write: strings as
 * they are, numbers and booleans as spelt in the file, so that `1e3` or a
 * number beyond 2^53 reaches sysfs unchanged and the kernel judges it.
 */
function settings(
  entries: Readonly<Record<string, string | number | boolean | undefined>>,
  doc: Document.Parsed,
  path: KeyPath,
): SysfsSetting[] {
  const result: SysfsSetting[] = [];
  for (const [name, value] of Object.entries(entries)) {
    if (value === undefined) continue;
    result.push({ name, value: typeof value === 'string' ? value : sourceText(doc, [...path, name], value) });
  }
  return result;
}

function sourceText(doc: Document.Parsed, path: KeyPath, value: number | boolean): string {
  const node = doc.getIn(path, true);
  return isScalar(node) && typeof node.source === 'string' && node.source !== ''
    ? node.source
    : String(value);
}

function processSpec(entry: ProcessEntry): ProcessSpec {
  const identity = {
    ...(entry.uid === undefined ? {} : { uid: entry.uid }),
    ...(entry.cgroup === undefined ? {} : { cgroup: entry.cgroup }),
    ...(entry.label === undefined ? {} : { label: entry.label }),
    ...(entry.cap_sys_admin === undefined ? {} : { capSysAdmin: entry.cap_sys_admin }),
  };
  return {
    name: entry.name,
    memoryMerge: entry.memory_merge ?? false,
    regions: (entry.regions ?? []).map(regionSpec),
    ...(Object.keys(identity).length > 0 ? { identity } : {}),
  };
}

function regionSpec(entry: RegionEntry): RegionSpec {
  return {
    name: entry.name,
    pageCount: entry.pages,
    mergeable: entry.mergeable ?? false,
    shared: entry.shared ?? false,
    thp: entry.thp ?? false,
    mlock: entry.mlock ?? false,
    content: entry.content.map(contentRun),
  };
}

function contentRun(entry: ContentRunEntry): ContentRun {
  return { pageCount: entry.pages, spec: contentSpec(entry) };
}

function contentSpec(entry: ContentSpecEntry): ContentSpec {
  if (entry.zero !== undefined) return { kind: 'zero' };
  if (entry.byte !== undefined) return { kind: 'byte', value: entry.byte };
  if (entry.tag !== undefined) return { kind: 'tag', tag: entry.tag };
  if (entry.image !== undefined) return { kind: 'image', image: entry.image, offsetPages: entry.offset ?? 0 };
  if (entry.unique !== undefined) return { kind: 'unique' };
  if (entry.file !== undefined) return { kind: 'file', path: entry.file, offsetBytes: entry.offset ?? 0 };
  throw new AssertionFailure('contentSpec: the schema admits no content spec without a kind');
}

function step(entry: StepEntry, doc: Document.Parsed, path: KeyPath): Step {
  const op = (Object.keys(entry) as Exclude<keyof StepEntry, 'as'>[]).find(
    (key) => (key as keyof StepEntry) !== 'as' && entry[key] !== undefined,
  );
  switch (op) {
    case 'scan':
      return { op, passes: entry.scan! };
    case 'write': {
      const { process, region, page, content } = entry.write!;
      const pageCount = entry.write!.pages ?? 1;
      const runs = Array.isArray(content)
        ? content.map(contentRun)
        : [{ pageCount, spec: contentSpec(content) }];
      return { op, process, region, pageIndex: page, pageCount, content: runs };
    }
    case 'read': {
      const { process, region, page } = entry.read!;
      return { op, process, region, pageIndex: page, pageCount: entry.read!.pages ?? 1 };
    }
    case 'madvise':
      return { op, ...entry.madvise! };
    case 'prctl':
      return { op, process: entry.prctl!.process, memoryMerge: entry.prctl!.memory_merge };
    case 'mmap':
      return { op, process: entry.mmap!.process, region: regionSpec(entry.mmap!.region) };
    case 'munmap':
      return { op, ...entry.munmap! };
    case 'fork':
      return { op, ...entry.fork! };
    case 'exit':
      return { op, ...entry.exit! };
    case 'set':
      return {
        op,
        settings: settings(entry.set!, doc, [...path, 'set']),
        ...(entry.as === undefined ? {} : { as: entry.as }),
      };
    case 'expect':
      return {
        op,
        counters: Object.entries(entry.expect!).map(([counter, value]) => expected(counter, value)),
      };
    case undefined:
      throw new AssertionFailure('step: the schema admits no step without an operation');
    default:
      return assertNever(op, 'step operation');
  }
}

/** `yes`/`no` for a ksm_stat yes/no line become booleans, as backends report them. */
function expected(counter: string, value: unknown): ExpectedCounter {
  const ref = parseCounterRef(counter);
  if (ref?.row.value === 'yes-no' && typeof value === 'string') return { counter, value: value === 'yes' };
  // A quoted integer compares as the backends report it: a number where that is exact, else its canonical text.
  if (ref?.row.value === 'integer' && typeof value === 'string')
    return { counter, value: sysfsValue(counter, BigInt(value).toString()) };
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'string') {
    return { counter, value };
  }
  throw new AssertionFailure(`expected: the schema admits no value ${String(value)} for ${counter}`);
}
