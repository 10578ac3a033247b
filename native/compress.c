/*
 * ksmkit-compress: the page compressors of the kernel's zram and zswap, as a
 * Node-API addon (native/build/ksmkit-compress.node), for `ksmkit estimate
 * --compare` and `ksmkit simulate --compression`.
 *
 * Algorithms, and how close each one is to the kernel's:
 *   lzo      LZO1X-1 as the kernel's lib/lzo/lzo1x_compress.c runs it
 *            (lzo1x_1_compress): a dictionary of 2^13 16-bit entries
 *            (D_BITS 13 in lib/lzo/lzodefs.h), the hash dv * 0x1824429d, the
 *            literal skip 1 + (run >> 5), the 64-bit match extension. Written
 *            here from the LZO1X bitstream (Documentation/staging/lzo.rst), not
 *            taken from liblzo2, whose LZO1X-1 uses 2^14 entries and so finds
 *            other matches: on 4 KiB pages the output is byte-identical to the
 *            kernel's, which the zram test holds against /dev/zram0.
 *   lzo-rle  the same with bitstream version 1 (lzorle1x_1_compress): the
 *            stream starts with 17, 1, and a run of ≥ 4 zero bytes is one
 *            4-byte instruction (up to 2051 zeroes).
 *   lz4      the reference LZ4 library (Debian's liblz4), LZ4_compress_fast at
 *            acceleration 1, which is what drivers/block/zram/backend_lz4.c and
 *            crypto/lz4.c ask of the kernel's lib/lz4 (LZ4_ACCELERATION_DEFAULT,
 *            LZ4_MEMORY_USAGE 14). The kernel carries an older copy of the same
 *            code; the zram test checks the sizes agree.
 *
 * Everything a call needs is thread-local: the addon is loaded in the
 * estimate's reader threads too. analyze() also times the compressors: the
 * thread's CPU clock read around each call's run of pages per algorithm.
 */
#define NAPI_VERSION 8
#include <lz4.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE_BYTES 4096
/* zram's per-CPU stream buffer is two pages (zcomp_strm_init): no page ever fails to compress. */
#define OUT_BYTES (2 * PAGE_BYTES)

enum algo { ALGO_LZO = 0, ALGO_LZO_RLE = 1, ALGO_LZ4 = 2, ALGO_COUNT = 3 };

/* ---------------------------------------------------------------- LZO1X-1 */

#define D_BITS 13
#define D_SIZE (1u << D_BITS)
#define D_MASK (D_SIZE - 1)
#define M2_MAX_LEN 8
#define M2_MAX_OFFSET 0x0800
#define M3_MAX_LEN 33
#define M3_MAX_OFFSET 0x4000
#define M4_MAX_LEN 9
#define M3_MARKER 32
#define M4_MARKER 16
#define MIN_ZERO_RUN_LENGTH 4
#define MAX_ZERO_RUN_LENGTH (2047 + MIN_ZERO_RUN_LENGTH)
/* Inputs shorter than this are all literals (the kernel's `while (l > 20)`). */
#define LZO_MIN_MATCH_INPUT 20

static inline uint32_t load32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

static inline uint64_t load64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* A literal run's length code: what the kernel writes before the t literal bytes. */
static uint8_t *put_literal_header(uint8_t *op, size_t t, int8_t state_offset) {
  if (t <= 3) {
    op[state_offset] |= (uint8_t)t;
  } else if (t <= 18) {
    *op++ = (uint8_t)(t - 3);
  } else {
    size_t tt = t - 18;
    *op++ = 0;
    while (tt > 255) {
      tt -= 255;
      *op++ = 0;
    }
    *op++ = (uint8_t)tt;
  }
  return op;
}

/* A match length beyond what the instruction holds: zero bytes of 255, then the rest. */
static uint8_t *put_length_tail(uint8_t *op, size_t len) {
  while (len > 255) {
    len -= 255;
    *op++ = 0;
  }
  *op++ = (uint8_t)len;
  return op;
}

/*
 * One block (a page is always one: it is below the 48 KiB distance limit).
 * Returns the count of trailing bytes left as literals, as
 * lzo1x_1_do_compress does; *op_end is where output stops.
 */
