/**
 * A simulation scenario: what `ksmkit simulate` runs. It is the workload
 * format's vocabulary (workload-format.md: `version`, `name`, `description`,
 * `ksm:` settings, content runs of `zero`, `byte`, `tag`, `image`, `unique`)
 * plus what a run in time needs:
 *
 * - `host:` the machine's memory (the question "does it fit"), optional
 *   `reserved:` for the host itself, `numa_nodes:`;
 * - `run:` `duration`, `sample_every`, `seed`, `fast_forward`;
 * - `groups:` instead of `processes:` — N identical guests or containers
 *   (`count`, `memory`, `start_at`, `start_every`, `merge: madvise|prctl`),
 *   whose `content` runs may be sized by `share` (of the guest's memory),
 *   `size` or `pages`, and may be rewritten in time (`rewrite_every` per page,
 *   or `writes_per_s` per guest: each write gives the page new contents no
 *   other page has) and read in time (`read_every` per page, or `reads_per_s`
 *   per guest: a load that leaves the contents as they are, which costs a
 *   merged page nothing unless a policy traps it), and may belong to a
 *   `tenant` (its processes get the tenant's uid, cgroup and label: what a
 *   trust-domain policy separates);
 * - `assumptions:` and `published:` (the figure the scenario reproduces, the
 *   checks the report makes against it, and what cannot be checked);
 * - `compression:` (optional): zram's figures beside KSM's at every sample,
 *   `true` or the compressed fraction of `image`, `tag` and `unique` pages
 *   (simulate/compression.ts).
 *
 * Errors come as `file:line:col: key.path: message`, every one found, like a
 * workload's.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { z } from 'zod';
import {
  documentValue,
  fileReadProblem,
  formatWorkloadIssue,
  type WorkloadIssue,
} from '../workload/parse.ts';
import { describeInput, NAME_PATTERN, settingsSchema } from '../workload/schema.ts';
import type { SysfsSetting } from '../workload/workload.ts';
import { type Compressibility, DEFAULT_COMPRESSIBILITY } from './compression.ts';
import { parseDurationMs, parseSizeBytes } from './units.ts';

export const SCENARIO_VERSION = 1;
const PAGE_BYTES = 4096;

/** Where a page's contents come from (the workload format's content kinds, less `file:`). */
export type ContentSource =
  | { readonly kind: 'zero' }
  | { readonly kind: 'byte'; readonly value: number }
  | { readonly kind: 'tag'; readonly tag: string }
  /** Page i of the run is page `offsetPages + i` of the image: the same in every guest using the image. */
  | { readonly kind: 'image'; readonly image: string; readonly offsetPages: number }
  /** Contents no other page has. */
  | { readonly kind: 'unique' }
  /**
   * A host's pages as read (a twin, twin.ts): page i of the run is the page
   * whose fingerprint is keys[2(offsetPages + i)] (low), keys[2(offsetPages + i) + 1] (high).
   */
  | { readonly kind: 'fingerprints'; readonly keys: Uint32Array; readonly offsetPages: number };

export interface ContentRunModel {
  readonly pageCount: number;
  readonly source: ContentSource;
  /** Pages of this run rewritten per second in each guest (0: never); each write makes the page unique. */
  readonly writesPerSecond: number;
  /** Pages of this run read per second in each guest (0: never); a read leaves the contents as they are. */
  readonly readsPerSecond: number;
}

export interface GroupModel {
  readonly name: string;
  readonly count: number;
  readonly pageCount: number;
  readonly startAtMs: number;
  readonly startEveryMs: number;
  /** madvise(MADV_MERGEABLE) on the guest's memory (QEMU), or prctl(PR_SET_MEMORY_MERGE) for the whole process. */
  readonly merge: 'madvise' | 'prctl';
  readonly content: readonly ContentRunModel[];
  /** Whose guests these are; absent: the host's own (uid 0, cgroup /, no label). */
  readonly tenant?: TenantModel;
  /** The host process this group is the twin of (twin.ts). */
  readonly hostPid?: number;
}

