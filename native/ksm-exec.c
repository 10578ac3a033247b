/*
 * ksmkit-exec: run a command with KSM enabled for it and its descendants.
 *
 * Usage: ksmkit-exec CMD [ARGS...]
 *
 * prctl(PR_SET_MEMORY_MERGE, 1) sets MMF_VM_MERGE_ANY on this process's mm
 * and marks its VMAs mergeable; the flag is inherited across fork and (since
 * Linux 6.7) across exec, so the command, and everything it starts, has all of
 * its anonymous memory scanned by ksmd. The prctl must be made by the process
 * that then execs the command, hence this helper: `ksmkit exec` (Node) spawns
 * it with stdio inherited and forwards signals; its exit status is the
 * command's. The call needs no privilege (kernel/sys.c); ksmd only merges
 * while /sys/kernel/mm/ksm/run is 1.
 *
 * Exit status when the command does not start (the command's own otherwise):
 *   64  usage: no command given                       (EX_USAGE)
 *   69  no KSM in this kernel / kernel too old (EINVAL) (EX_UNAVAILABLE)
 *   71  prctl failed for another reason                 (EX_OSERR)
 *   77  not permitted (EPERM/EACCES: seccomp, LSM)      (EX_NOPERM)
 *   126 the command was found but could not be executed
 *   127 command not found
 * Keep in step with src/tools/exec/exec.ts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif

#define EXIT_USAGE 64
#define EXIT_NO_KSM 69
#define EXIT_PRCTL_FAILED 71
#define EXIT_NO_PERMISSION 77
#define EXIT_CANNOT_EXECUTE 126
#define EXIT_NOT_FOUND 127

static const char KSM_DIR[] = "/sys/kernel/mm/ksm";

/* Whether a file called `name` exists in a directory of $PATH (as execvp searches it). */
static int found_in_path(const char *name)
{
	const char *path = getenv("PATH");
	if (path == NULL)
		path = "/bin:/usr/bin";
	size_t name_len = strlen(name);
	for (const char *p = path;; p++) {
		const char *end = strchr(p, ':');
		size_t dir_len = end == NULL ? strlen(p) : (size_t)(end - p);
		char candidate[PATH_MAX];
		if (dir_len + 1 + name_len < sizeof(candidate)) {
			if (dir_len == 0)
				memcpy(candidate, ".", 2);
			else {
				memcpy(candidate, p, dir_len);
				candidate[dir_len] = '\0';
			}
			strcat(candidate, "/");
			strcat(candidate, name);
			struct stat st;
			if (stat(candidate, &st) == 0 && !S_ISDIR(st.st_mode))
				return 1;
		}
		if (end == NULL)
			return 0;
		p = end;
	}
}

int main(int argc, char **argv)
{
	if (argc < 2 || argv[1][0] == '\0') {
		fprintf(stderr, "usage: ksmkit-exec CMD [ARGS...]\n");
		return EXIT_USAGE;
	}

	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) != 0) {
		int e = errno;
		if (e == EINVAL) {
			if (access(KSM_DIR, F_OK) != 0)
				fprintf(stderr,
					"ksmkit exec: no KSM in this kernel (%s does not exist: "
					"built without CONFIG_KSM)\n",
					KSM_DIR);
			else
				fprintf(stderr,
					"ksmkit exec: this kernel does not support "
					"prctl(PR_SET_MEMORY_MERGE) (it needs Linux 6.4 or later)\n");
			return EXIT_NO_KSM;
		}
		if (e == EPERM || e == EACCES) {
			fprintf(stderr,
				"ksmkit exec: not permitted to enable KSM for this process "
				"(prctl(PR_SET_MEMORY_MERGE): %s; a seccomp filter or security module "
				"forbids it)\n",
				strerror(e));
			return EXIT_NO_PERMISSION;
		}
		fprintf(stderr, "ksmkit exec: prctl(PR_SET_MEMORY_MERGE) failed: %s\n", strerror(e));
		return EXIT_PRCTL_FAILED;
	}

	execvp(argv[1], argv + 1);

	int e = errno;
	/*
	 * execvp reports EACCES when a PATH directory could not be searched even if
	 * the command is nowhere: like a shell, call that "not found".
	 */
	if (e == EACCES && strchr(argv[1], '/') == NULL && !found_in_path(argv[1]))
		e = ENOENT;
	if (e == ENOENT) {
		if (strchr(argv[1], '/') != NULL && access(argv[1], F_OK) == 0) {
			fprintf(stderr,
				"ksmkit exec: %s: cannot execute: its interpreter (#! line) or "
				"loader does not exist\n",
				argv[1]);
			return EXIT_CANNOT_EXECUTE;
		}
		if (strchr(argv[1], '/') != NULL)
			fprintf(stderr, "ksmkit exec: %s: no such file\n", argv[1]);
		else
			fprintf(stderr, "ksmkit exec: %s: command not found\n", argv[1]);
		return EXIT_NOT_FOUND;
	}
	fprintf(stderr, "ksmkit exec: %s: cannot execute: %s\n", argv[1], strerror(e));
	return EXIT_CANNOT_EXECUTE;
}
