/**
 * A `Workload` back to the text of a workload file (workload-format.md,
 * version 1), such that `parseWorkload(workloadToYaml(w), w.fileName,
 * { baseDir: w.baseDir })` deep-equals `w`. The fuzzer saves what it finds
 * with it, and the shrinker re-validates every candidate through it.
 *
 * Defaults are left out (`pages: 1` of a write or read, false flags, image
 * offset 0); steps and content runs are written as one-line flow maps, so a
 * saved workload reads like the hand-written corpus.
 */

import { Document, isMap, isPair, isSeq, type Node, type Pair, type YAMLMap } from 'yaml';
import { assertNever } from '../host/assert.ts';
import type {
  ContentRun,
  ContentSpec,
  ExpectedCounter,
  ProcessSpec,
  RegionSpec,
  Step,
  SysfsSetting,
  Workload,
} from '../workload/index.ts';

type Entry = Record<string, unknown>;

export interface ToYamlOptions {
  /** Lines written as `# ...` comments above the document (a line with newlines becomes several). */
  readonly header?: readonly string[];
}

export function workloadToYaml(workload: Workload, options: ToYamlOptions = {}): string {
  const file: Entry = { version: workload.version, name: workload.name };
  if (workload.description !== undefined) file.description = workload.description;
  if (workload.ksm.length > 0) file.ksm = settingsEntry(workload.ksm);
  file.processes = workload.processes.map(processEntry);
  file.steps = workload.steps.map(stepEntry);

  const doc = new Document(file);
  flowInside(doc.get('processes', true));
  const steps = doc.get('steps', true);
  if (isSeq(steps)) {
    for (const item of steps.items) {
      if (!isMap(item)) continue;
      const pair = item.items[0];
      const op = pair === undefined ? undefined : scalarKey(pair);
      // A one-line map per step, except mmap (its region reads better as a block with flow runs).
      if (op === 'mmap') flowInside(pair?.value as Node);
      else if (isMap(pair?.value)) (pair.value as YAMLMap).flow = true;
    }
  }
  const header = (options.header ?? [])
    .flatMap((line) => line.split('\n'))
    .map((line) => (line === '' ? '#\n' : `# ${line}\n`))
    .join('');
  return header + doc.toString({ lineWidth: 0, flowCollectionPadding: true });
}

function scalarKey(pair: Pair): string | undefined {
  const key = pair.key as { value?: unknown } | null;
  return typeof key?.value === 'string' ? key.value : undefined;
}

/** Makes every content run (a map inside a `content:` list) a flow map, at any depth under `node`. */
function flowInside(node: unknown): void {
  if (isSeq(node)) {
    for (const item of node.items) flowInside(item);
  } else if (isMap(node)) {
    for (const pair of node.items) {
      if (!isPair(pair)) continue;
      if (scalarKey(pair) === 'content') {
        const value = pair.value;
        if (isSeq(value)) for (const run of value.items) if (isMap(run)) run.flow = true;
        if (isMap(value)) value.flow = true;
      } else {
        flowInside(pair.value);
      }
    }
  }
}

/** A value that reads back as the same text: a canonical integer as a number, anything else as a string. */
function settingValue(value: string): string | number {
  const n = Number(value);
  return /^(0|[1-9][0-9]*)$/.test(value) && Number.isSafeInteger(n) ? n : value;
}

function settingsEntry(settings: readonly SysfsSetting[]): Entry {
  const entry: Entry = {};
  for (const { name, value } of settings) entry[name] = settingValue(value);
  return entry;
}

function contentSpecEntry(spec: ContentSpec): Entry {
  switch (spec.kind) {
    case 'zero':
      return { zero: true };
    case 'byte':
      return { byte: spec.value };
    case 'tag':
      return { tag: spec.tag };
    case 'image':
      return spec.offsetPages === 0 ? { image: spec.image } : { image: spec.image, offset: spec.offsetPages };
    case 'unique':
      return { unique: true };
    case 'file':
      return spec.offsetBytes === 0 ? { file: spec.path } : { file: spec.path, offset: spec.offsetBytes };
    default:
      return assertNever(spec, 'content spec');
  }
}

function runEntries(runs: readonly ContentRun[]): Entry[] {
  return runs.map((run) => ({ pages: run.pageCount, ...contentSpecEntry(run.spec) }));
}

function regionEntry(region: RegionSpec): Entry {
  const entry: Entry = { name: region.name, pages: region.pageCount, mergeable: region.mergeable };
  if (region.shared) entry.shared = true;
  if (region.thp) entry.thp = true;
  if (region.mlock) entry.mlock = true;
  entry.content = runEntries(region.content);
  return entry;
}

function processEntry(process: ProcessSpec): Entry {
  const entry: Entry = { name: process.name };
  if (process.memoryMerge) entry.memory_merge = true;
  entry.regions = process.regions.map(regionEntry);
  return entry;
}

function expectedEntry(counters: readonly ExpectedCounter[]): Entry {
  const entry: Entry = {};
  for (const { counter, value } of counters) entry[counter] = value;
  return entry;
}

/** `pages` only when it is not the default 1. */
function withPages(entry: Entry, pageCount: number): Entry {
  return pageCount === 1 ? entry : { ...entry, pages: pageCount };
}

function stepEntry(step: Step): Entry {
  switch (step.op) {
    case 'scan':
      return { scan: step.passes };
    case 'batch':
      return { batch: step.pageCount };
    case 'wait':
      return { wait: `${step.ms}ms` };
    case 'mprotect':
      return { mprotect: { process: step.process, region: step.region, prot: step.prot } };
    case 'exec':
      return { exec: { process: step.process } };
    case 'write': {
      const single = step.content.length === 1 && step.content[0]!.pageCount === step.pageCount;
      const content = single ? contentSpecEntry(step.content[0]!.spec) : runEntries(step.content);
      const target = { process: step.process, region: step.region, page: step.pageIndex };
      return { write: { ...withPages(target, step.pageCount), content } };
    }
    case 'read':
      return {
        read: withPages({ process: step.process, region: step.region, page: step.pageIndex }, step.pageCount),
      };
    case 'madvise':
      return { madvise: { process: step.process, region: step.region, advice: step.advice } };
    case 'prctl':
      return { prctl: { process: step.process, memory_merge: step.memoryMerge } };
    case 'mmap':
      return { mmap: { process: step.process, region: regionEntry(step.region) } };
    case 'munmap':
      return { munmap: { process: step.process, region: step.region } };
    case 'fork':
      return { fork: { process: step.process, child: step.child } };
    case 'exit':
      return { exit: { process: step.process } };
    case 'set':
      return { set: settingsEntry(step.settings) };
    case 'expect':
      return { expect: expectedEntry(step.counters) };
    default:
      return assertNever(step, 'step');
  }
}
