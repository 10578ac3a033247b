import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatWorkloadIssue, loadWorkload, parseWorkload, WorkloadError } from './parse.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

/** Every message a workload text gets, formatted as the CLI prints them. */
function errorsOf(text: string, fileName = 'w.yaml'): string[] {
  try {
    parseWorkload(text, fileName, { baseDir: FIXTURES });
  } catch (error) {
    assert.ok(error instanceof WorkloadError, `expected a WorkloadError, got ${String(error)}`);
    return error.issues.map(formatWorkloadIssue);
  }
  assert.fail('the workload was accepted');
}

/** A valid workload with one process `a` (region `r`, 4 pages) whose steps are `steps` (YAML lines at indent 2). */
function withSteps(steps: string): string {
  return `version: 1
name: t
processes:
  - name: a
    regions:
      - name: r
        pages: 4
        content: [{ pages: 4, byte: 1 }]
steps:
${steps}`;
}
// In withSteps, step 0 starts on line 10.

describe('valid workloads', () => {
  test('the YAML fixture parses into the typed workload, defaults filled in', async () => {
    const workload = await loadWorkload(join(FIXTURES, 'two-guests.yaml'));
    assert.equal(workload.name, 'two-guests');
    assert.equal(workload.description, 'two guests of one image, then a forked helper');
    assert.equal(workload.baseDir, FIXTURES);
    assert.deepEqual(workload.ksm, [
      { name: 'use_zero_pages', value: '0' },
      { name: 'max_page_sharing', value: '256' },
      { name: 'smart_scan', value: '1' },
    ]);
    const [guest1, guest2] = workload.processes;
    assert.deepEqual(guest1?.regions[0], {
      name: 'ram',
      pageCount: 8,
      mergeable: true,
      shared: false,
      thp: false,
      mlock: false,
      content: [
        { pageCount: 2, spec: { kind: 'zero' } },
        { pageCount: 3, spec: { kind: 'image', image: 'debian-12', offsetPages: 0 } },
        { pageCount: 1, spec: { kind: 'byte', value: 7 } },
        { pageCount: 2, spec: { kind: 'unique' } },
      ],
    });
    assert.equal(guest1?.memoryMerge, false);
    assert.deepEqual(guest2?.regions[0]?.content[1], {
      pageCount: 1,
      spec: { kind: 'image', image: 'debian-12', offsetPages: 10 },
    });
    assert.equal(workload.steps.length, 14);
    assert.deepEqual(workload.steps[0], { op: 'scan', passes: 2 });
    assert.deepEqual(workload.steps[2], {
      op: 'write',
      process: 'guest-2',
      region: 'ram',
      pageIndex: 0,
      pageCount: 1,
      content: [{ pageCount: 1, spec: { kind: 'byte', value: 7 } }],
    });
    assert.deepEqual(workload.steps[4], { op: 'fork', process: 'guest-1', child: 'helper' });
    assert.deepEqual(workload.steps[6], {
      op: 'madvise',
      process: 'helper',
      region: 'ram',
      advice: 'dontneed',
    });
    assert.deepEqual(workload.steps[8], {
      op: 'set',
      settings: [
        { name: 'pages_to_scan', value: '1000' },
        { name: 'sleep_millisecs', value: '50' },
      ],
    });
    assert.deepEqual(workload.steps[9], { op: 'prctl', process: 'guest-2', memoryMerge: true });
    assert.deepEqual(workload.steps[13], {
      op: 'expect',
      counters: [
        { counter: 'full_scans', value: 3 },
        { counter: 'advisor_mode', value: 'none' },
        { counter: 'guest-2.ksm_merge_any', value: true },
      ],
    });
  });

  test('the JSON fixture gives the same workload as the YAML one', async () => {
    const fromYaml = await loadWorkload(join(FIXTURES, 'two-guests.yaml'));
    const fromJson = await loadWorkload(join(FIXTURES, 'two-guests.json'));
    assert.deepEqual({ ...fromJson, fileName: '' }, { ...fromYaml, fileName: '' });
  });

  test('settings keep the file order and the exact spelling of numbers; values are not range-checked', () => {
    const workload = parseWorkload(
      `version: 1
name: t
ksm: { advisor_mode: scan-time, pages_to_scan: 5, max_page_sharing: 18446744073709551616, run: 7, smart_scan: true }
processes: [{ name: a }]
steps:
  - set: { use_zero_pages: 0x1, run: 1e0 }
`,
      'w.yaml',
    );
    assert.deepEqual(workload.ksm, [
      { name: 'advisor_mode', value: 'scan-time' },
      { name: 'pages_to_scan', value: '5' },
      { name: 'max_page_sharing', value: '18446744073709551616' },
      { name: 'run', value: '7' },
      { name: 'smart_scan', value: 'true' },
    ]);
    assert.deepEqual(workload.steps[0], {
      op: 'set',
      settings: [
        { name: 'use_zero_pages', value: '0x1' },
        { name: 'run', value: '1e0' },
      ],
    });
    assert.deepEqual(workload.processes[0], { name: 'a', memoryMerge: false, regions: [] });
  });

  test('a write takes one spec for all its pages, or runs covering them', () => {
    const workload = parseWorkload(
      withSteps(`  - write: { process: a, region: r, page: 1, pages: 3, content: { image: img, offset: 4 } }
  - write: { process: a, region: r, page: 0, pages: 3, content: [{ pages: 1, zero: true }, { pages: 2, tag: x }] }
`),
      'w.yaml',
    );
    assert.deepEqual(workload.steps[0], {
      op: 'write',
      process: 'a',
      region: 'r',
      pageIndex: 1,
      pageCount: 3,
      content: [{ pageCount: 3, spec: { kind: 'image', image: 'img', offsetPages: 4 } }],
    });
    assert.deepEqual(workload.steps[1], {
      op: 'write',
      process: 'a',
      region: 'r',
      pageIndex: 0,
      pageCount: 3,
      content: [
        { pageCount: 1, spec: { kind: 'zero' } },
        { pageCount: 2, spec: { kind: 'tag', tag: 'x' } },
      ],
    });
  });

  test('names live through the sequence: fork copies regions, mmap adds one, a name is free again after exit', () => {
    const workload = parseWorkload(
      withSteps(`  - fork: { process: a, child: b }
  - read: { process: b, region: r, page: 3 }
  - mmap: { process: b, region: { name: s, pages: 1, content: [{ pages: 1, zero: true }] } }
  - munmap: { process: b, region: r }
  - mmap: { process: b, region: { name: r, pages: 9, content: [{ pages: 9, zero: true }] } }
  - read: { process: b, region: r, page: 8 }
  - exit: { process: b }
  - fork: { process: a, child: b }
  - expect: { b.ksm_mergeable: no, a.ksm_rmap_items: 0 }
`),
      'w.yaml',
    );
    assert.equal(workload.steps.length, 9);
    assert.deepEqual(workload.steps[8], {
      op: 'expect',
      counters: [
        { counter: 'b.ksm_mergeable', value: false },
        { counter: 'a.ksm_rmap_items', value: 0 },
      ],
    });
  });

  test('process names may contain dots: PROCESS.FIELD splits at the last dot', () => {
    const workload = parseWorkload(
      `version: 1
name: t
processes: [{ name: vm.1 }]
steps: [{ expect: { vm.1.ksm_zero_pages: 0 } }]
`,
      'w.yaml',
    );
    assert.deepEqual(workload.steps[0], {
      op: 'expect',
      counters: [{ counter: 'vm.1.ksm_zero_pages', value: 0 }],
    });
  });
});

