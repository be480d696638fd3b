/* SPDX-License-Identifier: MIT */
/*
 * firstline: run a VMM with the guest's console on a pipe, and report how
 * long after the VMM's exec the guest's first byte, or the first
 * occurrence of a pattern, came out of it. Optionally sample the VMM
 * process's own memory from /proc/PID/smaps while the guest goes on, with
 * the guest RAM mapping left out. Then kill the VMM.
 *
 * usage: firstline [-p PATTERN] [-t SECONDS] [-o LOG] [-e ERRLOG]
 *                  [-m SECONDS] [-x PATH_PART | -X BYTES] [-s SMAPS] [-k]
 *                  -- CMD [ARG...]
 *   -p  what to wait for (default: the first byte)
 *   -t  give up after this long (default 60)
 *   -o  copy of everything CMD wrote to stdout (the guest console)
 *   -e  where CMD's stderr goes (default /dev/null)
 *   -m  after the pattern, sample memory every 250 ms for this long
 *   -x  guest RAM is every mapping whose path contains PATH_PART
 *   -X  guest RAM is the one anonymous mapping of exactly BYTES
 *   -s  where to save the smaps text of the sample reported
 *   -k  end CMD with SIGTERM (SIGKILL after 10 s), so that it can say
 *       what it says when stopped (vmm-run --stats); default SIGKILL
 *
 * Prints one line of key=value pairs on stdout:
 *   status=ok first_ms=...            the pattern came
 *   status=timeout waited_ms=...      it did not within -t
 *   status=exited code=N first_ms=-   CMD ended before it
 *   status=error what=...             CMD could not be run
 * and with -m: mem=ok mem_at=line|timeout rss_kib= pss_kib= ram_rss_kib=
 * ram_maps= total_rss_kib= (the sample with the largest rss_kib; on a
 * timeout, one sample taken then), or mem=failed. Exit 0 when everything
 * asked for was measured, 1 otherwise, 2 on bad usage.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FIRSTLINE_PATTERN_MAX	256
#define FIRSTLINE_SAMPLE_NS	250000000ULL
#define FIRSTLINE_TERM_NS	10000000000ULL

struct firstline_opts {
	const char *pattern;
	double timeout_s;
	const char *log_path;
	const char *err_path;
	double mem_s;
	const char *ram_path_part;
	unsigned long long ram_bytes;
	const char *smaps_path;
	bool term;		/* -k: end CMD with SIGTERM, not SIGKILL */
};

/* What the child leaves for the parent: the time of its exec, or errno. */
struct firstline_shared {
	uint64_t exec_ns;
	int exec_errno;
};

struct firstline_mem {
	unsigned long long rss_kib;	/* beyond guest RAM */
	unsigned long long pss_kib;
	unsigned long long ram_rss_kib;	/* the guest RAM mapping(s) */
	unsigned long long total_rss_kib;
	unsigned int ram_maps;
	char *smaps;			/* the text this was read from */
	size_t smaps_len;
};

static volatile sig_atomic_t firstline_stop;

static void
firstline_on_signal(int sig)
{
	firstline_stop = sig;
}

static uint64_t
firstline_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void
firstline_usage(void)
{
	fprintf(stderr,
		"usage: firstline [-p PATTERN] [-t SECONDS] [-o LOG] [-e ERRLOG]\n"
		"                 [-m SECONDS] [-x PATH_PART | -X BYTES] "
		"[-s SMAPS] [-k]\n"
		"                 -- CMD [ARG...]\n");
}

/* A smaps header line: "start-end perms offset dev inode [path]". */
static bool
firstline_smaps_header(const char *line, unsigned long long *ret_kib,
		       const char **ret_path)
{
	unsigned long long start, end;
	int path_at = 0;

	if (!isxdigit((unsigned char)line[0]) || isupper((unsigned char)line[0]))
		return false;
	if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %n", &start, &end,
		   &path_at) < 2 || path_at == 0)
		return false;
	*ret_kib = (end - start) >> 10;
	*ret_path = line + path_at;
	return true;
}

