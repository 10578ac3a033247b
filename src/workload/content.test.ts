import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  ContentError,
  type ContentPlacement,
  contentBytes,
  contentPages,
  describePageBytes,
  describeRunPage,
  TagPageCache,
  tagPage,
} from './content.ts';

const PAGE = 4096;

const placement: ContentPlacement = {
  process: 'guest-1',
  region: 'ram',
  regionPageIndex: 3,
  step: 7,
  baseDir: '/nonexistent',
};

/** Digest k (32 bytes) of a page, as hex. */
function digestHex(page: Uint8Array, k: number): string {
  return Buffer.from(page.subarray(k * 32, (k + 1) * 32)).toString('hex');
}

describe('tag pages', () => {
  test('match SHA-256 values computed outside Node (sha256sum)', () => {
    // printf 'ksmkit:debian-12/5:0' | sha256sum, and so on.
    const page = tagPage('debian-12/5');
    assert.equal(page.length, PAGE);
    assert.equal(digestHex(page, 0), '0517b36e5d484577178dc0dc626f4300fed742db2432cee57ad41df1d2973eb2');
    assert.equal(digestHex(page, 127), '70a4282791df6f4bb3560ec6e9d5b3e2dc117d5dab9815561117db29e9857adc');
  });

  test('are the concatenation of SHA-256 of `ksmkit:S:k` for k = 0..127, S taken as UTF-8', () => {
    const page = tagPage('hé');
    for (let k = 0; k < 128; k++) {
      assert.equal(digestHex(page, k), createHash('sha256').update(`ksmkit:hé:${k}`, 'utf8').digest('hex'));
    }
    assert.equal(digestHex(page, 1), 'abd836f222e013a2e774c9a2233856c06fb9647dea61f14770821f5344e38e73');
  });
});

describe('content runs', () => {
  test('zero and byte pages', () => {
    assert.deepEqual(
      contentBytes({ pageCount: 2, spec: { kind: 'zero' } }, placement),
      new Uint8Array(2 * PAGE),
    );
    assert.deepEqual(
      contentBytes({ pageCount: 3, spec: { kind: 'byte', value: 7 } }, placement),
      new Uint8Array(3 * PAGE).fill(7),
    );
  });

  test('tag: every page of the run is the same tag page', () => {
    const bytes = contentBytes({ pageCount: 2, spec: { kind: 'tag', tag: 'x' } }, placement);
    assert.deepEqual(bytes.subarray(0, PAGE), tagPage('x'));
    assert.deepEqual(bytes.subarray(PAGE), tagPage('x'));
  });

  test('image S with offset N: page i is tag S/(N+i)', () => {
    const bytes = contentBytes(
      { pageCount: 3, spec: { kind: 'image', image: 'debian-12', offsetPages: 4 } },
      placement,
      new TagPageCache(0),
    );
    // Page 1 of the run is tag debian-12/5: its first digest is digest 128 of the run.
    assert.equal(digestHex(bytes, 128), '0517b36e5d484577178dc0dc626f4300fed742db2432cee57ad41df1d2973eb2');
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(bytes.subarray(i * PAGE, (i + 1) * PAGE), tagPage(`debian-12/${4 + i}`));
    }
  });

  test('unique: tag unique/P/R/I/G with I the page index in the region and G the writing step', () => {
    const bytes = contentBytes(
      { pageCount: 2, spec: { kind: 'unique' } },
      { ...placement, regionPageIndex: 3 },
    );
    // printf 'ksmkit:unique/guest-1/ram/3/7:0' | sha256sum
    assert.equal(digestHex(bytes, 0), 'd1b3c1ca95ca7d9315933c5cc8ab352f267a70a1a5a09ff0f95fd939bc9b2df5');
    assert.deepEqual(bytes.subarray(PAGE), tagPage('unique/guest-1/ram/4/7'));
  });

  test('file: consecutive pages from the byte offset, relative to the base directory; a short read throws', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ksmkit-content-'));
    const image = new Uint8Array(3 * PAGE + 10).map((_, index) => (index * 7) % 251);
    writeFileSync(join(dir, 'disk.img'), image);
    const at = { ...placement, baseDir: dir };
    const spec = { kind: 'file', path: 'disk.img', offsetBytes: 10 } as const;
    assert.deepEqual(contentBytes({ pageCount: 3, spec }, at), image.subarray(10, 10 + 3 * PAGE));
    assert.deepEqual(
      contentPages(spec, at, { firstRunPage: 2, pageCount: 1 }),
      image.subarray(10 + 2 * PAGE, 10 + 3 * PAGE),
    );
    assert.throws(
      () => contentBytes({ pageCount: 3, spec: { ...spec, offsetBytes: 11 } }, at),
      (error: unknown) =>
        error instanceof ContentError && /short read: 12287 of 12288 bytes/.test(error.message),
    );
  });

  test('a span of a run is the same bytes as that slice of the whole run', () => {
    const spec = { kind: 'image', image: 'img', offsetPages: 2 } as const;
    const whole = contentBytes({ pageCount: 6, spec }, placement);
    assert.deepEqual(
      contentPages(spec, placement, { firstRunPage: 2, pageCount: 3 }),
      whole.subarray(2 * PAGE, 5 * PAGE),
    );
    const unique = contentBytes({ pageCount: 4, spec: { kind: 'unique' } }, placement);
    assert.deepEqual(
      contentPages({ kind: 'unique' }, placement, { firstRunPage: 1, pageCount: 2 }),
      unique.subarray(PAGE, 3 * PAGE),
    );
  });
});

describe('the tag page cache', () => {
  test('is a bounded LRU that returns the same bytes as computing afresh', () => {
    const cache = new TagPageCache(2);
    assert.deepEqual(cache.page('a'), tagPage('a'));
    cache.page('b');
    cache.page('a'); // a is now the most recent: adding c evicts b
    cache.page('c');
    assert.equal(cache.sizePages, 2);
    assert.deepEqual([cache.hitCount, cache.missCount], [1, 3]);
    cache.page('a');
    cache.page('b');
    assert.deepEqual([cache.hitCount, cache.missCount], [2, 4]);
    assert.deepEqual(cache.page('b'), tagPage('b'));
  });

  test('image pages repeat across processes: the second guest is served from the cache', () => {
    const cache = new TagPageCache();
    const run = { pageCount: 50, spec: { kind: 'image', image: 'deb', offsetPages: 0 } } as const;
    const first = contentBytes(run, { ...placement, process: 'guest-1' }, cache);
    const second = contentBytes(run, { ...placement, process: 'guest-2' }, cache);
    assert.deepEqual(first, second);
    assert.deepEqual([cache.hitCount, cache.missCount], [50, 50]);
  });
});

describe('descriptions for messages', () => {
  test('name the written content and the bytes read', () => {
    assert.equal(
      describeRunPage({ kind: 'image', image: 'deb', offsetPages: 2 }, placement, 1),
      'tag deb/3 (image deb)',
    );
    assert.equal(describeRunPage({ kind: 'unique' }, placement, 1), 'tag unique/guest-1/ram/4/7');
    assert.equal(
      describeRunPage({ kind: 'file', path: 'x.img', offsetBytes: 1 }, placement, 2),
      'file x.img+8193',
    );
    assert.equal(describePageBytes(new Uint8Array(PAGE)), 'zero');
    assert.equal(describePageBytes(new Uint8Array(PAGE).fill(9)), 'byte 9');
    assert.match(describePageBytes(tagPage('x')), /^sha256:[0-9a-f]{16}$/);
  });
});
