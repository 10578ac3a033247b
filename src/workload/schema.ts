/**
 * The shape of a workload file (workload-format.md, version 1) as zod schemas.
 *
 * These check what one key can check on its own: types, ranges, names, which
 * keys a map may have. What depends on the sequence (a process exists at this
 * step, a page range lies inside its region, content runs cover the region) is
 * checked by check.ts. Every schema carries its own message, written as
 * "expected WHAT IS ALLOWED, got WHAT WAS FOUND", so parse.ts only has to add
 * the file, the line:col and the key path.
 */

import { z } from 'zod';
import type { MadviseAdvice } from '../backend/backend.ts';
import { KSM_STAT_FIELDS, KSM_SYSFS_FILES, parseCounterRef, WRITABLE_SYSFS_NAMES } from './counters.ts';
import { STEP_OPS } from './workload.ts';

export const NAME_PATTERN = /^[A-Za-z0-9._-]+$/;

export const CONTENT_KINDS = ['zero', 'byte', 'tag', 'image', 'unique', 'file'] as const;

export const MADVISE_ADVICES = [
  'mergeable',
  'unmergeable',
  'hugepage',
  'nohugepage',
  'dontneed',
] as const satisfies readonly MadviseAdvice[];

/** Issue params that ask parse.ts to drop the issue when the same map also has an unknown key (it is then a consequence of a misspelling). */
export const UNLESS_UNKNOWN_KEY = { unlessUnknownKey: true } as const;