/**
 * A tenant's identity on the host: the uid its processes run as, its cgroup
 * and its label (the three keys a trust-domain policy may separate by). uids
 * are given in order of first appearance, from TENANT_FIRST_UID.
 */
export interface TenantModel {
  readonly name: string;
  readonly uid: number;
  readonly cgroup: string;
  readonly label: string;
}

export const TENANT_FIRST_UID = 10001;

export type ClaimCheck =
  | { readonly kind: 'fits_host' }
  | { readonly kind: 'saving'; readonly bytes: number; readonly withinFraction: number }
  | { readonly kind: 'saving_at_least'; readonly bytes: number }
  | { readonly kind: 'volatile_share'; readonly atLeast: number }
  | {
      readonly kind: 'converge';
      readonly fromMs: number;
      readonly toMs: number;
      readonly percent: 50 | 90 | 99;
    };

export interface PublishedClaim {
  readonly text: string;
  /** Absent: stated for the record, not checkable by the simulation. */
  readonly check?: ClaimCheck;
}

export interface Published {
  readonly source: string;
  readonly claims: readonly PublishedClaim[];
  /** What the simulation cannot reproduce, and why. */
  readonly cannotCheck: readonly string[];
}

export interface Scenario {
  readonly version: typeof SCENARIO_VERSION;
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly host: {
    readonly memoryBytes: number;
    readonly reservedBytes: number;
    readonly numaNodes: number;
    /**
     * How long ksmd waits for a CPU after its sleep ends (the run queue's
     * delay on a busy host; 0 on an idle one): a twin measures it
     * (twin-capture.ts), a scenario file leaves it 0.
     */
    readonly ksmdWakeDelayNs?: number;
    /** ksmd's CPU time between two preemptions on that host (0 or absent: never preempted). */
    readonly ksmdCpuPerPreemptionNs?: number;
  };
  /** sysfs settings written before the run, in file order. */
  readonly ksm: readonly SysfsSetting[];
  readonly durationMs: number;
  readonly sampleEveryMs: number;
  readonly seed: number;
  readonly fastForward: boolean;
  readonly groups: readonly GroupModel[];
  readonly assumptions: readonly string[];
  readonly published?: Published;
  /** With `compression:`: how well each kind of page compresses (the scenario's assumption). */
  readonly compression?: Compressibility;
  /** As given to the parser, for messages. */
  readonly fileName: string;
}

export class ScenarioError extends Error {
  override name = 'ScenarioError';
  readonly issues: readonly WorkloadIssue[];
  constructor(issues: readonly WorkloadIssue[]) {
    super(issues.map(formatWorkloadIssue).join('\n'));
    this.issues = issues;
  }
}

// ------------------------------------------------------------------ schemas

function expecting(what: string): (issue: z.core.$ZodRawIssue) => string {
  return (issue) =>
    issue.input === undefined
      ? `missing; expected ${what}`
      : `expected ${what}, got ${describeInput(issue.input)}`;
}

function strictMap<Shape extends z.core.$ZodLooseShape>(shape: Shape, what: string) {
  const allowedKeys = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys' ? `unknown key; allowed: ${allowedKeys}` : expecting(what)(issue),
  });
}

const compressedFractionSchema = z
  .number({ error: expecting('a fraction 0.05..1') })
  .min(0.05, { error: (i) => `expected a fraction 0.05..1, got ${describeInput(i.input)}` })
  .max(1, { error: (i) => `expected a fraction 0.05..1, got ${describeInput(i.input)}` });

const nameSchema = z.string({ error: expecting('a name of [A-Za-z0-9._-]+') }).regex(NAME_PATTERN, {
  error: (issue) => `expected a name of [A-Za-z0-9._-]+, got ${describeInput(issue.input)}`,
});

const sizeSchema = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const bytes = parseSizeBytes(value);
  if (bytes === undefined || bytes <= 0) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a size such as 1GiB, 512MiB or a number of bytes, got ${describeInput(value)}`,
    });
    return z.NEVER;
  }
  return bytes;
});

const durationSchema = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDurationMs(value);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a duration such as 90s, 45min, 1h30min or a number of seconds, got ${describeInput(value)}`,
    });
    return z.NEVER;
  }
  return ms;
});