static size_t lzo_block(const uint8_t *in, size_t in_len, uint8_t *out, uint8_t **op_end,
                        int8_t *state_offset, int rle, uint16_t *dict) {
  const uint8_t *const in_end = in + in_len;
  const uint8_t *const ip_end = in + in_len - LZO_MIN_MATCH_INPUT;
  const uint8_t *ip = in + 4;
  const uint8_t *ii = in;
  uint8_t *op = out;
  const uint8_t *m_pos = in;
  size_t run_length;

  for (;;) {
    ip += 1 + ((size_t)(ip - ii) >> 5);
  next:
    if (ip >= ip_end) break;
    run_length = 0;
    uint32_t dv = load32(ip);
    if (dv == 0 && rle) {
      const uint8_t *ir = ip + 4;
      while (ir < ip_end && *ir == 0) ir++;
      run_length = (size_t)(ir - ip);
      if (run_length > MAX_ZERO_RUN_LENGTH) run_length = MAX_ZERO_RUN_LENGTH;
    } else {
      uint32_t t = ((dv * 0x1824429du) >> (32 - D_BITS)) & D_MASK;
      m_pos = in + dict[t];
      dict[t] = (uint16_t)(ip - in);
      if (dv != load32(m_pos)) {
        continue;
      }
    }

    size_t t = (size_t)(ip - ii);
    if (t != 0) {
      op = put_literal_header(op, t, *state_offset);
      memcpy(op, ii, t);
      op += t;
    }

    if (run_length != 0) {
      /* 0001 1LLL, 0xfc, 0xff, X: distance 0xbfff marks a zero run of (X << 3 | LLL) + 4 bytes. */
      ip += run_length;
      run_length -= MIN_ZERO_RUN_LENGTH;
      *op++ = (uint8_t)(0x18 | (run_length & 7));
      *op++ = 0xfc;
      *op++ = 0xff;
      *op++ = (uint8_t)(run_length >> 3);
      *state_offset = -3;
      ii = ip;
      goto next;
    }

    size_t m_len = 4;
    uint64_t v = load64(ip + m_len) ^ load64(m_pos + m_len);
    if (v == 0) {
      do {
        m_len += 8;
        v = load64(ip + m_len) ^ load64(m_pos + m_len);
        if (ip + m_len >= ip_end) goto m_len_done;
      } while (v == 0);
    }
    m_len += (size_t)__builtin_ctzll(v) / 8;
  m_len_done:;
    size_t m_off = (size_t)(ip - m_pos);
    ip += m_len;
    if (m_len <= M2_MAX_LEN && m_off <= M2_MAX_OFFSET) {
      m_off -= 1;
      *op++ = (uint8_t)(((m_len - 1) << 5) | ((m_off & 7) << 2));
      *op++ = (uint8_t)(m_off >> 3);
    } else if (m_off <= M3_MAX_OFFSET) {
      m_off -= 1;
      if (m_len <= M3_MAX_LEN) {
        *op++ = (uint8_t)(M3_MARKER | (m_len - 2));
      } else {
        *op++ = M3_MARKER;
        op = put_length_tail(op, m_len - M3_MAX_LEN);
      }
      *op++ = (uint8_t)(m_off << 2);
      *op++ = (uint8_t)(m_off >> 6);
    } else {
      /* Distances over 16 KiB: never within one page, kept so the encoder is whole. */
      m_off -= 0x4000;
      if (m_len <= M4_MAX_LEN) {
        *op++ = (uint8_t)(M4_MARKER | ((m_off >> 11) & 8) | (m_len - 2));
      } else {
        *op++ = (uint8_t)(M4_MARKER | ((m_off >> 11) & 8));
        op = put_length_tail(op, m_len - M4_MAX_LEN);
      }
      *op++ = (uint8_t)(m_off << 2);
      *op++ = (uint8_t)(m_off >> 6);
    }
    *state_offset = -2;
    ii = ip;
    goto next;
  }
  *op_end = op;
  return (size_t)(in_end - ii);
}