/** How a value found in the file is named in a message. */
export function describeInput(input: unknown): string {
  if (input === null) return 'null (an empty value)';
  if (Array.isArray(input)) return input.length === 0 ? 'an empty list' : 'a list';
  switch (typeof input) {
    case 'string':
      return JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}…` : input);
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(input);
    case 'object':
      return 'a map';
    default:
      return typeof input;
  }
}

function expecting(what: string): (issue: z.core.$ZodRawIssue) => string {
  return (issue) =>
    issue.input === undefined
      ? `missing; expected ${what}`
      : `expected ${what}, got ${describeInput(issue.input)}`;
}

/** A map that rejects keys it does not know, naming the ones it does. */
function strictMap<Shape extends z.core.$ZodLooseShape>(shape: Shape, what: string) {
  const allowedKeys = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys' ? `unknown key; allowed: ${allowedKeys}` : expecting(what)(issue),
  });
}

export const nameSchema = z.string({ error: expecting('a name of [A-Za-z0-9._-]+') }).regex(NAME_PATTERN);
const flagSchema = z.boolean({ error: expecting('true or false') });
const pageCountSchema = z.int({ error: expecting('an integer >= 1 (pages)') }).min(1);
const pageIndexSchema = z.int({ error: expecting('an integer >= 0 (a page index)') }).min(0);

const contentSpecShape = {
  zero: z.literal(true, { error: expecting('true') }).optional(),
  byte: z
    .int({ error: expecting('an integer 0..255') })
    .min(0)
    .max(255)
    .optional(),
  tag: z.string({ error: expecting('a string (quote a number to use it as a tag)') }).optional(),
  image: z.string({ error: expecting('a string (quote a number to use it as an image name)') }).optional(),
  offset: z
    .int({ error: expecting('an integer >= 0 (pages for image, bytes for file)') })
    .min(0)
    .optional(),
  unique: z.literal(true, { error: expecting('true') }).optional(),
  file: z
    .string({ error: expecting('a file path') })
    .min(1)
    .optional(),
};

type ContentSpecInput = {
  readonly [K in keyof typeof contentSpecShape]?: z.output<(typeof contentSpecShape)[K]>;
};

const KIND_LIST = CONTENT_KINDS.join(', ');

function checkContentKind(spec: ContentSpecInput, ctx: z.core.$RefinementCtx): void {
  const kinds = CONTENT_KINDS.filter((kind) => spec[kind] !== undefined);
  if (kinds.length !== 1) {
    ctx.addIssue({
      code: 'custom',
      params: UNLESS_UNKNOWN_KEY,
      message:
        kinds.length === 0
          ? `no content given; expected exactly one of ${KIND_LIST}`
          : `more than one content given (${kinds.join(', ')}); expected exactly one of ${KIND_LIST}`,
    });
  }
  if (spec.offset !== undefined && spec.image === undefined && spec.file === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['offset'],
      message: 'offset is allowed only with image (in pages) or file (in bytes)',
    });
  }
}

/** `content:` of a `write` step, without `pages` (the step has them). */
export const contentSpecSchema = strictMap(
  contentSpecShape,
  `a content spec (a map with one of ${KIND_LIST})`,
).superRefine(checkContentKind);

/** One run of a region's `content:` list. */
export const contentRunSchema = strictMap(
  { pages: pageCountSchema, ...contentSpecShape },
  `a content run (a map with pages and one of ${KIND_LIST})`,
).superRefine(checkContentKind);

const contentRunsSchema = z.array(contentRunSchema, { error: expecting('a list of content runs') });

/** A `write` step's content: one spec for every page, or runs covering exactly `pages`. */
const writeContentSchema = z.unknown().transform((input, ctx) => {
  const parsed = Array.isArray(input)
    ? contentRunsSchema.safeParse(input)
    : contentSpecSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues) ctx.addIssue({ ...issue });
  return z.NEVER;
});

export const regionSchema = strictMap(
  {
    name: nameSchema,
    pages: pageCountSchema,
    mergeable: flagSchema.optional(),
    shared: flagSchema.optional(),
    thp: flagSchema.optional(),
    mlock: flagSchema.optional(),
    content: contentRunsSchema,
  },
  'a region (a map)',
);

export const processSchema = strictMap(
  {
    name: nameSchema,
    memory_merge: flagSchema.optional(),
    regions: z.array(regionSchema, { error: expecting('a list of regions') }).optional(),
    // Who the process runs as: read by the simulated host's policies (ksmkit audit); the kernel backend refuses them.
    uid: z
      .int({ error: expecting('an integer 0..4294967294 (a uid)') })
      .min(0)
      .max(4294967294)
      .optional(),
    cgroup: z
      .string({ error: expecting('a cgroup path starting with /') })
      .regex(/^\//)
      .optional(),
    label: z.string({ error: expecting('a string (a trust domain label)') }).optional(),
    cap_sys_admin: flagSchema.optional(),
  },
  'a process (a map)',
);

const settingValueSchema = z.union([z.string(), z.number(), z.boolean()], {
  error: expecting('a scalar (a number or a string)'),
});

const [firstWritable, ...otherWritables] = WRITABLE_SYSFS_NAMES;
const writableNameSchema = z.enum([firstWritable!, ...otherWritables]);

/** `ksm:` and `set:`: writable files of /sys/kernel/mm/ksm; values are not range-checked (the backend reports the kernel's errno). */
export const settingsSchema = z.partialRecord(writableNameSchema, settingValueSchema, {
  // At run time zod 4.6 reports an unknown key of a partial record as unrecognized_keys; its types say invalid_key.
  error: (issue) =>
    (issue.code as string) === 'unrecognized_keys' || issue.code === 'invalid_key'
      ? `unknown key; allowed: ${WRITABLE_SYSFS_NAMES.join(', ')}`
      : expecting('a map of /sys/kernel/mm/ksm settings')(issue),
});

const SYSFS_LIST = KSM_SYSFS_FILES.map((row) => row.name).join(', ');
const FIELD_LIST = KSM_STAT_FIELDS.map((row) => row.name).join(', ');

function checkExpectations(counters: Readonly<Record<string, unknown>>, ctx: z.core.$RefinementCtx): void {
  for (const [counter, value] of Object.entries(counters)) {
    const ref = parseCounterRef(counter);
    if (ref === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: [counter],
        message: `unknown counter; allowed: a file of /sys/kernel/mm/ksm (${SYSFS_LIST}) or PROCESS.FIELD with FIELD one of ${FIELD_LIST}`,
      });
      continue;
    }
    const problem = expectedValueProblem(ref.row.value, value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', path: [counter], message: problem });
  }
}

function expectedValueProblem(
  kind: 'integer' | 'advisor-mode' | 'yes-no',
  value: unknown,
): string | undefined {
  switch (kind) {
    case 'integer':
      if (Number.isSafeInteger(value) || (typeof value === 'string' && INTEGER_TEXT.test(value)))
        return undefined;
      return typeof value === 'number' && Number.isInteger(value)
        ? `${describeInput(value)} is beyond 2^53, where a number is not exact: quote it (e.g. '18446744073709551615')`
        : `expected an integer, got ${describeInput(value)}`;
    case 'advisor-mode':
      return value === 'none' || value === 'scan-time'
        ? undefined
        : `expected none or scan-time, got ${describeInput(value)}`;
    case 'yes-no':
      return typeof value === 'boolean' || value === 'yes' || value === 'no'
        ? undefined
        : `expected true or false (or yes or no), got ${describeInput(value)}`;
  }
}

/** An integer as text: how an unsigned long beyond 2^53 is written (quoted) and reported exactly. */
export const INTEGER_TEXT = /^-?\d+$/;

export const expectSchema = z
  .record(z.string(), z.unknown(), { error: expecting('a map of COUNTER: VALUE') })
  .superRefine(checkExpectations);

const processRefSchema = nameSchema;
const STEP_KEYS = STEP_OPS.join(', ');

export const stepSchema = strictMap(
  {
    scan: z
      .int({ error: expecting('an integer >= 0 (full passes)') })
      .min(0)
      .optional(),
    write: strictMap(
      {
        process: processRefSchema,
        region: nameSchema,
        page: pageIndexSchema,
        pages: pageCountSchema.optional(),
        content: writeContentSchema,
      },
      'a map {process, region, page, pages, content}',
    ).optional(),
    read: strictMap(
      {
        process: processRefSchema,
        region: nameSchema,
        page: pageIndexSchema,
        pages: pageCountSchema.optional(),
      },
      'a map {process, region, page, pages}',
    ).optional(),
    madvise: strictMap(
      {
        process: processRefSchema,
        region: nameSchema,
        advice: z.enum(MADVISE_ADVICES, { error: expecting(`one of ${MADVISE_ADVICES.join(', ')}`) }),
      },
      'a map {process, region, advice}',
    ).optional(),
    prctl: strictMap(
      { process: processRefSchema, memory_merge: flagSchema },
      'a map {process, memory_merge}',
    ).optional(),
    mmap: strictMap(
      { process: processRefSchema, region: regionSchema },
      'a map {process, region}',
    ).optional(),
    munmap: strictMap(
      { process: processRefSchema, region: nameSchema },
      'a map {process, region}',
    ).optional(),
    fork: strictMap({ process: processRefSchema, child: nameSchema }, 'a map {process, child}').optional(),
    exit: strictMap({ process: processRefSchema }, 'a map {process}').optional(),
    set: settingsSchema.optional(),
    expect: expectSchema.optional(),
    /** Beside `set` only: the process that writes (simulated host). */
    as: processRefSchema.optional(),
  },
  'a step (a map with one operation key)',
).superRefine((step, ctx) => {
  const ops = Object.keys(step).filter((key) => key !== 'as' && step[key as keyof typeof step] !== undefined);
  if (step.as !== undefined && step.set === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['as'],
      params: UNLESS_UNKNOWN_KEY,
      message: 'as (the process that writes) is allowed only beside set',
    });
  }
  if (ops.length !== 1) {
    ctx.addIssue({
      code: 'custom',
      params: UNLESS_UNKNOWN_KEY,
      message:
        ops.length === 0
          ? `no operation; expected exactly one of ${STEP_KEYS}`
          : `more than one operation (${ops.join(', ')}); expected exactly one of ${STEP_KEYS}`,
    });
  }
});

export const workloadFileSchema = strictMap(
  {
    version: z.literal(1, { error: expecting('1 (the only version so far)') }),
    name: nameSchema,
    description: z.string({ error: expecting('a string') }).optional(),
    ksm: settingsSchema.optional(),
    processes: z.array(processSchema, { error: expecting('a list of at least one process') }).min(1),
    steps: z.array(stepSchema, { error: expecting('a list of steps (may be empty)') }),
  },
  'a workload (a map with version, name, processes and steps)',
);

export type WorkloadFile = z.output<typeof workloadFileSchema>;
export type ProcessEntry = z.output<typeof processSchema>;
export type RegionEntry = z.output<typeof regionSchema>;
export type StepEntry = z.output<typeof stepSchema>;
export type ContentRunEntry = z.output<typeof contentRunSchema>;
export type ContentSpecEntry = z.output<typeof contentSpecSchema>;