const fractionSchema = z
  .number({ error: expecting('a number between 0 and 1') })
  .min(0)
  .max(1);

const percentOrFraction = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const m = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(value) : null;
  const n = m !== null ? Number(m[1]) / 100 : typeof value === 'number' ? value : Number.NaN;
  if (!(n >= 0 && n <= 1)) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a fraction (0.15) or a percentage (15%), got ${describeInput(value)}`,
    });
    return z.NEVER;
  }
  return n;
});

const CONTENT_KINDS = ['zero', 'byte', 'tag', 'image', 'unique'] as const;
const AMOUNT_KEYS = ['share', 'size', 'pages'] as const;

const contentRunSchema = strictMap(
  {
    share: fractionSchema.optional(),
    size: sizeSchema.optional(),
    pages: z
      .int({ error: expecting('an integer >= 1 (pages)') })
      .min(1)
      .optional(),
    zero: z.literal(true, { error: expecting('true') }).optional(),
    byte: z
      .int({ error: expecting('an integer 0..255') })
      .min(0)
      .max(255)
      .optional(),
    tag: z.string({ error: expecting('a string') }).optional(),
    image: z.string({ error: expecting('a string (the image name)') }).optional(),
    offset: z
      .int({ error: expecting('an integer >= 0 (pages into the image)') })
      .min(0)
      .optional(),
    unique: z.literal(true, { error: expecting('true') }).optional(),
    rewrite_every: durationSchema.optional(),
    writes_per_s: z
      .number({ error: expecting('a number >= 0 (pages per second per guest)') })
      .min(0)
      .optional(),
    read_every: durationSchema.optional(),
    reads_per_s: z
      .number({ error: expecting('a number >= 0 (pages per second per guest)') })
      .min(0)
      .optional(),
  },
  `a content run (a map with one of ${AMOUNT_KEYS.join(', ')} and one of ${CONTENT_KINDS.join(', ')})`,
).superRefine((run, ctx) => {
  const kinds = CONTENT_KINDS.filter((k) => run[k] !== undefined);
  if (kinds.length !== 1) {
    ctx.addIssue({
      code: 'custom',
      message:
        kinds.length === 0
          ? `no content given; expected exactly one of ${CONTENT_KINDS.join(', ')} (file content is not supported in scenarios)`
          : `more than one content given (${kinds.join(', ')}); expected exactly one of ${CONTENT_KINDS.join(', ')}`,
    });
  }
  const amounts = AMOUNT_KEYS.filter((k) => run[k] !== undefined);
  if (amounts.length !== 1) {
    ctx.addIssue({
      code: 'custom',
      message:
        amounts.length === 0
          ? `no amount given; expected exactly one of ${AMOUNT_KEYS.join(', ')}`
          : `more than one amount given (${amounts.join(', ')}); expected exactly one of ${AMOUNT_KEYS.join(', ')}`,
    });
  }
  if (run.offset !== undefined && run.image === undefined)
    ctx.addIssue({ code: 'custom', path: ['offset'], message: 'offset is allowed only with image' });
  if (run.rewrite_every !== undefined && run.writes_per_s !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['writes_per_s'],
      message: 'give either rewrite_every (per page) or writes_per_s (per guest), not both',
    });
  }
  if (run.rewrite_every !== undefined && run.rewrite_every <= 0)
    ctx.addIssue({ code: 'custom', path: ['rewrite_every'], message: 'expected a duration > 0' });
  if (run.read_every !== undefined && run.reads_per_s !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['reads_per_s'],
      message: 'give either read_every (per page) or reads_per_s (per guest), not both',
    });
  }
  if (run.read_every !== undefined && run.read_every <= 0)
    ctx.addIssue({ code: 'custom', path: ['read_every'], message: 'expected a duration > 0' });
});

const groupSchema = strictMap(
  {
    name: nameSchema,
    count: z
      .int({ error: expecting('an integer >= 1') })
      .min(1)
      .optional(),
    memory: sizeSchema,
    start_at: durationSchema.optional(),
    start_every: durationSchema.optional(),
    merge: z.enum(['madvise', 'prctl'], { error: expecting('madvise or prctl') }).optional(),
    tenant: z
      .string({ error: expecting('a tenant name of [A-Za-z0-9._-]+') })
      .regex(NAME_PATTERN, {
        error: (issue) => `expected a tenant name of [A-Za-z0-9._-]+, got ${describeInput(issue.input)}`,
      })
      .optional(),
    content: z.array(contentRunSchema, { error: expecting('a list of content runs') }).min(1),
  },
  'a group (a map with name, count, memory, tenant and content)',
);

const checkSchema = strictMap(
  {
    fits_host: z.literal(true, { error: expecting('true') }).optional(),
    saving: sizeSchema.optional(),
    within: percentOrFraction.optional(),
    saving_at_least: sizeSchema.optional(),
    volatile_share_at_least: fractionSchema.optional(),
    converge_between: z
      .tuple([durationSchema, durationSchema], { error: expecting('[FROM, TO] durations') })
      .optional(),
    percent: z
      .union([z.literal(50), z.literal(90), z.literal(99)], { error: expecting('50, 90 or 99') })
      .optional(),
  },
  'a check (one of fits_host, saving, saving_at_least, volatile_share_at_least, converge_between)',
).superRefine((check, ctx) => {
  const kinds = (
    ['fits_host', 'saving', 'saving_at_least', 'volatile_share_at_least', 'converge_between'] as const
  ).filter((k) => check[k] !== undefined);
  if (kinds.length !== 1) {
    ctx.addIssue({
      code: 'custom',
      message:
        'expected exactly one of fits_host, saving, saving_at_least, volatile_share_at_least, converge_between',
    });
  }
  if (check.within !== undefined && check.saving === undefined)
    ctx.addIssue({ code: 'custom', path: ['within'], message: 'within is allowed only with saving' });
  if (check.percent !== undefined && check.converge_between === undefined)
    ctx.addIssue({
      code: 'custom',
      path: ['percent'],
      message: 'percent is allowed only with converge_between',
    });
});

const publishedSchema = strictMap(
  {
    source: z.string({ error: expecting('a string') }),
    claims: z
      .array(
        strictMap(
          { text: z.string({ error: expecting('a string') }), check: checkSchema.optional() },
          'a claim (a map with text and an optional check)',
        ),
        { error: expecting('a list of claims') },
      )
      .optional(),
    cannot_check: z.array(z.string({ error: expecting('a string') })).optional(),
  },
  'a map with source, claims and cannot_check',
);

const scenarioFileSchema = strictMap(
  {
    version: z.literal(1, { error: expecting('1 (the only version so far)') }),
    name: nameSchema,
    title: z.string({ error: expecting('a string') }).optional(),
    description: z.string({ error: expecting('a string') }).optional(),
    host: strictMap(
      {
        memory: sizeSchema,
        reserved: sizeSchema.optional(),
        numa_nodes: z
          .int({ error: expecting('an integer 1..64') })
          .min(1)
          .max(64)
          .optional(),
      },
      'a map with memory, reserved and numa_nodes',
    ),
    ksm: settingsSchema.optional(),
    run: strictMap(
      {
        duration: durationSchema,
        sample_every: durationSchema.optional(),
        seed: z.int({ error: expecting('an integer') }).optional(),
        fast_forward: z.boolean({ error: expecting('true or false') }).optional(),
      },
      'a map with duration, sample_every, seed and fast_forward',
    ),
    groups: z.array(groupSchema, { error: expecting('a list of at least one group') }).min(1),
    assumptions: z.array(z.string({ error: expecting('a string') })).optional(),
    published: publishedSchema.optional(),
    compression: z
      .union([
        z.literal(true),
        strictMap(
          {
            image: compressedFractionSchema.optional(),
            tag: compressedFractionSchema.optional(),
            unique: compressedFractionSchema.optional(),
          },
          'true, or a map with image, tag and unique (compressed size over page size, 0.05..1)',
        ),
      ])
      .optional(),
  },
  'a scenario (a map with version, name, host, run and groups)',
);

type ScenarioFile = z.output<typeof scenarioFileSchema>;

function compressibilityOf(entry: NonNullable<ScenarioFile['compression']>): Compressibility {
  if (entry === true) return DEFAULT_COMPRESSIBILITY;
  return {
    image: entry.image ?? DEFAULT_COMPRESSIBILITY.image,
    tag: entry.tag ?? DEFAULT_COMPRESSIBILITY.tag,
    unique: entry.unique ?? DEFAULT_COMPRESSIBILITY.unique,
  };
}
type GroupEntry = z.output<typeof groupSchema>;
type ContentRunEntry = z.output<typeof contentRunSchema>;
type CheckEntry = z.output<typeof checkSchema>;

// ------------------------------------------------------------------ parsing

type KeyPath = readonly (string | number)[];

/** Reads and validates a scenario file. Throws `ScenarioError`. */
export async function loadScenario(path: string): Promise<Scenario> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ScenarioError([{ file: path, path: '', message: `cannot read: ${fileReadProblem(error)}` }]);
  }
  return parseScenario(text, path);
}

/** Validates scenario text (YAML or JSON). Throws `ScenarioError` with every problem found. */
export function parseScenario(text: string, fileName: string): Scenario {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number, path: KeyPath, message: string): WorkloadIssue => {
    const { line, col } = lineCounter.linePos(offset);
    return { file: fileName, line, col, path: path.join('.'), message };
  };
  if (doc.errors.length > 0) {
    throw new ScenarioError(
      doc.errors.map((e) => at(e.pos[0], [], e.message.replace(/ at line \d+, column \d+:?[\s\S]*$/, ''))),
    );
  }
  const js = documentValue(doc, text);
  if ('message' in js) throw new ScenarioError([at(js.offset, [], js.message)]);
  const shape = scenarioFileSchema.safeParse(js.value);
  if (!shape.success) {
    const issues = shape.error.issues.flatMap((issue) => {
      const path = issue.path.map((s) => (typeof s === 'number' ? s : String(s)));
      if (issue.code === 'unrecognized_keys')
        return issue.keys.map((key) =>
          at(locate(doc.contents, [...path, key]), [...path, key], issue.message),
        );
      return [at(locate(doc.contents, path), path, issue.message)];
    });
    throw new ScenarioError(issues);
  }
  const problems: { path: KeyPath; message: string }[] = [];
  const scenario = build(shape.data, fileName, problems);
  if (problems.length > 0)
    throw new ScenarioError(problems.map((p) => at(locate(doc.contents, p.path), p.path, p.message)));
  return scenario;
}

/** Offset of the node at `path`, or of the deepest map on the way that exists. */
function locate(root: unknown, path: KeyPath): number {
  let node = root as Node | null;
  let offset = node?.range?.[0] ?? 0;
  for (const segment of path) {
    if (node === null) break;
    let next: Node | null | undefined;
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => isScalar(item.key) && String(item.key.value) === String(segment),
      );
      next = pair === undefined ? undefined : ((pair.value as Node | null) ?? (pair.key as Node));
    } else if (isSeq(node) && typeof segment === 'number') {
      next = node.items[segment] as Node | null | undefined;
    }
    if (next === undefined || next === null) break;
    node = next;
    offset = node.range?.[0] ?? offset;
  }
  return offset;
}

function build(
  file: ScenarioFile,
  fileName: string,
  problems: { path: KeyPath; message: string }[],
): Scenario {
  const names = new Set<string>();
  const tenants = new Map<string, TenantModel>();
  const groups = file.groups.map((entry, index) => {
    if (names.has(entry.name))
      problems.push({ path: ['groups', index, 'name'], message: `a second group named "${entry.name}"` });
    names.add(entry.name);
    const model = group(entry, ['groups', index], problems);
    if (entry.tenant === undefined) return model;
    let tenant = tenants.get(entry.tenant);
    if (tenant === undefined) {
      tenant = {
        name: entry.tenant,
        uid: TENANT_FIRST_UID + tenants.size,
        cgroup: `/tenants/${entry.tenant}`,
        label: entry.tenant,
      };
      tenants.set(entry.tenant, tenant);
    }
    return { ...model, tenant };
  });
  const durationMs = file.run.duration;
  if (durationMs <= 0) problems.push({ path: ['run', 'duration'], message: 'expected a duration > 0' });
  const sampleEveryMs = file.run.sample_every ?? defaultSampleEveryMs(durationMs);
  if (sampleEveryMs <= 0 || sampleEveryMs > durationMs)
    problems.push({
      path: ['run', 'sample_every'],
      message: 'expected a duration > 0 and at most run.duration',
    });
  const reservedBytes = file.host.reserved ?? 0;
  if (reservedBytes >= file.host.memory)
    problems.push({ path: ['host', 'reserved'], message: 'must be less than host.memory' });
  const settings: SysfsSetting[] = Object.entries(file.ksm ?? {}).flatMap(([name, value]) =>
    value === undefined ? [] : [{ name, value: String(value) }],
  );
  const scenario: Scenario = {
    version: SCENARIO_VERSION,
    name: file.name,
    title: file.title ?? file.name,
    description: (file.description ?? '').trim(),
    host: {
      memoryBytes: file.host.memory,
      reservedBytes,
      numaNodes: file.host.numa_nodes ?? 1,
    },
    ksm: settings,
    durationMs,
    sampleEveryMs,
    seed: file.run.seed ?? 1,
    fastForward: file.run.fast_forward ?? true,
    groups,
    assumptions: file.assumptions ?? [],
    ...(file.compression === undefined
      ? {}
      : {
          compression: compressibilityOf(file.compression),
        }),
    fileName,
  };
  if (file.published === undefined) return scenario;
  return {
    ...scenario,
    published: {
      source: file.published.source,
      claims: (file.published.claims ?? []).map((c) =>
        c.check === undefined ? { text: c.text } : { text: c.text, check: claimCheck(c.check) },
      ),
      cannotCheck: file.published.cannot_check ?? [],
    },
  };
}

/** About 240 samples a run, in whole seconds when the run is long enough. */
export function defaultSampleEveryMs(durationMs: number): number {
  const raw = durationMs / 240;
  return raw >= 1000 ? Math.round(raw / 1000) * 1000 : Math.max(raw, 1);
}

function claimCheck(entry: CheckEntry): ClaimCheck {
  if (entry.fits_host !== undefined) return { kind: 'fits_host' };
  if (entry.saving !== undefined)
    return { kind: 'saving', bytes: entry.saving, withinFraction: entry.within ?? 0.15 };
  if (entry.saving_at_least !== undefined) return { kind: 'saving_at_least', bytes: entry.saving_at_least };
  if (entry.volatile_share_at_least !== undefined)
    return { kind: 'volatile_share', atLeast: entry.volatile_share_at_least };
  const [fromMs, toMs] = entry.converge_between!;
  return { kind: 'converge', fromMs, toMs, percent: entry.percent ?? 90 };
}

function group(entry: GroupEntry, path: KeyPath, problems: { path: KeyPath; message: string }[]): GroupModel {
  const pageCount = Math.floor(entry.memory / PAGE_BYTES);
  if (pageCount < 1)
    problems.push({ path: [...path, 'memory'], message: 'expected at least one page (4 KiB)' });
  const fixed = entry.content.reduce(
    (sum, run) => sum + (run.pages ?? (run.size === undefined ? 0 : Math.round(run.size / PAGE_BYTES))),
    0,
  );
  const shares = entry.content.filter((run) => run.share !== undefined);
  const shareTotal = shares.reduce((sum, run) => sum + run.share!, 0);
  const left = pageCount - fixed;
  if (left < 0) {
    problems.push({
      path: [...path, 'content'],
      message: `the runs given in pages or size add up to ${fixed} pages, more than the ${pageCount} pages of memory`,
    });
  } else if (shares.length === 0 && left !== 0) {
    problems.push({
      path: [...path, 'content'],
      message: `the runs add up to ${fixed} pages; memory is ${pageCount} pages (give the rest with share)`,
    });
  }
  if (shares.length > 0 && Math.abs(shareTotal - 1) > 1e-6) {
    problems.push({
      path: [...path, 'content'],
      message: `the shares add up to ${round(shareTotal)}; expected 1 (shares divide the memory that runs in pages or size leave)`,
    });
  }
  // Shares divide what the fixed runs leave; the last share run takes the rounding.
  let lastShare = -1;
  entry.content.forEach((run, index) => {
    if (run.share !== undefined) lastShare = index;
  });
  let given = 0;
  const content = entry.content.map((run, index): ContentRunModel => {
    let runPages: number;
    if (run.pages !== undefined) runPages = run.pages;
    else if (run.size !== undefined) runPages = Math.round(run.size / PAGE_BYTES);
    else if (index === lastShare) runPages = Math.max(0, left - given);
    else runPages = Math.round(run.share! * Math.max(0, left));
    if (run.share !== undefined) given += runPages;
    const writesPerSecond =
      run.writes_per_s ?? (run.rewrite_every === undefined ? 0 : (runPages * 1000) / run.rewrite_every);
    const readsPerSecond =
      run.reads_per_s ?? (run.read_every === undefined ? 0 : (runPages * 1000) / run.read_every);
    return { pageCount: runPages, source: source(run), writesPerSecond, readsPerSecond };
  });
  return {
    name: entry.name,
    count: entry.count ?? 1,
    pageCount,
    startAtMs: entry.start_at ?? 0,
    startEveryMs: entry.start_every ?? 0,
    merge: entry.merge ?? 'madvise',
    content: content.filter((run) => run.pageCount > 0),
  };
}

function round(n: number): string {
  return String(Math.round(n * 1e6) / 1e6);
}

function source(run: ContentRunEntry): ContentSource {
  if (run.zero !== undefined) return { kind: 'zero' };
  if (run.byte !== undefined) return run.byte === 0 ? { kind: 'zero' } : { kind: 'byte', value: run.byte };
  if (run.tag !== undefined) return { kind: 'tag', tag: run.tag };
  if (run.image !== undefined) return { kind: 'image', image: run.image, offsetPages: run.offset ?? 0 };
  return { kind: 'unique' };
}

// ------------------------------------------------------------------ derived figures and scaling

export function totalGuestPages(scenario: Scenario): number {
  return scenario.groups.reduce((sum, g) => sum + g.count * g.pageCount, 0);
}

export function guestCount(scenario: Scenario): number {
  return scenario.groups.reduce((sum, g) => sum + g.count, 0);
}

/** When the last guest starts. */
export function lastStartMs(scenario: Scenario): number {
  return Math.max(0, ...scenario.groups.map((g) => g.startAtMs + (g.count - 1) * g.startEveryMs));
}

/**
 * The scenario with `factor` times as many guests in every group (at least one
 * each) on a host with `factor` times the memory: the same question at
 * another size. `--scale 64GiB` asks for that much guest memory in all.
 */
export function scaleScenario(scenario: Scenario, factor: number): Scenario {
  if (!(factor > 0 && Number.isFinite(factor)))
    throw new RangeError(`scale factor must be > 0, got ${factor}`);
  if (factor === 1) return scenario;
  return {
    ...scenario,
    host: { ...scenario.host, memoryBytes: Math.round(scenario.host.memoryBytes * factor) },
    groups: scenario.groups.map((g) => ({ ...g, count: Math.max(1, Math.round(g.count * factor)) })),
  };
}

/** `2`, `0.5` (factors) or `64GiB` (total guest memory wanted) as a factor for this scenario. */
export function parseScale(text: string, scenario: Scenario): number | undefined {
  if (/^\s*\d+(\.\d+)?\s*x?\s*$/.test(text)) {
    const f = Number.parseFloat(text);
    return f > 0 ? f : undefined;
  }
  const bytes = parseSizeBytes(text);
  if (bytes === undefined || bytes <= 0) return undefined;
  return bytes / (totalGuestPages(scenario) * PAGE_BYTES);
}

/** The scenario's name for the built-in library's index: file name less its extension. */
export function scenarioKey(fileName: string): string {
  return basename(fileName).replace(/\.(ya?ml|json)$/, '');
}