/* lzo1x_1_compress / lzorle1x_1_compress for inputs of at most 48 KiB; returns the output length. */
static size_t lzo_compress(const uint8_t *in, size_t in_len, uint8_t *out, int rle) {
  static _Thread_local uint16_t dict[D_SIZE];
  uint8_t *op = out;
  int8_t state_offset = -2;
  size_t t = in_len;
  if (rle) {
    /* LZO v0 never starts with 17: that byte and the version announce the RLE bitstream. */
    *op++ = 17;
    *op++ = 1;
  }
  uint8_t *const data_start = op;
  if (in_len > LZO_MIN_MATCH_INPUT) {
    memset(dict, 0, sizeof dict);
    t = lzo_block(in, in_len, op, &op, &state_offset, rle, dict);
  }
  if (t > 0) {
    const uint8_t *ii = in + in_len - t;
    if (op == data_start && t <= 238) *op++ = (uint8_t)(17 + t);
    else op = put_literal_header(op, t, state_offset);
    memcpy(op, ii, t);
    op += t;
  }
  *op++ = M4_MARKER | 1;
  *op++ = 0;
  *op++ = 0;
  return (size_t)(op - out);
}

/* A length's extension: zero bytes worth 255 each, then a byte, added to `base`; 0 when the input ends first. */
static int length_tail(const uint8_t **ipp, const uint8_t *ip_end, size_t base, size_t *len) {
  const uint8_t *ip = *ipp;
  size_t n = base;
  while (ip < ip_end && *ip == 0) {
    n += 255;
    ip++;
  }
  if (ip >= ip_end) return 0;
  *len = n + *ip++;
  *ipp = ip;
  return 1;
}

/*
 * LZO1X decompression of either bitstream, bounds-checked; returns the
 * output length, or -1 for a corrupt stream.
 */
static long lzo_decompress(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap) {
  const uint8_t *ip = in;
  const uint8_t *const ip_end = in + in_len;
  uint8_t *op = out;
  uint8_t *const op_end = out + out_cap;
  int version = 0;
  size_t state = 0;
#define NEED_IP(n) \
  if ((size_t)(ip_end - ip) < (size_t)(n)) return -1
#define NEED_OP(n) \
  if ((size_t)(op_end - op) < (size_t)(n)) return -1
  if (in_len >= 5 && ip[0] == 17) {
    version = ip[1];
    ip += 2;
  }
  NEED_IP(1);
  if (*ip > 17) {
    size_t t = (size_t)(*ip++ - 17);
    NEED_IP(t);
    NEED_OP(t);
    memcpy(op, ip, t);
    op += t;
    ip += t;
    state = t < 4 ? t : 4;
  }
  for (;;) {
    NEED_IP(1);
    size_t t = *ip++;
    size_t len;
    size_t dist;
    size_t next;
    if (t < 16) {
      if (state == 0) {
        len = t;
        if (len == 0 && !length_tail(&ip, ip_end, 15, &len)) return -1;
        len += 3;
        NEED_IP(len);
        NEED_OP(len);
        memcpy(op, ip, len);
        op += len;
        ip += len;
        state = 4;
        continue;
      }
      NEED_IP(1);
      next = t & 3;
      if (state != 4) {
        len = 2;
        dist = 1 + (t >> 2) + ((size_t)*ip++ << 2);
      } else {
        len = 3;
        dist = 1 + M2_MAX_OFFSET + (t >> 2) + ((size_t)*ip++ << 2);
      }
    } else if (t >= 64) {
      NEED_IP(1);
      len = (t >> 5) + 1;
      dist = 1 + ((t >> 2) & 7) + ((size_t)*ip++ << 3);
      next = t & 3;
    } else if (t >= 32) {
      len = (t & 31) + 2;
      if (len == 2 && !length_tail(&ip, ip_end, 2 + 31, &len)) return -1;
      NEED_IP(2);
      size_t word = (size_t)ip[0] | ((size_t)ip[1] << 8);
      ip += 2;
      dist = 1 + (word >> 2);
      next = word & 3;
    } else {
      NEED_IP(2);
      size_t word = (size_t)ip[0] | ((size_t)ip[1] << 8);
      if (version > 0 && (word & 0xfffc) == 0xfffc && (t & 0xf8) == 0x18) {
        NEED_IP(3);
        len = ((t & 7) | ((size_t)ip[2] << 3)) + MIN_ZERO_RUN_LENGTH;
        NEED_OP(len);
        memset(op, 0, len);
        op += len;
        next = word & 3;
        ip += 3;
        goto literals;
      }
      len = (t & 7) + 2;
      if (len == 2) {
        if (!length_tail(&ip, ip_end, 2 + 7, &len)) return -1;
        NEED_IP(2);
        word = (size_t)ip[0] | ((size_t)ip[1] << 8);
      }
      ip += 2;
      dist = ((t & 8) << 11) + (word >> 2);
      next = word & 3;
      if (dist == 0) break; /* the end marker: 17, 0, 0 */
      dist += 0x4000;
    }
    if (dist > (size_t)(op - out)) return -1;
    NEED_OP(len);
    if (dist >= len) {
      memcpy(op, op - dist, len);
      op += len;
    } else {
      /* An overlapping copy repeats the last `dist` bytes: byte by byte, as the format means. */
      for (size_t i = 0; i < len; i++, op++) *op = *(op - dist);
    }
  literals:
    NEED_IP(next);
    NEED_OP(next);
    memcpy(op, ip, next);
    op += next;
    ip += next;
    state = next;
  }
#undef NEED_IP
#undef NEED_OP
  return ip == ip_end ? (long)(op - out) : -1;
}

