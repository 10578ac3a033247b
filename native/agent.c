/*
 * ksmkit-agent: one workload process of the kernel backend.
 *
 * The TypeScript kernel backend (src/backend/kernel/) runs one agent per
 * workload process. The agent owns the workload's anonymous memory and does
 * to it exactly what it is told (mmap, write, madvise, prctl, fork, ...), so
 * that the real kernel's KSM sees the same address space the simulator models.
 *
 * Usage: ksmkit-agent SOCKET_PATH NAME
 *   env KSMKIT_PARENT_PID: pid of the node process; the agent exits at once if
 *   its parent is already someone else (the node process died before the
 *   PR_SET_PDEATHSIG below was in place).
 *
 * Wire format (every integer little-endian, fixed-size headers, no padding
 * left to the compiler):
 *
 *   request  = 32-byte header + payload
 *     u32 payload_len   bytes that follow the header (<= AGENT_MAX_PAYLOAD)
 *     u8  op            one of enum agent_op
 *     u8  pad[3]        zero
 *     u64 addr          virtual address (mmap, munmap, write, read, madvise, mlock)
 *     u64 len           length in bytes (idem)
 *     u64 arg           op-specific: mmap flags, madvise advice, prctl value
 *
 *   reply    = 16-byte header + payload
 *     u32 payload_len
 *     i32 err           0 on success, else the errno of the failed call
 *     i64 value         op-specific result (pid for getpid/fork/hello)
 *
 *   hello    = a reply frame the agent sends, unasked, right after it connects:
 *              err 0, value = its pid, payload = its workload name. The first
 *              agent's name comes from argv; a fork child's from the fork
 *              request's payload. This is how the TypeScript side learns which
 *              connection belongs to which process.
 *
 * Memory discipline. Once PR_SET_MEMORY_MERGE is on, every new anonymous
 * mapping of the process is created VM_MERGEABLE, and the prctl itself marks
 * every existing compatible VMA (stack, heap, .data/.bss, libc's mappings).
 * Those pages are the agent's, not the workload's, and must not show up in
 * KSM's counters. So, right after a successful prctl(…, 1), the agent advises
 * MADV_UNMERGEABLE on every range of /proc/self/maps that is not a workload
 * region; and it never allocates: no malloc, no stdio, static buffers sized for
 * the largest message (the TypeScript side sends big transfers in chunks of at
 * most AGENT_MAX_PAYLOAD); written bytes go from the socket straight into the
 * workload region and read bytes straight from it into the socket.
 *
 * Lifetime. The agent exits when its connection closes (EOF or any socket
 * error), so it never outlives the node process that talks to it. The first
 * agent also asks for SIGKILL when its parent dies (PR_SET_PDEATHSIG). A fork
 * child does not: its parent is another agent, which the workload may end
 * before the child; the child still dies with the node process, because node's
 * end closes the child's connection too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif
#ifndef MADV_MERGEABLE
#define MADV_MERGEABLE 12
#endif
#ifndef MADV_UNMERGEABLE
#define MADV_UNMERGEABLE 13
#endif
#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif
#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif

/* Keep in step with src/backend/kernel/agent-protocol.ts. */
#define AGENT_MAX_PAYLOAD (1u << 20)
#define AGENT_REQUEST_HEADER_BYTES 32
#define AGENT_REPLY_HEADER_BYTES 16
#define AGENT_MAX_NAME_BYTES 255
#define AGENT_MAX_REGIONS 4096
#define AGENT_MAPS_BYTES (256u << 10)

enum agent_op {
	OP_MMAP = 1,	/* arg bit 0: MAP_SHARED, bit 1: MADV_HUGEPAGE (else NOHUGEPAGE), bit 2: MAP_HUGETLB */
	OP_MUNMAP = 2,
	OP_WRITE = 3,	/* payload: len bytes to store at addr */
	OP_READ = 4,	/* reply payload: len bytes from addr */
	OP_MADVISE = 5, /* arg: advice number */
	OP_MLOCK = 6,
	OP_PRCTL = 7,	/* arg: PR_SET_MEMORY_MERGE value, 0 or 1 */
	OP_FORK = 8,	/* payload: the child's name; value: the child's pid */
	OP_EXIT = 9,	/* replies, then _exit(0) */
	OP_GETPID = 10, /* value: pid */
	OP_FILL = 11,	/* payload: u32 hi, u32 lo, u32 lo_step; see op_fill */
};

#define MMAP_FLAG_SHARED 1u
#define MMAP_FLAG_THP 2u
#define MMAP_FLAG_HUGETLB 4u /* MAP_HUGETLB (default huge page size): no THP advice */

struct region {
	uintptr_t start;
	uintptr_t end;
};

