/**
 * Counts page contents across sources (processes, dump files) in typed arrays:
 * an open-addressing hash table keyed by the page's 64-bit XXH64 (whose low
 * 32 bits are the kernel's own checksum), and per content a linked list of
 * (source, count) entries, so that per-source, per-pair and global figures can
 * all be derived afterwards.
 *
 * Sources are fed one after the other: `beginSource(i)` with increasing i.
 *
 * Physical pages: a content seen twice at the same page frame (a page shared
 * after fork) is one page mapped twice, which ksmd cannot merge with itself
 * (reference §2.7, §6.1). Each entry keeps the first frame number seen and a
 * flag for "two different frames"; frame −1 means unknown (no root, or a dump
 * file), and unknown frames count as different pages.
 */

/** A growable typed array. */
class Column<T extends Int32Array | Uint32Array | Float64Array | Uint8Array> {
  data: T;
  constructor(private readonly make: (n: number) => T) {
    this.data = make(1024);
  }
  ensure(n: number): void {
    if (n <= this.data.length) return;
    let size = this.data.length;
    while (size < n) size *= 2;
    const next = this.make(size);
    next.set(this.data as never);
    this.data = next;
  }
}

export const NO_FRAME = -1;

export class ContentTable {
  // Hash table: slot → content id, or −1.
  private mask: number;
  private slotLo: Uint32Array;
  private slotHi: Uint32Array;
  private slotId: Int32Array;

  // Per content.
  private readonly cLo = new Column((n) => new Uint32Array(n));
  private readonly cHi = new Column((n) => new Uint32Array(n));
  private readonly cCount = new Column((n) => new Uint32Array(n));
  private readonly cHead = new Column((n) => new Int32Array(n));
  /** The entry of the current source for this content, valid when cCurSource matches. */
  private readonly cCurEntry = new Column((n) => new Int32Array(n));
  private readonly cCurSource = new Column((n) => new Int32Array(n));

  // Per entry (content × source).
  private readonly eSource = new Column((n) => new Int32Array(n));
  private readonly eCount = new Column((n) => new Uint32Array(n));
  private readonly eNext = new Column((n) => new Int32Array(n));
  private readonly eFrame = new Column((n) => new Float64Array(n));
  private readonly eMulti = new Column((n) => new Uint8Array(n));

  private contents = 0;
  private entries = 0;
  private source = -1;
  private pages = 0;

  constructor(capacityLog2 = 16) {
    const size = 1 << capacityLog2;
    this.mask = size - 1;
    this.slotLo = new Uint32Array(size);
    this.slotHi = new Uint32Array(size);
    this.slotId = new Int32Array(size).fill(-1);
  }

  get contentCount(): number {
    return this.contents;
  }

  get entryCount(): number {
    return this.entries;
  }

  get pageCount(): number {
    return this.pages;
  }

  beginSource(index: number): void {
    if (index < this.source)
      throw new Error(`ContentTable: sources must come in order (${index} after ${this.source})`);
    this.source = index;
  }

  /** The key of content `id`: its low (the kernel's checksum) and high 32 bits. */
  keyOf(id: number): { readonly lo: number; readonly hi: number } {
    return { lo: this.cLo.data[id]!, hi: this.cHi.data[id]! };
  }

  /** The content id of (lo, hi), or −1 when not seen. */
  find(lo: number, hi: number): number {
    let slot = lo & this.mask;
    for (;;) {
      const id = this.slotId[slot]!;
      if (id < 0) return -1;
      if (this.slotLo[slot] === lo && this.slotHi[slot] === hi) return id;
      slot = (slot + 1) & this.mask;
    }
  }

