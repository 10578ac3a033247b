/**
 * The recording format (recording.ts) and `ksmkit record`'s refusal when the
 * kernel backend cannot run. Needs no kernel: the outcome recorded here is a
 * simulator replay.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SimBackend } from '../backend/sim/sim-backend.ts';
import { recordCommand } from '../cli/record.ts';
import { diffOutcomes, parseWorkload, runReplay } from '../workload/index.ts';
import {
  formatRecording,
  makeRecording,
  parseRecording,
  RecordingError,
  recordingPathOf,
  sha256Hex,
  workloadPathOf,
} from './recording.ts';

const WORKLOAD = `version: 1
name: tiny
processes:
  - name: p
    regions:
      - { name: ram, pages: 4, mergeable: true, content: [{ pages: 4, byte: 7 }] }
steps:
  - scan: 2
  - expect: { pages_shared: 1, pages_sharing: 3 }
  - set: { max_page_sharing: 1 }
`;

async function simOutcome() {
  return runReplay(parseWorkload(WORKLOAD, '/tmp/tiny.yaml'), new SimBackend());
}

test('recording paths: FILE.expected.json beside FILE, and back', () => {
  assert.equal(recordingPathOf('conformance/001-x.yaml'), 'conformance/001-x.yaml.expected.json');
  assert.equal(workloadPathOf('conformance/001-x.yaml.expected.json'), 'conformance/001-x.yaml');
  assert.equal(workloadPathOf('conformance/README.md'), undefined);
});

test('a recording survives formatting and parsing: no difference, same metadata', async () => {
  const outcome = await simOutcome();
  const sha = sha256Hex(WORKLOAD);
  const when = new Date('2026-01-02T03:04:05.000Z');
  const text = formatRecording(makeRecording('conformance/007-tiny.yaml', sha, outcome, when));
  const back = parseRecording(text, 'tiny.yaml.expected.json');
  assert.equal(back.file, '007-tiny.yaml');
  assert.equal(back.workload, 'tiny');
  assert.equal(back.workloadSha256, sha);
  assert.equal(back.recordedAt, '2026-01-02T03:04:05.000Z');
  assert.equal(back.kernelVersion, outcome.start.kernelVersion);
  assert.equal(back.outcome.exitStatus, 0);
  assert.deepEqual(diffOutcomes(outcome, back.outcome), { differences: [], uncompared: [] });
  assert.deepEqual(back.outcome.results[2]?.errno, 'EINVAL');
  // One step result per line, so that a re-recording diffs step by step.
  assert.equal(text.split('\n').filter((line) => line.startsWith('    {"step":')).length, 3);
});

test('a malformed recording is refused with the reason', async () => {
  const outcome = await simOutcome();
  const good = JSON.parse(formatRecording(makeRecording('x.yaml', 'abc', outcome, new Date(0)))) as Record<
    string,
    unknown
  >;
  const refuse = (value: unknown, reason: RegExp): void => {
    assert.throws(
      () => parseRecording(JSON.stringify(value), 'r.json'),
      (e: unknown) => e instanceof RecordingError && reason.test(e.message),
    );
  };
  assert.throws(() => parseRecording('{', 'r.json'), RecordingError);
  refuse({ ...good, recording: 2 }, /"recording" must be 1/);
  refuse({ ...good, exitStatus: 1 }, /does not match its results/);
  refuse(
    { ...good, results: (good.results as unknown[]).slice(1) },
    /results\[0\] is not the result of step 1/,
  );
  refuse({ ...good, start: {} }, /start event/);
  refuse({ ...good, kernelVersion: 6 }, /"kernelVersion" must be a string/);
});

test('record refuses with exit 2 and writes nothing when the kernel backend is unavailable', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ksmkit-record-'));
  const saved = process.env.KSMKIT_AGENT;
  try {
    const file = join(dir, 'tiny.yaml');
    await writeFile(file, WORKLOAD);
    process.env.KSMKIT_AGENT = join(dir, 'no-such-agent');
    const out: string[] = [];
    const err: string[] = [];
    const status = await recordCommand(
      [file],
      { force: false },
      { out: (l) => out.push(l), err: (l) => err.push(l) },
    );
    assert.equal(status, 2);
    assert.deepEqual(out, []);
    assert.equal(err.length, 1);
    assert.match(err[0]!, /^ksmkit record: kernel backend unavailable: .+; nothing recorded$/);
    assert.deepEqual(await readdir(dir), ['tiny.yaml']);
  } finally {
    if (saved === undefined) delete process.env.KSMKIT_AGENT;
    else process.env.KSMKIT_AGENT = saved;
    await rm(dir, { recursive: true, force: true });
  }
});