/* Everything the agent ever needs is here, in .bss: nothing is allocated later. */
static unsigned char payload_buf[AGENT_MAX_PAYLOAD];
static char maps_buf[AGENT_MAPS_BYTES];
static struct region regions[AGENT_MAX_REGIONS];
static size_t region_count;
static struct sockaddr_un server_addr;
static int conn_fd = -1;

static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* A message for whoever reads our stderr, then exit; no stdio (it allocates). */
static void die(const char *what)
{
	const char *prefix = "ksmkit-agent: ";
	ssize_t ignored = write(2, prefix, strlen(prefix));
	ignored = write(2, what, strlen(what));
	ignored = write(2, "\n", 1);
	(void)ignored;
	_exit(2);
}

/* Reads exactly n bytes; any error or EOF ends the agent (its peer is gone). */
static void read_full(int fd, void *buf, size_t n)
{
	unsigned char *p = buf;
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			_exit(0);
		p += r;
		n -= (size_t)r;
	}
}

static void write_full(int fd, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	while (n > 0) {
		ssize_t r = write(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			_exit(0);
		p += r;
		n -= (size_t)r;
	}
}

static void reply(int err, int64_t value, const void *payload, uint32_t payload_len)
{
	unsigned char header[AGENT_REPLY_HEADER_BYTES];
	put_u32(header, payload_len);
	put_u32(header + 4, (uint32_t)err);
	put_u64(header + 8, (uint64_t)value);
	write_full(conn_fd, header, sizeof header);
	if (payload_len > 0)
		write_full(conn_fd, payload, payload_len);
}

static void connect_and_hello(const char *name, size_t name_len)
{
	conn_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (conn_fd < 0)
		die("socket() failed");
	if (connect(conn_fd, (const struct sockaddr *)&server_addr, sizeof server_addr) != 0)
		die("connect() failed");
	reply(0, (int64_t)getpid(), name, (uint32_t)name_len);
}

static void region_add(uintptr_t start, uintptr_t end)
{
	if (region_count < AGENT_MAX_REGIONS)
		regions[region_count++] = (struct region){ start, end };
}

static void region_remove(uintptr_t start, uintptr_t end)
{
	for (size_t i = 0; i < region_count; i++) {
		if (regions[i].start == start && regions[i].end == end) {
			regions[i] = regions[--region_count];
			return;
		}
	}
}

static int parse_hex(const char **pp, uintptr_t *out)
{
	const char *p = *pp;
	uintptr_t v = 0;
	int digits = 0;
	for (;; p++, digits++) {
		char c = *p;
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			break;
		v = (v << 4) | d;
	}
	*pp = p;
	*out = v;
	return digits > 0;
}

/* MADV_UNMERGEABLE on [start, end) minus every workload region. */
static void unmerge_outside_regions(uintptr_t start, uintptr_t end)
{
	uintptr_t cursor = start;
	while (cursor < end) {
		/* The workload region that starts first among those ending after cursor. */
		const struct region *next = NULL;
		for (size_t i = 0; i < region_count; i++) {
			const struct region *r = &regions[i];
			if (r->end > cursor && r->start < end && (next == NULL || r->start < next->start))
				next = r;
		}
		uintptr_t stop = next == NULL ? end : (next->start > cursor ? next->start : cursor);
		if (stop > cursor)
			/* Errors are expected and harmless: [vsyscall] is not in the mm. */
			(void)madvise((void *)cursor, stop - cursor, MADV_UNMERGEABLE);
		if (next == NULL)
			break;
		cursor = next->end;
	}
}

/*
 * Keeps the agent's own memory out of KSM's view after PR_SET_MEMORY_MERGE.
 * /proc/self/maps is read whole first: madvise splits and merges VMAs, which
 * would move the file's contents under a reader that interleaves the two.
 */
static int unmerge_own_mappings(void)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	size_t used = 0;
	for (;;) {
		if (used == sizeof maps_buf - 1) {
			close(fd);
			return ENOMEM;
		}
		ssize_t r = read(fd, maps_buf + used, sizeof maps_buf - 1 - used);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			return e;
		}
		if (r == 0)
			break;
		used += (size_t)r;
	}
	close(fd);
	maps_buf[used] = '\0';
	for (const char *line = maps_buf; *line != '\0';) {
		const char *p = line;
		uintptr_t start, end;
		if (parse_hex(&p, &start) && *p == '-' && (p++, parse_hex(&p, &end)) && end > start)
			unmerge_outside_regions(start, end);
		const char *nl = strchr(line, '\n');
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	return 0;
}