describe('errors name the file, line:col, key path and what is allowed', () => {
  test('an unknown key (the example of the brief)', () => {
    const text = `version: 1
name: t
processes:
  - name: a
    regions:
      - name: r
        pages: 1
        mergable: true
        content: [{ pages: 1, zero: true }]
steps: []
`;
    assert.deepEqual(errorsOf(text), [
      'w.yaml:8:19: processes.0.regions.0.mergable: unknown key; allowed: name, pages, mergeable, shared, thp, mlock, content',
    ]);
  });

  test('a missing key points at the map that lacks it', () => {
    const text = `version: 1
name: t
processes:
  - name: a
    regions:
      - name: r
        content: [{ pages: 1, zero: true }]
steps: []
`;
    assert.deepEqual(errorsOf(text), [
      'w.yaml:6:9: processes.0.regions.0.pages: missing; expected an integer >= 1 (pages)',
    ]);
  });

  test('wrong types and out-of-range values', () => {
    const text = `version: 2
name: "two guests"
processes:
  - name: a
    memory_merge: 1
    regions:
      - name: r
        pages: 0
        content: [{ pages: 1, byte: 256 }, { pages: 1.5, tag: 12 }]
steps: {}
`;
    assert.deepEqual(errorsOf(text), [
      'w.yaml:1:10: version: expected 1 (the only version so far), got 2',
      'w.yaml:2:7: name: expected a name of [A-Za-z0-9._-]+, got "two guests"',
      'w.yaml:5:19: processes.0.memory_merge: expected true or false, got 1',
      'w.yaml:8:16: processes.0.regions.0.pages: expected an integer >= 1 (pages), got 0',
      'w.yaml:9:37: processes.0.regions.0.content.0.byte: expected an integer 0..255, got 256',
      'w.yaml:9:53: processes.0.regions.0.content.1.pages: expected an integer >= 1 (pages), got 1.5',
      'w.yaml:9:63: processes.0.regions.0.content.1.tag: expected a string (quote a number to use it as a tag), got 12',
      'w.yaml:10:8: steps: expected a list of steps (may be empty), got a map',
    ]);
  });

  test('a content run needs exactly one kind; offset only with image or file', () => {
    const text = `version: 1
name: t
processes:
  - name: a
    regions:
      - name: r
        pages: 3
        content:
          - { pages: 1 }
          - { pages: 1, zero: true, byte: 0 }
          - { pages: 1, tag: x, offset: 2 }
steps: []
`;
    assert.deepEqual(errorsOf(text), [
      'w.yaml:9:13: processes.0.regions.0.content.0: no content given; expected exactly one of zero, byte, tag, image, unique, file',
      'w.yaml:10:13: processes.0.regions.0.content.1: more than one content given (zero, byte); expected exactly one of zero, byte, tag, image, unique, file',
      'w.yaml:11:41: processes.0.regions.0.content.2.offset: offset is allowed only with image (in pages) or file (in bytes)',
    ]);
  });

  test('content runs must cover exactly the pages of the region or the write', () => {
    const text =
      withSteps(`  - write: { process: a, region: r, page: 0, pages: 2, content: [{ pages: 3, zero: true }] }
`).replace('content: [{ pages: 4, byte: 1 }]', 'content: [{ pages: 3, byte: 1 }]');
    assert.deepEqual(errorsOf(text), [
      "w.yaml:8:18: processes.0.regions.0.content: content runs cover 3 pages; expected 4 (the region's pages)",
      "w.yaml:10:65: steps.0.write.content: content runs cover 3 pages; expected 2 (the write's pages)",
    ]);
  });

  test('duplicate process and region names', () => {
    const text = `version: 1
name: t
processes:
  - name: a
    regions:
      - { name: r, pages: 1, content: [{ pages: 1, zero: true }] }
      - { name: r, pages: 1, content: [{ pages: 1, zero: true }] }
  - name: a
steps: []
`;
    assert.deepEqual(errorsOf(text), [
      'w.yaml:7:17: processes.0.regions.1.name: duplicate region name "r" in process "a" (first at processes.0.regions.0)',
      'w.yaml:8:11: processes.1.name: duplicate process name "a" (first at processes.0)',
    ]);
  });

  test('a step needs exactly one operation key', () => {
    const text = withSteps(`  - {}
  - { scan: 1, exit: { process: a } }
  - { scna: 1 }
`);
    assert.deepEqual(errorsOf(text), [
      'w.yaml:10:5: steps.0: no operation; expected exactly one of scan, write, read, madvise, prctl, mmap, munmap, fork, exit, set, expect',
      'w.yaml:11:5: steps.1: more than one operation (scan, exit); expected exactly one of scan, write, read, madvise, prctl, mmap, munmap, fork, exit, set, expect',
      'w.yaml:12:13: steps.2.scna: unknown key; allowed: scan, write, read, madvise, prctl, mmap, munmap, fork, exit, set, expect, as',
    ]);
  });

  test('steps name processes and regions that exist at that point of the sequence', () => {
    const text = withSteps(`  - read: { process: b, region: r, page: 0 }
  - fork: { process: a, child: b }
  - munmap: { process: b, region: r }
  - read: { process: b, region: r, page: 0 }
  - madvise: { process: a, region: s, advice: mergeable }
  - exit: { process: b }
  - prctl: { process: b, memory_merge: true }
  - fork: { process: a, child: a }
  - expect: { b.ksm_rmap_items: 0 }
`);
    assert.deepEqual(errorsOf(text), [
      'w.yaml:10:22: steps.0.read.process: no process "b" at step 1; processes at this step: a',
      'w.yaml:13:33: steps.3.read.region: process "b" has no region "r" at step 4: it was unmapped at step 3; its regions: none',
      'w.yaml:14:36: steps.4.madvise.region: process "a" has no region "s" at step 5; its regions: r',
      'w.yaml:16:23: steps.6.prctl.process: no process "b" at step 7: it exited at step 6; processes at this step: a',
      'w.yaml:17:32: steps.7.fork.child: a process "a" already exists at step 8',
      'w.yaml:18:33: steps.8.expect.b.ksm_rmap_items: no process "b" at step 9: it exited at step 6; processes at this step: a',
    ]);
  });

  test('page ranges must lie inside the region', () => {
    const text = withSteps(`  - write: { process: a, region: r, page: 3, pages: 2, content: { zero: true } }
  - read: { process: a, region: r, page: 4 }
  - mmap: { process: a, region: { name: r, pages: 1, content: [{ pages: 1, zero: true }] } }
`);
    assert.deepEqual(errorsOf(text), [
      'w.yaml:10:43: steps.0.write.page: pages 3..4 are outside region "r" of 4 pages (0..3)',
      'w.yaml:11:42: steps.1.read.page: pages 4..4 are outside region "r" of 4 pages (0..3)',
      'w.yaml:12:41: steps.2.mmap.region.name: process "a" already has a region "r"',
    ]);
  });

  test('ksm and set take writable sysfs files with scalar values', () => {
    const text = withSteps(`  - set: { pages_sharing: 1, run: [2], smart_scan: }
`).replace('name: t\n', 'name: t\nksm: { sleep_milisecs: 20 }\n');
    assert.deepEqual(errorsOf(text), [
      'w.yaml:3:24: ksm.sleep_milisecs: unknown key; allowed: run, pages_to_scan, sleep_millisecs, merge_across_nodes, use_zero_pages, max_page_sharing, stable_node_chains_prune_millisecs, smart_scan, advisor_mode, advisor_max_cpu, advisor_min_pages_to_scan, advisor_max_pages_to_scan, advisor_target_scan_time',
      'w.yaml:11:27: steps.0.set.pages_sharing: unknown key; allowed: run, pages_to_scan, sleep_millisecs, merge_across_nodes, use_zero_pages, max_page_sharing, stable_node_chains_prune_millisecs, smart_scan, advisor_mode, advisor_max_cpu, advisor_min_pages_to_scan, advisor_max_pages_to_scan, advisor_target_scan_time',
      'w.yaml:11:35: steps.0.set.run: expected a scalar (a number or a string), got a list',
      'w.yaml:11:40: steps.0.set.smart_scan: expected a scalar (a number or a string), got null (an empty value)',
    ]);
  });

  test('expect takes sysfs counters or PROCESS.FIELD, with values of the right kind', () => {
    const text =
      withSteps(`  - expect: { pages_shard: 1, a.ksm_stat: 1, pages_sharing: many, advisor_mode: off, a.ksm_merge_any: 1 }
`);
    const allowed =
      'allowed: a file of /sys/kernel/mm/ksm (run, pages_to_scan, sleep_millisecs, merge_across_nodes, use_zero_pages, max_page_sharing, stable_node_chains_prune_millisecs, smart_scan, advisor_mode, advisor_max_cpu, advisor_min_pages_to_scan, advisor_max_pages_to_scan, advisor_target_scan_time, full_scans, pages_shared, pages_sharing, pages_unshared, pages_volatile, pages_scanned, pages_skipped, stable_node_chains, stable_node_dups, ksm_zero_pages, general_profit) or PROCESS.FIELD with FIELD one of ksm_rmap_items, ksm_zero_pages, ksm_merging_pages, ksm_process_profit, ksm_merge_any, ksm_mergeable';
    assert.deepEqual(errorsOf(text), [
      `w.yaml:10:28: steps.0.expect.pages_shard: unknown counter; ${allowed}`,
      `w.yaml:10:43: steps.0.expect.a.ksm_stat: unknown counter; ${allowed}`,
      'w.yaml:10:61: steps.0.expect.pages_sharing: expected an integer, got "many"',
      'w.yaml:10:81: steps.0.expect.advisor_mode: expected none or scan-time, got "off"',
      'w.yaml:10:103: steps.0.expect.a.ksm_merge_any: expected true or false (or yes or no), got 1',
    ]);
  });

  test('an unsigned long beyond 2^53 is expected quoted, and compared as its exact text', () => {
    assert.deepEqual(
      errorsOf(withSteps(`  - expect: { advisor_max_pages_to_scan: 18446744073709551615 }\n`)),
      [
        "w.yaml:10:42: steps.0.expect.advisor_max_pages_to_scan: 18446744073709552000 is beyond 2^53, where a number is not exact: quote it (e.g. '18446744073709551615')",
      ],
    );
    const w = parseWorkload(
      withSteps(
        `  - expect: { advisor_max_pages_to_scan: '18446744073709551615', advisor_max_cpu: '0070' }\n`,
      ),
      'w.yaml',
    );
    const step = w.steps[0]!;
    assert.ok(step.op === 'expect');
    assert.deepEqual(step.counters, [
      { counter: 'advisor_max_pages_to_scan', value: '18446744073709551615' },
      { counter: 'advisor_max_cpu', value: 70 },
    ]);
  });

  test('file content must exist and be long enough; paths are relative to the workload file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ksmkit-workload-'));
    writeFileSync(join(dir, 'disk.img'), new Uint8Array(3 * 4096));
    const text =
      withSteps(`  - write: { process: a, region: r, page: 0, pages: 2, content: { file: disk.img, offset: 4096 } }
  - write: { process: a, region: r, page: 0, pages: 2, content: { file: disk.img, offset: 4097 } }
  - write: { process: a, region: r, page: 0, content: { file: none.img } }
`);
    const fileName = join(dir, 'w.yaml');
    writeFileSync(fileName, text);
    let issues: string[] = [];
    try {
      parseWorkload(text, fileName);
    } catch (error) {
      assert.ok(error instanceof WorkloadError);
      issues = error.issues.map(formatWorkloadIssue);
    }
    assert.deepEqual(issues, [
      `${fileName}:11:73: steps.1.write.content.file: "disk.img" has 12288 bytes; 2 pages from offset 4097 need 12289 (a short read is an error)`,
      `${fileName}:12:63: steps.2.write.content.file: cannot read "none.img" (ENOENT: ${join(dir, 'none.img')})`,
    ]);
  });

  test('YAML syntax errors carry their position', () => {
    assert.deepEqual(errorsOf('version: 1\nname: t\nname: u\nprocesses: [\n'), [
      'w.yaml:3:1: Map keys must be unique',
      'w.yaml:5:1: Flow sequence in block collection must be sufficiently indented and end with a ]',
    ]);
  });

  test('one YAML document per file', () => {
    assert.deepEqual(errorsOf('version: 1\n---\nversion: 1\n'), [
      'w.yaml:2:1: a second YAML document; a workload file holds exactly one',
    ]);
  });

  test('a document that is not a map', () => {
    assert.deepEqual(errorsOf(''), [
      'w.yaml:1:1: expected a workload (a map with version, name, processes and steps), got null (an empty value)',
    ]);
    assert.deepEqual(errorsOf('[1, 2]\n'), [
      'w.yaml:1:1: expected a workload (a map with version, name, processes and steps), got a list',
    ]);
  });

  test('JSON errors have positions too', () => {
    const text = readFileSync(join(FIXTURES, 'two-guests.json'), 'utf8').replace(
      '"pages": 8',
      '"pages": "8"',
    );
    const messages = errorsOf(text, 'w.json');
    assert.equal(messages.length, 1);
    assert.match(
      messages[0] ?? '',
      /^w\.json:\d+:\d+: processes\.0\.regions\.0\.pages: expected an integer >= 1 \(pages\), got "8"$/,
    );
  });

  test('every error is collected, in file order, and a typo does not cascade', () => {
    const text = withSteps(`  - fork: { process: a, child: b, extra: 1 }
  - read: { process: b, region: r, page: 0 }
  - read: { process: c, region: r, page: 0 }
  - scan: -1
`);
    assert.deepEqual(errorsOf(text), [
      'w.yaml:10:42: steps.0.fork.extra: unknown key; allowed: process, child',
      'w.yaml:12:22: steps.2.read.process: no process "c" at step 3; processes at this step: a, b',
      'w.yaml:13:11: steps.3.scan: expected an integer >= 0 (full passes), got -1',
    ]);
  });

  test('an unreadable file is a WorkloadError naming it', async () => {
    await assert.rejects(loadWorkload('/nonexistent/w.yaml'), (error: unknown) => {
      assert.ok(error instanceof WorkloadError);
      assert.match(error.message, /^\/nonexistent\/w\.yaml: cannot read: no such file$/);
      return true;
    });
  });
});