/* The whole of a /proc file, NUL-terminated, in a new buffer; or NULL. */
static char *
firstline_slurp(const char *path, size_t *ret_len)
{
	size_t len = 0, cap = 0, n;
	char *buf = NULL, *nb;
	FILE *f;

	f = fopen(path, "re");
	if (!f)
		return NULL;
	do {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 65536;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	*ret_len = len;
	return buf;
}

/*
 * Sum Rss and Pss of every mapping of pid except guest RAM. 0, or -1 when
 * smaps cannot be read or no guest RAM mapping was recognised. On success
 * ret->smaps is the smaps text read (the caller frees it).
 */
static int
firstline_mem_read(pid_t pid, const struct firstline_opts *o,
		   struct firstline_mem *ret)
{
	struct firstline_mem m = { 0 };
	char path[64], *line, *save = NULL;
	bool is_ram = false;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	m.smaps = firstline_slurp(path, &m.smaps_len);
	if (!m.smaps)
		return -1;
	/* Parse a copy: strtok_r cuts the text it walks. */
	line = strndup(m.smaps, m.smaps_len);
	if (!line) {
		free(m.smaps);
		return -1;
	}
	for (char *l = strtok_r(line, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		unsigned long long kib, v;
		const char *p;

		if (firstline_smaps_header(l, &kib, &p)) {
			size_t pl = strlen(p);

			while (pl && p[pl - 1] == ' ')
				pl--;
			if (o->ram_path_part)
				is_ram = pl && strstr(p, o->ram_path_part);
			else
				is_ram = pl == 0 && kib << 10 == o->ram_bytes;
			if (is_ram)
				m.ram_maps++;
			continue;
		}
		if (sscanf(l, "Rss: %llu kB", &v) == 1) {
			m.total_rss_kib += v;
			if (is_ram)
				m.ram_rss_kib += v;
			else
				m.rss_kib += v;
		} else if (sscanf(l, "Pss: %llu kB", &v) == 1 && !is_ram) {
			m.pss_kib += v;
		}
	}
	free(line);
	if (m.ram_maps == 0 || (!o->ram_path_part && m.ram_maps != 1)) {
		free(m.smaps);
		return -1;
	}
	*ret = m;
	return 0;
}

/* Write all of buf to fd (the console log); errors only lose the copy. */
static void
firstline_copy(int fd, const char *buf, size_t len)
{
	while (fd >= 0 && len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static pid_t
firstline_spawn(char **argv, const struct firstline_opts *o, int out_fd,
		volatile struct firstline_shared *sh)
{
	pid_t pid = fork();
	int fd;

	if (pid != 0)
		return pid;
	/* The VM must not outlive us, whatever happens to us. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0)
		dup2(fd, STDIN_FILENO);
	dup2(out_fd, STDOUT_FILENO);
	fd = open(o->err_path ? o->err_path : "/dev/null",
		  O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0)
		dup2(fd, STDERR_FILENO);
	sh->exec_ns = firstline_now_ns();
	execvp(argv[0], argv);
	sh->exec_errno = errno;
	_exit(127);
}

/* SIGKILL: nothing of a VM stopped mid-boot is worth a clean exit. */
static void
firstline_kill(pid_t pid)
{
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/*
 * -k: SIGTERM, so that the VMM ends the way its user would end it and
 * prints what it prints then (vmm-run --stats: KVM's counters, read at
 * the line). SIGKILL if it is not gone within FIRSTLINE_TERM_NS.
 */
static void
firstline_term(pid_t pid)
{
	uint64_t end = firstline_now_ns() + FIRSTLINE_TERM_NS;

	kill(pid, SIGTERM);
	while (firstline_now_ns() < end) {
		pid_t r = waitpid(pid, NULL, WNOHANG);

		if (r == pid || (r < 0 && errno != EINTR))
			return;
		usleep(20000);
	}
	firstline_kill(pid);
}

int
main(int argc, char **argv)
{
	struct firstline_opts o = { .pattern = "", .timeout_s = 60 };
	volatile struct firstline_shared *sh;
	struct firstline_mem mem = { 0 }, sample;
	char buf[65536], tail[2 * FIRSTLINE_PATTERN_MAX];
	size_t plen, tail_len = 0;
	uint64_t deadline, found_ns = 0, mem_end = 0, next_sample = 0, now;
	bool found = false, eof = false, mem_ok = false;
	int pipefd[2], log_fd = -1, c, status = 0;
	struct sigaction sa;
	pid_t pid;

	while ((c = getopt(argc, argv, "+p:t:o:e:m:x:X:s:k")) != -1) {
		switch (c) {
		case 'p': o.pattern = optarg; break;
		case 't': o.timeout_s = atof(optarg); break;
		case 'o': o.log_path = optarg; break;
		case 'e': o.err_path = optarg; break;
		case 'm': o.mem_s = atof(optarg); break;
		case 'x': o.ram_path_part = optarg; break;
		case 'X': o.ram_bytes = strtoull(optarg, NULL, 0); break;
		case 's': o.smaps_path = optarg; break;
		case 'k': o.term = true; break;
		default: firstline_usage(); return 2;
		}
	}
	plen = strlen(o.pattern);
	if (optind >= argc || plen > FIRSTLINE_PATTERN_MAX ||
	    o.timeout_s <= 0 ||
	    (o.mem_s > 0 && !o.ram_path_part && !o.ram_bytes)) {
		firstline_usage();
		return 2;
	}
	if (o.log_path) {
		log_fd = open(o.log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			      0644);
		if (log_fd < 0) {
			fprintf(stderr, "firstline: %s: %s\n", o.log_path,
				strerror(errno));
			return 1;
		}
	}
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED || pipe2(pipefd, O_CLOEXEC) < 0) {
		printf("status=error what=setup:%s\n", strerror(errno));
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = firstline_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* If the script that runs us dies, we still stop our VM. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);

	/* The child's stdout is a dup of the write end (no O_CLOEXEC). */
	pid = firstline_spawn(argv + optind, &o, pipefd[1], sh);
	if (pid < 0) {
		printf("status=error what=fork:%s\n", strerror(errno));
		return 1;
	}
	close(pipefd[1]);
	deadline = firstline_now_ns() + (uint64_t)(o.timeout_s * 1e9);

	while (!firstline_stop) {
		struct pollfd pfd = { .fd = pipefd[0], .events = POLLIN };
		uint64_t until = found ? mem_end : deadline;
		int wait_ms;
		ssize_t n;

		now = firstline_now_ns();
		if (found && o.mem_s > 0 && now >= next_sample) {
			if (firstline_mem_read(pid, &o, &sample) == 0) {
				if (!mem_ok || sample.rss_kib > mem.rss_kib) {
					free(mem.smaps);
					mem = sample;
				} else {
					free(sample.smaps);
				}
				mem_ok = true;
			}
			next_sample = now + FIRSTLINE_SAMPLE_NS;
		}
		if (now >= until)
			break;
		if (found && next_sample < until)
			until = next_sample;
		wait_ms = (int)((until - now + 999999) / 1000000);
		if (eof) {
			/* Nothing more to read; just let the time pass. */
			usleep((useconds_t)wait_ms * 1000);
			continue;
		}
		if (poll(&pfd, 1, wait_ms) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (!pfd.revents)
			continue;
		n = read(pipefd[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			eof = true;
			if (!found)
				break;
			continue;
		}
		now = firstline_now_ns();
		firstline_copy(log_fd, buf, (size_t)n);
		if (found)
			continue;
		if (plen == 0) {
			found = true;
		} else {
			/* Match across reads: the last plen - 1 bytes of what
			 * came before, then this read. */
			size_t keep = plen - 1, off = 0;

			while (off < (size_t)n && !found) {
				size_t take = sizeof(tail) - tail_len;

				if (take > (size_t)n - off)
					take = (size_t)n - off;
				memcpy(tail + tail_len, buf + off, take);
				tail_len += take;
				off += take;
				if (memmem(tail, tail_len, o.pattern, plen))
					found = true;
				else if (tail_len > keep) {
					memmove(tail, tail + tail_len - keep,
						keep);
					tail_len = keep;
				}
			}
		}
		if (found) {
			found_ns = now;
			mem_end = now + (uint64_t)(o.mem_s * 1e9);
			next_sample = now;
			if (o.mem_s <= 0)
				break;
		}
	}

	if (sh->exec_errno) {
		firstline_kill(pid);
		printf("status=error what=exec:%s:%s\n", argv[optind],
		       strerror(sh->exec_errno));
		return 1;
	}
	if (firstline_stop) {
		firstline_kill(pid);
		printf("status=error what=signal:%d\n", (int)firstline_stop);
		return 1;
	}
	if (found) {
		printf("status=ok first_ms=%.3f", (double)(found_ns - sh->exec_ns)
		       / 1e6);
	} else if (eof) {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		printf("status=exited code=%d first_ms=-",
		       WIFEXITED(status) ? WEXITSTATUS(status) :
					   128 + WTERMSIG(status));
		pid = 0;
	} else {
		printf("status=timeout waited_ms=%.0f first_ms=-",
		       (double)(firstline_now_ns() - sh->exec_ns) / 1e6);
		/* Still booting: its memory is worth knowing all the same. */
		if (o.mem_s > 0 && firstline_mem_read(pid, &o, &mem) == 0)
			mem_ok = true;
	}
	if (o.mem_s > 0) {
		if (mem_ok)
			printf(" mem=ok mem_at=%s rss_kib=%llu pss_kib=%llu "
			       "ram_rss_kib=%llu ram_maps=%u total_rss_kib=%llu",
			       found ? "line" : "timeout", mem.rss_kib,
			       mem.pss_kib, mem.ram_rss_kib, mem.ram_maps,
			       mem.total_rss_kib);
		else
			printf(" mem=failed");
	}
	printf("\n");
	fflush(stdout);
	if (mem_ok && o.smaps_path) {
		int fd = open(o.smaps_path, O_WRONLY | O_CREAT | O_TRUNC |
			      O_CLOEXEC, 0644);

		firstline_copy(fd, mem.smaps, mem.smaps_len);
		if (fd >= 0)
			close(fd);
	}
	free(mem.smaps);
	if (pid > 0 && o.term)
		firstline_term(pid);
	else if (pid > 0)
		firstline_kill(pid);
	if (log_fd >= 0)
		close(log_fd);
	return found && (o.mem_s <= 0 || mem_ok) ? 0 : 1;
}