/* -------------------------------------------------------------- dispatch */

static long compress_one(int algo, const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap) {
  static _Thread_local LZ4_stream_t lz4_state;
  switch (algo) {
    case ALGO_LZO:
    case ALGO_LZO_RLE:
      if (out_cap < in_len + in_len / 16 + 64 + 3) return -1;
      return (long)lzo_compress(in, in_len, out, algo == ALGO_LZO_RLE);
    case ALGO_LZ4:
      return LZ4_compress_fast_extState(&lz4_state, (const char *)in, (char *)out, (int)in_len, (int)out_cap, 1);
    default:
      return -1;
  }
}

static long decompress_one(int algo, const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap) {
  switch (algo) {
    case ALGO_LZO:
    case ALGO_LZO_RLE:
      return lzo_decompress(in, in_len, out, out_cap);
    case ALGO_LZ4: {
      int r = LZ4_decompress_safe((const char *)in, (char *)out, (int)in_len, (int)out_cap);
      return r < 0 ? -1 : r;
    }
    default:
      return -1;
  }
}

/* page_same_filled (drivers/block/zram/zram_drv.c): every unsigned long of the page equals the first. */
static int same_filled(const uint8_t *page, uint64_t *word) {
  uint64_t first = load64(page);
  for (size_t i = 8; i < PAGE_BYTES; i += 8)
    if (load64(page + i) != first) return 0;
  *word = first;
  return 1;
}

/* ----------------------------------------------------------------- N-API */