static void op_mmap(uint64_t addr, uint64_t len, uint64_t flags)
{
	int map_flags = MAP_ANONYMOUS | MAP_FIXED_NOREPLACE;
	map_flags |= (flags & MMAP_FLAG_SHARED) ? MAP_SHARED : MAP_PRIVATE;
	if (flags & MMAP_FLAG_HUGETLB)
		map_flags |= MAP_HUGETLB;
	void *want = (void *)(uintptr_t)addr;
	void *got = mmap(want, (size_t)len, PROT_READ | PROT_WRITE, map_flags, -1, 0);
	if (got == MAP_FAILED) {
		reply(errno, 0, NULL, 0);
		return;
	}
	if (got != want) {
		/* A kernel that ignores MAP_FIXED_NOREPLACE put it elsewhere. */
		munmap(got, (size_t)len);
		reply(EEXIST, 0, NULL, 0);
		return;
	}
	if (!(flags & MMAP_FLAG_HUGETLB) &&
	    madvise(got, (size_t)len, (flags & MMAP_FLAG_THP) ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0) {
		int e = errno;
		munmap(got, (size_t)len);
		reply(e, 0, NULL, 0);
		return;
	}
	region_add((uintptr_t)addr, (uintptr_t)(addr + len));
	reply(0, 0, NULL, 0);
}

/* The payload goes straight from the socket into the region: no copy, no buffer. */
static void op_write(uint64_t addr, uint32_t payload_len)
{
	unsigned char *dst = (unsigned char *)(uintptr_t)addr;
	uint32_t done = 0;
	int err = 0;
	while (done < payload_len) {
		ssize_t r = read(conn_fd, err ? payload_buf : dst + done, payload_len - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EFAULT && !err) {
			/* Bad address: keep the framing by draining the rest. */
			err = EFAULT;
			continue;
		}
		if (r <= 0)
			_exit(0);
		done += (uint32_t)r;
	}
	reply(err, 0, NULL, 0);
}

/*
 * Fills whole pages inside one workload region without sending their bytes:
 * page k of [addr, addr + len) becomes the 64-bit value (hi, lo + k * lo_step)
 * big-endian, repeated 512 times (the engine's fingerprint form of a page).
 * What the benchmark uses to build gigabytes of workload in a second.
 */
static void op_fill(uint64_t addr, uint64_t len, uint32_t payload_len)
{
	read_full(conn_fd, payload_buf, payload_len);
	if (payload_len != 12 || len % 4096 != 0) {
		reply(EINVAL, 0, NULL, 0);
		return;
	}
	int inside = 0;
	for (size_t i = 0; i < region_count; i++)
		if (addr >= regions[i].start && addr <= regions[i].end && len <= regions[i].end - addr)
			inside = 1;
	if (!inside) {
		reply(EFAULT, 0, NULL, 0);
		return;
	}
	uint32_t hi = get_u32(payload_buf);
	uint32_t lo = get_u32(payload_buf + 4);
	uint32_t step = get_u32(payload_buf + 8);
	uint64_t *page = (uint64_t *)(uintptr_t)addr;
	for (uint64_t k = 0; k < len / 4096; k++, lo += step) {
		unsigned char word[8];
		for (int b = 0; b < 4; b++) {
			word[b] = (unsigned char)(hi >> (24 - 8 * b));
			word[4 + b] = (unsigned char)(lo >> (24 - 8 * b));
		}
		uint64_t v;
		memcpy(&v, word, sizeof v);
		for (int w = 0; w < 512; w++)
			page[w] = v;
		page += 512;
	}
	reply(0, 0, NULL, 0);
}

/*
 * The bytes go from the region straight into the socket (a plain uaccess copy,
 * like a CPU read). Not process_vm_readv on ourselves: that pins the pages
 * (FOLL_PIN), and pinning a page that is not exclusive to this mm (a KSM page,
 * a page still shared with a fork parent) makes the kernel unshare it first
 * (gup_must_unshare), i.e. copy it: a read would undo merges and COW sharing.
 * The TypeScript side only reads inside regions it mapped; a bad address
 * would make the write fail with EFAULT mid-frame, and the agent then exits.
 */
static void op_read(uint64_t addr, uint64_t len)
{
	if (len > AGENT_MAX_PAYLOAD) {
		reply(EINVAL, 0, NULL, 0);
		return;
	}
	reply(0, 0, (const void *)(uintptr_t)addr, (uint32_t)len);
}

static void op_madvise(uint64_t addr, uint64_t len, uint64_t advice)
{
	switch (advice) {
	case MADV_MERGEABLE:
	case MADV_UNMERGEABLE:
	case MADV_HUGEPAGE:
	case MADV_NOHUGEPAGE:
	case MADV_DONTNEED:
		break;
	default:
		reply(EINVAL, 0, NULL, 0);
		return;
	}
	int r = madvise((void *)(uintptr_t)addr, (size_t)len, (int)advice);
	reply(r == 0 ? 0 : errno, 0, NULL, 0);
}

static void op_prctl(uint64_t value)
{
	if (prctl(PR_SET_MEMORY_MERGE, (unsigned long)value, 0UL, 0UL, 0UL) != 0) {
		reply(errno, 0, NULL, 0);
		return;
	}
	/*
	 * The prctl just marked the agent's own stack, heap, .bss and libc
	 * mappings VM_MERGEABLE. Undo that for everything but the workload's
	 * regions. (With value 0 the kernel already cleared every flag.)
	 */
	int err = value != 0 ? unmerge_own_mappings() : 0;
	reply(err, 0, NULL, 0);
}

static void op_fork(uint32_t payload_len)
{
	/* The child's name; read before forking so both sides stay in frame. */
	read_full(conn_fd, payload_buf, payload_len);
	if (payload_len == 0 || payload_len > AGENT_MAX_NAME_BYTES) {
		reply(EINVAL, 0, NULL, 0);
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		reply(errno, 0, NULL, 0);
		return;
	}
	if (pid == 0) {
		/* The parent's connection is the parent's: talk on a new one. */
		close(conn_fd);
		connect_and_hello((const char *)payload_buf, payload_len);
		return;
	}
	reply(0, (int64_t)pid, NULL, 0);
}

static void serve(void)
{
	unsigned char header[AGENT_REQUEST_HEADER_BYTES];
	for (;;) {
		read_full(conn_fd, header, sizeof header);
		uint32_t payload_len = get_u32(header);
		unsigned op = header[4];
		uint64_t addr = get_u64(header + 8);
		uint64_t len = get_u64(header + 16);
		uint64_t arg = get_u64(header + 24);
		if (payload_len > AGENT_MAX_PAYLOAD)
			die("request payload too large");
		if (op != OP_WRITE && op != OP_FORK && op != OP_FILL && payload_len > 0) {
			read_full(conn_fd, payload_buf, payload_len);
			reply(EINVAL, 0, NULL, 0);
			continue;
		}
		switch (op) {
		case OP_MMAP:
			op_mmap(addr, len, arg);
			break;
		case OP_MUNMAP:
			if (munmap((void *)(uintptr_t)addr, (size_t)len) == 0) {
				region_remove((uintptr_t)addr, (uintptr_t)(addr + len));
				reply(0, 0, NULL, 0);
			} else {
				reply(errno, 0, NULL, 0);
			}
			break;
		case OP_WRITE:
			if (len != payload_len) {
				read_full(conn_fd, payload_buf, payload_len);
				reply(EINVAL, 0, NULL, 0);
			} else {
				op_write(addr, payload_len);
			}
			break;
		case OP_READ:
			op_read(addr, len);
			break;
		case OP_MADVISE:
			op_madvise(addr, len, arg);
			break;
		case OP_MLOCK:
			reply(mlock((void *)(uintptr_t)addr, (size_t)len) == 0 ? 0 : errno, 0, NULL, 0);
			break;
		case OP_PRCTL:
			op_prctl(arg);
			break;
		case OP_FORK:
			op_fork(payload_len);
			break;
		case OP_EXIT:
			reply(0, 0, NULL, 0);
			_exit(0);
		case OP_GETPID:
			reply(0, (int64_t)getpid(), NULL, 0);
			break;
		case OP_FILL:
			op_fill(addr, len, payload_len);
			break;
		default:
			reply(EINVAL, 0, NULL, 0);
			break;
		}
	}
}

int main(int argc, char **argv)
{
	if (argc != 3)
		die("usage: ksmkit-agent SOCKET_PATH NAME");
	const char *parent = getenv("KSMKIT_PARENT_PID");
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0UL, 0UL, 0UL) != 0)
		die("prctl(PR_SET_PDEATHSIG) failed");
	if (parent != NULL && (pid_t)strtol(parent, NULL, 10) != getppid())
		_exit(0); /* the node process died before the line above took effect */
	/* Fork children exit without being waited for; a dead peer is an EPIPE, not a signal. */
	signal(SIGCHLD, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	size_t path_len = strlen(argv[1]);
	size_t name_len = strlen(argv[2]);
	if (path_len >= sizeof server_addr.sun_path)
		die("socket path too long");
	if (name_len == 0 || name_len > AGENT_MAX_NAME_BYTES)
		die("bad process name");
	server_addr.sun_family = AF_UNIX;
	memcpy(server_addr.sun_path, argv[1], path_len + 1);
	connect_and_hello(argv[2], name_len);
	serve();
	return 0;
}