  /** Counts one page of content (lo, hi) in the current source, at page frame `frame` (or NO_FRAME); returns its id. */
  add(lo: number, hi: number, frame: number): number {
    const source = this.source;
    if (source < 0) throw new Error('ContentTable: beginSource() first');
    let slot = lo & this.mask;
    let id: number;
    for (;;) {
      id = this.slotId[slot]!;
      if (id < 0) {
        id = this.newContent(lo, hi);
        this.slotLo[slot] = lo;
        this.slotHi[slot] = hi;
        this.slotId[slot] = id;
        if (this.contents * 2 > this.mask) this.grow();
        break;
      }
      if (this.slotLo[slot] === lo && this.slotHi[slot] === hi) break;
      slot = (slot + 1) & this.mask;
    }
    this.pages++;
    this.cCount.data[id]!++;
    if (this.cCurSource.data[id] === source) {
      const e = this.cCurEntry.data[id]!;
      this.eCount.data[e]!++;
      if (frame < 0 || frame !== this.eFrame.data[e]) this.eMulti.data[e] = 1;
    } else {
      const e = this.entries++;
      if (e >= this.eSource.data.length) {
        const n = e + 1;
        this.eSource.ensure(n);
        this.eCount.ensure(n);
        this.eNext.ensure(n);
        this.eFrame.ensure(n);
        this.eMulti.ensure(n);
      }
      this.eSource.data[e] = source;
      this.eCount.data[e] = 1;
      this.eFrame.data[e] = frame;
      this.eMulti.data[e] = 0;
      this.eNext.data[e] = this.cHead.data[id]!;
      this.cHead.data[id] = e;
      this.cCurSource.data[id] = source;
      this.cCurEntry.data[id] = e;
    }
    return id;
  }

  private newContent(lo: number, hi: number): number {
    const id = this.contents++;
    if (id >= this.cLo.data.length) {
      const n = id + 1;
      this.cLo.ensure(n);
      this.cHi.ensure(n);
      this.cCount.ensure(n);
      this.cHead.ensure(n);
      this.cCurEntry.ensure(n);
      this.cCurSource.ensure(n);
    }
    this.cLo.data[id] = lo;
    this.cHi.data[id] = hi;
    this.cCount.data[id] = 0;
    this.cHead.data[id] = -1;
    this.cCurSource.data[id] = -1;
    return id;
  }

  private grow(): void {
    const size = (this.mask + 1) * 2;
    const mask = size - 1;
    const lo = new Uint32Array(size);
    const hi = new Uint32Array(size);
    const ids = new Int32Array(size).fill(-1);
    for (let id = 0; id < this.contents; id++) {
      const l = this.cLo.data[id]!;
      let slot = l & mask;
      while (ids[slot]! >= 0) slot = (slot + 1) & mask;
      lo[slot] = l;
      hi[slot] = this.cHi.data[id]!;
      ids[slot] = id;
    }
    this.mask = mask;
    this.slotLo = lo;
    this.slotHi = hi;
    this.slotId = ids;
  }

  /** Total pages of content `id` over all sources. */
  countOf(id: number): number {
    return this.cCount.data[id]!;
  }

  /** Calls fn(source, count, frame, multi) for every source holding content `id` (latest source first). */
  forEachEntry(id: number, fn: (source: number, count: number, frame: number, multi: boolean) => void): void {
    for (let e = this.cHead.data[id]!; e >= 0; e = this.eNext.data[e]!) {
      fn(this.eSource.data[e]!, this.eCount.data[e]!, this.eFrame.data[e]!, this.eMulti.data[e] === 1);
    }
  }

  /** The raw per-entry columns of content `id`, for the hot loops of the summary. */
  entriesOf(id: number, out: EntryList): number {
    let k = 0;
    for (let e = this.cHead.data[id]!; e >= 0; e = this.eNext.data[e]!) {
      out.ensure(k + 1);
      out.source[k] = this.eSource.data[e]!;
      out.count[k] = this.eCount.data[e]!;
      out.frame[k] = this.eFrame.data[e]!;
      out.multi[k] = this.eMulti.data[e]!;
      k++;
    }
    return k;
  }
}

/** A reusable buffer of entries. */
export class EntryList {
  source = new Int32Array(64);
  count = new Uint32Array(64);
  frame = new Float64Array(64);
  multi = new Uint8Array(64);
  ensure(n: number): void {
    if (n <= this.source.length) return;
    const size = Math.max(n, this.source.length * 2);
    const grow = <T extends Int32Array | Uint32Array | Float64Array | Uint8Array>(
      a: T,
      make: (s: number) => T,
    ): T => {
      const b = make(size);
      b.set(a as never);
      return b;
    };
    this.source = grow(this.source, (s) => new Int32Array(s));
    this.count = grow(this.count, (s) => new Uint32Array(s));
    this.frame = grow(this.frame, (s) => new Float64Array(s));
    this.multi = grow(this.multi, (s) => new Uint8Array(s));
  }
}