#define CHECK(call)                                         \
  do {                                                      \
    if ((call) != napi_ok) {                                \
      napi_throw_error(env, NULL, "ksmkit-compress: " #call); \
      return NULL;                                          \
    }                                                       \
  } while (0)

static napi_value throw_msg(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static int get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  napi_typedarray_type type;
  void *ptr;
  size_t length;
  if (napi_get_typedarray_info(env, v, &type, &length, &ptr, NULL, NULL) != napi_ok) return 0;
  if (type != napi_uint8_array) return 0;
  *data = ptr;
  *len = length;
  return 1;
}

static int get_algo(napi_env env, napi_value v, int *algo) {
  int32_t a;
  if (napi_get_value_int32(env, v, &a) != napi_ok || a < 0 || a >= ALGO_COUNT) return 0;
  *algo = a;
  return 1;
}

/* A new Uint8Array of the first n bytes of `out` (then freed), or `error` thrown when n < 0. */
static napi_value bytes_result(napi_env env, uint8_t *out, long n, const char *error) {
  napi_value result = NULL;
  void *data;
  napi_value ab;
  if (n >= 0 && napi_create_arraybuffer(env, (size_t)n, &data, &ab) == napi_ok &&
      napi_create_typedarray(env, napi_uint8_array, (size_t)n, ab, 0, &result) == napi_ok)
    memcpy(data, out, (size_t)n);
  free(out);
  if (n < 0) return throw_msg(env, error);
  return result;
}

/* compress(algo, src: Uint8Array): Uint8Array */
static napi_value js_compress(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int algo;
  uint8_t *src;
  size_t len;
  if (argc < 2 || !get_algo(env, argv[0], &algo) || !get_bytes(env, argv[1], &src, &len))
    return throw_msg(env, "compress(algo, src: Uint8Array)");
  if (len > 3 * 16384) return throw_msg(env, "compress: at most 48 KiB");
  size_t cap = len + len / 16 + 64 + 3;
  uint8_t *out = malloc(cap);
  if (out == NULL) return throw_msg(env, "compress: out of memory");
  return bytes_result(env, out, compress_one(algo, src, len, out, cap), "compress: the compressor failed");
}

/* decompress(algo, src: Uint8Array, outBytes): Uint8Array; throws on a corrupt stream. */
static napi_value js_decompress(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int algo;
  uint8_t *src;
  size_t len;
  int32_t cap;
  if (argc < 3 || !get_algo(env, argv[0], &algo) || !get_bytes(env, argv[1], &src, &len) ||
      napi_get_value_int32(env, argv[2], &cap) != napi_ok || cap < 0)
    return throw_msg(env, "decompress(algo, src: Uint8Array, outBytes)");
  uint8_t *out = malloc((size_t)cap + 1);
  if (out == NULL) return throw_msg(env, "decompress: out of memory");
  return bytes_result(env, out, decompress_one(algo, src, len, out, (size_t)cap), "decompress: corrupt input");
}

/* Page flags written by analyze(). */
#define PAGE_SAME_FILLED 1
#define PAGE_ZERO 2

static double thread_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Every DECOMPRESS_SAMPLE-th compressed page of analyze() is also decompressed, for its timing. */
#define DECOMPRESS_SAMPLE 8
/* Entries of analyze()'s timing array: compress ns, decompress ns, pages compressed, pages decompressed. */
#define TIMING_ENTRIES (4 * ALGO_COUNT)

/*
 * analyze(src: Uint8Array, out: Int32Array, timing?: Float64Array): for each
 * page of src, out[4i] = flags (PAGE_SAME_FILLED, PAGE_ZERO), out[4i + 1 +
 * algo] = its compressed length under each algorithm. Zero pages are
 * compressed once per thread: every one gives the same length. `timing` gets
 * added to it, per algorithm, this thread's CPU ns compressing the other
 * pages and decompressing a sample of them, and the two page counts.
 */
static napi_value js_analyze(napi_env env, napi_callback_info info) {
  static _Thread_local int32_t zero_sizes[ALGO_COUNT] = {-1, -1, -1};
  static _Thread_local uint8_t out[OUT_BYTES];
  static _Thread_local uint8_t page_out[PAGE_BYTES];
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t *src;
  size_t len;
  napi_typedarray_type type;
  size_t out_len;
  void *out_ptr;
  double *timing = NULL;
  if (argc < 2 || !get_bytes(env, argv[0], &src, &len) ||
      napi_get_typedarray_info(env, argv[1], &type, &out_len, &out_ptr, NULL, NULL) != napi_ok ||
      type != napi_int32_array)
    return throw_msg(env, "analyze(src: Uint8Array, out: Int32Array, timing?: Float64Array)");
  if (argc >= 3) {
    size_t timing_len;
    void *timing_ptr;
    napi_valuetype vt;
    CHECK(napi_typeof(env, argv[2], &vt));
    if (vt != napi_undefined) {
      if (napi_get_typedarray_info(env, argv[2], &type, &timing_len, &timing_ptr, NULL, NULL) != napi_ok ||
          type != napi_float64_array || timing_len < TIMING_ENTRIES)
        return throw_msg(env, "analyze: timing must be a Float64Array of 12 entries");
      timing = timing_ptr;
    }
  }
  size_t pages = len / PAGE_BYTES;
  if (len % PAGE_BYTES != 0 || out_len < pages * (1 + ALGO_COUNT))
    return throw_msg(env, "analyze: src must be whole pages and out 4 entries a page");
  int32_t *res = out_ptr;
  for (size_t i = 0; i < pages; i++) {
    uint64_t word = 1;
    int same = same_filled(src + i * PAGE_BYTES, &word);
    res[i * (1 + ALGO_COUNT)] = (same ? PAGE_SAME_FILLED : 0) | (same && word == 0 ? PAGE_ZERO : 0);
  }
  /* Every DECOMPRESS_SAMPLE-th compressed page keeps its output here, decompressed after the timed compressions. */
  size_t max_samples = pages / DECOMPRESS_SAMPLE + 1;
  uint8_t *kept = timing != NULL ? malloc(max_samples * OUT_BYTES) : NULL;
  size_t *kept_len = timing != NULL ? malloc(max_samples * sizeof(size_t)) : NULL;
  size_t *kept_page = timing != NULL ? malloc(max_samples * sizeof(size_t)) : NULL;
  if (timing != NULL && (kept == NULL || kept_len == NULL || kept_page == NULL)) {
    free(kept);
    free(kept_len);
    free(kept_page);
    return throw_msg(env, "analyze: out of memory");
  }
  const char *error = NULL;
  for (int a = 0; a < ALGO_COUNT && error == NULL; a++) {
    size_t compressed = 0, samples = 0;
    /* One clock read around the whole run of compressions: a read per page would cost as much as a small page. */
    double t0 = timing != NULL ? thread_ns() : 0;
    for (size_t i = 0; i < pages; i++) {
      int32_t *r = res + i * (1 + ALGO_COUNT);
      if ((r[0] & PAGE_ZERO) && zero_sizes[a] >= 0) {
        r[1 + a] = zero_sizes[a];
        continue;
      }
      int keep = timing != NULL && compressed % DECOMPRESS_SAMPLE == 0;
      uint8_t *dst = keep ? kept + samples * OUT_BYTES : out;
      long n = compress_one(a, src + i * PAGE_BYTES, PAGE_BYTES, dst, OUT_BYTES);
      if (n < 0) {
        error = "analyze: a compressor failed";
        break;
      }
      r[1 + a] = (int32_t)n;
      if (r[0] & PAGE_ZERO) zero_sizes[a] = (int32_t)n;
      compressed++;
      if (keep) {
        kept_len[samples] = (size_t)n;
        kept_page[samples] = i;
        samples++;
      }
    }
    if (timing == NULL || error != NULL) continue;
    double t1 = thread_ns();
    for (size_t k = 0; k < samples; k++)
      if (decompress_one(a, kept + k * OUT_BYTES, kept_len[k], page_out, PAGE_BYTES) != PAGE_BYTES) break;
    double t2 = thread_ns();
    /* Checked apart from the timed loop: each sample comes back as the page it was. */
    for (size_t k = 0; k < samples && error == NULL; k++) {
      if (decompress_one(a, kept + k * OUT_BYTES, kept_len[k], page_out, PAGE_BYTES) != PAGE_BYTES ||
          memcmp(page_out, src + kept_page[k] * PAGE_BYTES, PAGE_BYTES) != 0)
        error = "analyze: a page did not decompress to itself";
    }
    timing[a] += t1 - t0;
    timing[ALGO_COUNT + a] += t2 - t1;
    timing[2 * ALGO_COUNT + a] += (double)compressed;
    timing[3 * ALGO_COUNT + a] += (double)samples;
  }
  free(kept);
  free(kept_len);
  free(kept_page);
  if (error != NULL) return throw_msg(env, error);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"compress", NULL, js_compress, NULL, NULL, NULL, napi_default, NULL},
      {"decompress", NULL, js_decompress, NULL, NULL, NULL, napi_default, NULL},
      {"analyze", NULL, js_analyze, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
