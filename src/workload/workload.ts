/**
 * A validated workload (spec: workload-format.md, version 1), as the replay
 * reads it. parse.ts builds it from a file; nothing else constructs one, so
 * every invariant the spec states (names exist where they are used, content
 * runs cover their pages, ranges lie inside their regions) holds here.
 *
 * Names follow the file's keys, in camelCase with units: `pages` is
 * `pageCount`, `page` is `pageIndex`.
 */

import type { MadviseAdvice, ProcessIdentitySpec, RegionProtection } from '../backend/backend.ts';

export const WORKLOAD_VERSION = 1;

/** The bytes of a page, as workload-format.md "Page content" defines them. */
export type ContentSpec =
  | { readonly kind: 'zero' }
  | { readonly kind: 'byte'; readonly value: number }
  | { readonly kind: 'tag'; readonly tag: string }
  /** Page i of the run is `tag: image/(offsetPages + i)`. */
  | { readonly kind: 'image'; readonly image: string; readonly offsetPages: number }
  /** `tag: unique/P/R/I/G`: process, region, page index in the region, step that wrote it. */
  | { readonly kind: 'unique' }
  /** `path` as written in the file, relative to the workload file's directory. */
  | { readonly kind: 'file'; readonly path: string; readonly offsetBytes: number };

export type ContentKind = ContentSpec['kind'];

export interface ContentRun {
  readonly pageCount: number;
  readonly spec: ContentSpec;
}

export interface RegionSpec {
  readonly name: string;
  readonly pageCount: number;
  readonly mergeable: boolean;
  readonly shared: boolean;
  readonly thp: boolean;
  readonly mlock: boolean;
  /** Runs in order; their page counts add up to `pageCount`. */
  readonly content: readonly ContentRun[];
}

export interface ProcessSpec {
  readonly name: string;
  readonly memoryMerge: boolean;
  readonly regions: readonly RegionSpec[];
  /** uid, cgroup, label, cap_sys_admin when the file gives any (simulated host only). */
  readonly identity?: ProcessIdentitySpec;
}

/** One write of a sysfs file: `value` is the exact text written (a number keeps its source spelling). */
export interface SysfsSetting {
  readonly name: string;
  readonly value: string;
}

export type ExpectedValue = number | boolean | string;

export interface ExpectedCounter {
  /** As written: a sysfs file name or `PROCESS.FIELD`. */
  readonly counter: string;
  readonly value: ExpectedValue;
}

export type Step =
  | { readonly op: 'scan'; readonly passes: number }
  /** pages_to_scan := pageCount, then exactly one ksmd batch. */
  | { readonly op: 'batch'; readonly pageCount: number }
  /** Wall time passes with ksmd asleep. */
  | { readonly op: 'wait'; readonly ms: number }
  | {
      readonly op: 'write';
      readonly process: string;
      readonly region: string;
      readonly pageIndex: number;
      readonly pageCount: number;
      /** Runs covering exactly `pageCount` pages (a single spec becomes one run). */
      readonly content: readonly ContentRun[];
    }
  | {
      readonly op: 'read';
      readonly process: string;
      readonly region: string;
      readonly pageIndex: number;
      readonly pageCount: number;
    }
  | {
      readonly op: 'madvise';
      readonly process: string;
      readonly region: string;
      readonly advice: MadviseAdvice;
    }
  | { readonly op: 'prctl'; readonly process: string; readonly memoryMerge: boolean }
  | { readonly op: 'mmap'; readonly process: string; readonly region: RegionSpec }
  | { readonly op: 'munmap'; readonly process: string; readonly region: string }
  | { readonly op: 'fork'; readonly process: string; readonly child: string }
  | { readonly op: 'exit'; readonly process: string }
  | {
      readonly op: 'mprotect';
      readonly process: string;
      readonly region: string;
      readonly prot: RegionProtection;
    }
  /** The process execs: every region is gone, memory_merge stays. */
  | { readonly op: 'exec'; readonly process: string }
  | {
      readonly op: 'set';
      readonly settings: readonly SysfsSetting[];
      /** The process that writes (`as:`), for the simulated host's policies; default the tool itself. */
      readonly as?: string;
    }
  | { readonly op: 'expect'; readonly counters: readonly ExpectedCounter[] };

export type StepOp = Step['op'];

export const STEP_OPS: readonly StepOp[] = [
  'scan',
  'batch',
  'wait',
  'write',
  'read',
  'madvise',
  'prctl',
  'mmap',
  'munmap',
  'fork',
  'exit',
  'mprotect',
  'exec',
  'set',
  'expect',
];

export interface Workload {
  readonly version: typeof WORKLOAD_VERSION;
  readonly name: string;
  readonly description?: string;
  /** Written in this order by `Backend.start`. */
  readonly ksm: readonly SysfsSetting[];
  readonly processes: readonly ProcessSpec[];
  /** Step n of the spec (1-based) is `steps[n - 1]`. */
  readonly steps: readonly Step[];
  /** The file name the workload was parsed from, as given (used in messages). */
  readonly fileName: string;
  /** Absolute directory that `file:` content paths are relative to. */
  readonly baseDir: string;
}
