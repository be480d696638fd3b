/* SPDX-License-Identifier: MIT */
/* Spawning, watching and reattaching vmm-run processes (supervise.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "proto/size.h"
#include "vmmd/daemon.h"
#include "vmmd/limits.h"
#include "vmmd/log.h"
#include "vmmd/supervise.h"
#include "vmmd/store.h"
#include "vmmd/vmmrun.h"

/* How often a starting VM's control socket is looked for. */
#define SUPERVISE_PROBE_MS	50
/* How often a process without a pidfd is checked for. */
#define SUPERVISE_POLL_MS	500
/* Bytes of a log read for its last line or its exit reason. */
#define SUPERVISE_TAIL		4096

static void supervise_exited(struct vm *vm, bool known, int wstatus);
static void supervise_start_tick(evutil_socket_t fd, short what, void *arg);

/* --- paths and argv ------------------------------------------------------- */

int
supervise_paths(const char *runtime_dir, const char *name,
		struct vm_paths *ret)
{
	struct vm_paths p;
	int n;

	memset(&p, 0, sizeof(p));
	n = snprintf(p.dir, sizeof(p.dir), "%s/vms/%s", runtime_dir, name);
	if (n < 0 || (size_t)n >= sizeof(p.dir) - 16)
		return -ENAMETOOLONG;
#define SOCK(field, file)						\
	n = snprintf(p.field, sizeof(p.field), "%s/" file, p.dir);	\
	if (n < 0 || (size_t)n >= sizeof(p.field))			\
		return -ENAMETOOLONG;
	SOCK(control, "control.sock")
	SOCK(console, "console.sock")
	SOCK(vsock, "vsock.sock")
#undef SOCK
	/* p.dir leaves room for these (checked above). */
	if (snprintf(p.hvc0, sizeof(p.hvc0), "%s/hvc0.log", p.dir) < 0 ||
	    snprintf(p.log, sizeof(p.log), "%s/vmm-run.log", p.dir) < 0 ||
	    snprintf(p.log_old, sizeof(p.log_old), "%s/vmm-run.log.1",
		     p.dir) < 0 ||
	    snprintf(p.pid, sizeof(p.pid), "%s/pid", p.dir) < 0)
		return -ENAMETOOLONG;
	*ret = p;
	return 0;
}

size_t
supervise_console_ring(const struct vmdef *def)
{
	uint64_t h = (def->console_history + 1023) / 1024 * 1024;

	if (h < 4096)
		h = 4096;
	if (h > (16u << 20))
		h = 16u << 20;
	return (size_t)h;
}

struct argv_buf {
	char **v;
	size_t n, cap;
	int err;
};

static void
argv_add(struct argv_buf *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
argv_add(struct argv_buf *a, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (a->err)
		return;
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 32;
		char **v = realloc(a->v, cap * sizeof(*v));

		if (!v) {
			a->err = -ENOMEM;
			return;
		}
		a->v = v;
		a->cap = cap;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0) {
		a->err = -ENOMEM;
		va_end(ap);
		return;
	}
	va_end(ap);
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

/* vmm-run's option values are comma-separated lists. */
static int
argv_no_comma(const char *what, const char *s, char *err, size_t errlen)
{
	if (s && strchr(s, ',')) {
		snprintf(err, errlen, "%s: contains a comma, which vmm-run's "
			 "option syntax cannot carry", what);
		return -EINVAL;
	}
	return 0;
}

int
supervise_argv(const char *vmm_run, const struct vmdef *def,
	       const struct vm_paths *p, char ***ret, char *err,
	       size_t errlen)
{
	struct argv_buf a = { 0 };
	unsigned int i;
	int r;

	for (i = 0; i < def->nr_disks; i++) {
		char what[48];

		snprintf(what, sizeof(what), "disks[%u].path", i);
		r = argv_no_comma(what, def->disks[i].path, err, errlen);
		if (r < 0)
			return r;
		snprintf(what, sizeof(what), "disks[%u].serial", i);
		r = argv_no_comma(what, def->disks[i].serial, err, errlen);
		if (r < 0)
			return r;
	}
	for (i = 0; i < def->nr_nics; i++) {
		char what[48];

		snprintf(what, sizeof(what), "nics[%u].tap", i);
		r = argv_no_comma(what, def->nics[i].tap, err, errlen);
		if (r < 0)
			return r;
	}
	if ((r = argv_no_comma("runtime_dir", p->dir, err, errlen)) < 0)
		return r;

	argv_add(&a, "%s", vmm_run);
	argv_add(&a, "--name");
	argv_add(&a, "%s", def->name);
	argv_add(&a, "--control");
	argv_add(&a, "%s", p->control);
	argv_add(&a, "--console");
	argv_add(&a, "none");
	argv_add(&a, "--console-socket");
	argv_add(&a, "%s,history=%zuK", p->console,
		 supervise_console_ring(def) / 1024);
	if (def->firmware) {
		argv_add(&a, "--firmware");
		argv_add(&a, "%s", def->firmware);
	} else {
		argv_add(&a, "--kernel");
		argv_add(&a, "%s", def->kernel ? def->kernel : "");
		if (def->initrd) {
			argv_add(&a, "--initrd");
			argv_add(&a, "%s", def->initrd);
		}
		if (def->cmdline) {
			argv_add(&a, "--cmdline");
			argv_add(&a, "%s", def->cmdline);
		}
	}
	argv_add(&a, "--cpus");
	argv_add(&a, "%u", def->vcpus);
	/* vmm-run reads a bare number as MiB: always give the unit. */
	argv_add(&a, "--memory");
	argv_add(&a, "%lluM", (unsigned long long)(def->memory >> 20));
	for (i = 0; i < def->nr_disks; i++) {
		const struct vmdef_disk *dk = &def->disks[i];

		char lim[128] = "";
		const struct vmdef_disk_limits *l = &dk->limits;

		/* I/O limits: vmm-run's token buckets (0: none). */
		if (l->bytes.rate || l->ops.rate)
			snprintf(lim, sizeof(lim),
				 ",bps=%llu,bps_burst=%llu,iops=%llu,iops_burst=%llu",
				 (unsigned long long)l->bytes.rate,
				 (unsigned long long)l->bytes.burst,
				 (unsigned long long)l->ops.rate,
				 (unsigned long long)l->ops.burst);
		argv_add(&a, "--disk");
		argv_add(&a, "%s%s%s%s%s%s", dk->path,
			 dk->readonly ? ",ro" : "",
			 dk->serial[0] ? ",serial=" : "", dk->serial,
			 dk->direct ? ",direct" : "", lim);
	}
	for (i = 0; i < def->nr_nics; i++) {
		const struct vmdef_nic *nic = &def->nics[i];
		char mac[18] = "";

		if (nic->has_mac)
			vmdef_mac_format(nic->mac, mac);
		const struct vmdef_nic_limits *l = &nic->limits;
		char lim[256] = "";

		/* Rate limits: vmm-run's token buckets (0: none). */
		if (l->rx_bytes.rate || l->rx_packets.rate ||
		    l->tx_bytes.rate || l->tx_packets.rate)
			snprintf(lim, sizeof(lim),
				 ",rx_bps=%llu,rx_bps_burst=%llu,rx_pps=%llu,"
				 "rx_pps_burst=%llu,tx_bps=%llu,tx_bps_burst=%llu,"
				 "tx_pps=%llu,tx_pps_burst=%llu",
				 (unsigned long long)l->rx_bytes.rate,
				 (unsigned long long)l->rx_bytes.burst,
				 (unsigned long long)l->rx_packets.rate,
				 (unsigned long long)l->rx_packets.burst,
				 (unsigned long long)l->tx_bytes.rate,
				 (unsigned long long)l->tx_bytes.burst,
				 (unsigned long long)l->tx_packets.rate,
				 (unsigned long long)l->tx_packets.burst);
		argv_add(&a, "--net");
		argv_add(&a, "tap=%s%s%s%s", nic->tap,
			 nic->has_mac ? ",mac=" : "", mac, lim);
	}
	if (def->has_vsock) {
		argv_add(&a, "--vsock");
		argv_add(&a, "cid=%u,uds=%s", def->vsock_cid, p->vsock);
	}
	if (def->balloon)
		argv_add(&a, "--balloon");
	if (def->virtio_console) {
		argv_add(&a, "--virtio-console");
		argv_add(&a, "file:%s", p->hvc0);
	}
	if (a.err) {
		supervise_argv_free(a.v);
		return a.err;
	}
	*ret = a.v;
	return 0;
}

void
supervise_argv_free(char **argv)
{
	char **p;

	if (!argv)
		return;
	for (p = argv; *p; p++)
		free(*p);
	free(argv);
}

/* --- small helpers -------------------------------------------------------- */

static const char *
sub_of(const struct vm *vm, char *buf, size_t len)
{
	return vm_log_name(vm, buf, len);
}

char *
supervise_log_tail(const char *path, char *buf, size_t len)
{
	char tail[SUPERVISE_TAIL + 1];
	ssize_t n;
	off_t size;
	char *end, *start;
	size_t i;
	int fd;

	if (!len)
		return buf;
	buf[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return buf;
	size = lseek(fd, 0, SEEK_END);
	if (size < 0)
		size = 0;
	n = pread(fd, tail, SUPERVISE_TAIL,
		  size > SUPERVISE_TAIL ? size - SUPERVISE_TAIL : 0);
	close(fd);
	if (n <= 0)
		return buf;
	tail[n] = '\0';
	end = tail + n;
	while (end > tail && (end[-1] == '\n' || end[-1] == '\r' ||
			      end[-1] == ' '))
		end--;
	*end = '\0';
	start = strrchr(tail, '\n');
	start = start ? start + 1 : tail;
	for (i = 0; start[i] && i + 1 < len; i++) {
		unsigned char c = (unsigned char)start[i];

		buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	buf[i] = '\0';
	return buf;
}

/* Write a small file atomically (temporary file, rename). */
static int
write_small_file(const char *path, const char *text)
{
	char tmp[PATH_MAX + 8];
	size_t len = strlen(text);
	int fd, r = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len)
		r = errno ? -errno : -EIO;
	if (close(fd) < 0 && !r)
		r = -errno;
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r)
		unlink(tmp);
	return r;
}

static int
pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}

static int
pidfd_kill(int pidfd, pid_t pid, int sig)
{
#ifdef SYS_pidfd_send_signal
	if (pidfd >= 0) {
		if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) == 0)
			return 0;
		if (errno != ENOSYS)
			return -errno;
	}
#else
	(void)pidfd;
#endif
	return kill(pid, sig) == 0 ? 0 : -errno;
}

/* Read /proc/PID/cmdline into buf; returns its length or -errno. */
static ssize_t
proc_cmdline(pid_t pid, char *buf, size_t len)
{
	char path[64];
	ssize_t n, total = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while ((size_t)total < len - 1 &&
	       (n = read(fd, buf + total, len - 1 - (size_t)total)) > 0)
		total += n;
	close(fd);
	buf[total] = '\0';
	return total;
}

int
supervise_proc_is_vm(pid_t pid, const char *name, size_t *ring)
{
	char buf[16384];
	const char *argv[512];
	size_t argc = 0, i;
	ssize_t n;
	const char *base;
	bool named = false;

	if (ring)
		*ring = 0;
	if (pid <= 0)
		return 0;
	n = proc_cmdline(pid, buf, sizeof(buf));
	if (n < 0)
		return n == -ENOENT || n == -ESRCH ? 0 : (int)n;
	for (i = 0; i < (size_t)n && argc < 512;) {
		argv[argc++] = buf + i;
		i += strlen(buf + i) + 1;
	}
	if (!argc)
		return 0;
	base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	if (strcmp(base, "vmm-run") != 0)
		return 0;
	for (i = 1; i + 1 < argc; i++) {
		if (strcmp(argv[i], "--name") == 0 &&
		    strcmp(argv[i + 1], name) == 0)
			named = true;
		/* vmm-run cuts "PATH,history=SIZE" at the comma in place. */
		if (ring && strcmp(argv[i], "--console-socket") == 0 &&
		    i + 2 < argc && strncmp(argv[i + 2], "history=", 8) == 0) {
			uint64_t h;

			if (size_parse(argv[i + 2] + 8, &h) == 0)
				*ring = (size_t)h;
		}
	}
	return named;
}

/* When a process started: CLOCK_REALTIME and CLOCK_MONOTONIC (ms). */
static void
proc_start_time(pid_t pid, struct timespec *ret_rt, uint64_t *ret_ms)
{
	char path[64], buf[1024];
	unsigned long long start_ticks = 0;
	double uptime = 0;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f;
	char *p;
	int i;

	clock_gettime(CLOCK_REALTIME, ret_rt);
	*ret_ms = vm_now_ms();
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return;
	}
	fclose(f);
	/* Fields after the command (which may hold spaces and parens):
	 * the first is field 3 (state), starttime is field 22. */
	p = strrchr(buf, ')');
	if (!p)
		return;
	{
		char *tok, *save = NULL;

		for (i = 3, tok = strtok_r(p + 1, " ", &save); tok;
		     i++, tok = strtok_r(NULL, " ", &save))
			if (i == 22) {
				start_ticks = strtoull(tok, NULL, 10);
				break;
			}
	}
	f = fopen("/proc/uptime", "re");
	if (!f)
		return;
	if (fscanf(f, "%lf", &uptime) != 1)
		uptime = 0;
	fclose(f);
	if (hz <= 0 || !uptime || !start_ticks)
		return;
	{
		double age = uptime - (double)start_ticks / (double)hz;
		uint64_t age_ms = age > 0 ? (uint64_t)(age * 1000) : 0;

		if (age_ms > *ret_ms)
			age_ms = *ret_ms;
		*ret_ms -= age_ms;
		ret_rt->tv_sec -= (time_t)(age_ms / 1000);
	}
}

/* --- watching the process ------------------------------------------------- */

static void
supervise_pidfd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vm *vm = arg;
	int st;
	pid_t r;

	(void)fd;
	(void)what;
	if (vm->pid <= 0)
		return;
	if (vm->child) {
		r = waitpid(vm->pid, &st, WNOHANG);
		if (r == vm->pid) {
			supervise_exited(vm, true, st);
			return;
		}
		if (r == 0 && vm->pidfd < 0) {
			/* The polling fallback: still there. */
			return;
		}
		if (r == 0) {
			/* A pidfd is readable once the process exited; the
			 * zombie shows up for waitpid() right after. */
			event_add(vm->exit_ev, &(struct timeval){ 0, 10000 });
			return;
		}
		supervise_exited(vm, false, 0);
		return;
	}
	if (vm->pidfd < 0 && kill(vm->pid, 0) == 0)
		return;
	supervise_exited(vm, false, 0);
}

static int
supervise_watch(struct vm *vm)
{
	struct event_base *base = vm->d->base;

	vm->pidfd = pidfd_open_(vm->pid);
	if (vm->pidfd >= 0) {
		fcntl(vm->pidfd, F_SETFD, FD_CLOEXEC);
		vm->exit_ev = event_new(base, vm->pidfd, EV_READ,
					supervise_pidfd_cb, vm);
		if (!vm->exit_ev)
			return -ENOMEM;
		return event_add(vm->exit_ev, NULL) < 0 ? -EIO : 0;
	}
	/* No pidfd (Linux before 5.3): children come with SIGCHLD, others
	 * are looked for twice a second. */
	vm->exit_ev = event_new(base, -1, EV_PERSIST, supervise_pidfd_cb, vm);
	if (!vm->exit_ev)
		return -ENOMEM;
	return event_add(vm->exit_ev, &(struct timeval){
		0, SUPERVISE_POLL_MS * 1000 }) < 0 ? -EIO : 0;
}

static void
supervise_unwatch(struct vm *vm)
{
	struct vmmrun *ctl = vm->ctl;

	if (vm->exit_ev) {
		event_free(vm->exit_ev);
		vm->exit_ev = NULL;
	}
	if (vm->pidfd >= 0) {
		close(vm->pidfd);
		vm->pidfd = -1;
	}
	if (vm->start_timer) {
		event_free(vm->start_timer);
		vm->start_timer = NULL;
	}
	vm->start_probing = false;
	/* Pending calls are failed from vmmrun_free(): their functions see
	 * the VM without its client already. */
	vm->ctl = NULL;
	vmmrun_free(ctl);
}

void
supervise_detach(struct vm *vm)
{
	supervise_unwatch(vm);
	limits_vm_detach(vm);
}

/* vmm-run's own notifications: someone paused or resumed it directly. */
static void
supervise_ctl_event(void *arg, json_t *params)
{
	struct vm *vm = arg;
	const char *type = json_string_value(json_object_get(params, "type"));
	const char *state = json_string_value(json_object_get(params,
							      "state"));

	if (!type || strcmp(type, "state") || !state)
		return;
	if (strcmp(state, "paused") == 0 && vm->state == VM_STATE_RUNNING)
		vm_set_state(vm, VM_STATE_PAUSED, "paused");
	else if (strcmp(state, "running") == 0 &&
		 vm->state == VM_STATE_PAUSED)
		vm_set_state(vm, VM_STATE_RUNNING, "resumed");
}

static int
supervise_start_timer(struct vm *vm)
{
	vm->start_deadline_ms = vm_now_ms() +
		(uint64_t)vm->d->cfg->start_timeout_sec * 1000u;
	vm->start_timer = event_new(vm->d->base, -1, 0, supervise_start_tick,
				    vm);
	if (!vm->start_timer)
		return -ENOMEM;
	event_active(vm->start_timer, EV_TIMEOUT, 0);
	return 0;
}

/* --- spawning ------------------------------------------------------------- */

static void
supervise_child(char **argv, int null_fd, int log_fd, int go_fd)
{
	sigset_t none;
	ssize_t n;
	char c;
	int fd;

	/* Only async-signal-safe calls from here to exec. Wait until the
	 * parent has moved this process into the VM's cgroup: what it
	 * allocates before the move stays charged to the old group. One
	 * byte is the go; end of file means the start was abandoned. */
	do
		n = read(go_fd, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		_exit(127);
	setsid();
	if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
		_exit(127);
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3u, ~0u, 0u) < 0)
#endif
		for (fd = 3; fd < 65536; fd++)
			close(fd);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	execv(argv[0], argv);
	{
		static const char msg[] = "vmmd: cannot execute vmm-run\n";

		if (write(2, msg, sizeof(msg) - 1) < 0)
			_exit(127);
	}
	_exit(127);
}

/* The process of a VM whose state is about to be starting. */
static int
supervise_spawn(struct vm *vm, char *err, size_t errlen)
{
	struct vmmd *d = vm->d;
	struct vm_paths p;
	char **argv = NULL, pidtext[32], sub[96];
	int null_fd = -1, log_fd = -1, go[2] = { -1, -1 }, r;
	pid_t pid;

	r = supervise_paths(d->cfg->runtime_dir, vm->name, &p);
	if (r < 0) {
		snprintf(err, errlen, "runtime_dir: socket paths of this VM "
			 "would be longer than %d bytes", SUPERVISE_SOCK_MAX - 1);
		return r;
	}
	r = supervise_argv(d->vmm_run, vm->def, &p, &argv, err, errlen);
	if (r < 0)
		return r;
	r = store_mkdirs(p.dir, 0700);
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", p.dir, strerror(-r));
		goto out;
	}
	/* Whatever a dead process left: the probe must only ever find the
	 * new process's socket. */
	unlink(p.control);
	unlink(p.console);
	unlink(p.vsock);
	unlink(p.pid);
	if (rename(p.log, p.log_old) < 0 && errno != ENOENT)
		log_warn(sub_of(vm, sub, sizeof(sub)), "rotating %s: %s", p.log,
			 strerror(errno));
	log_fd = open(p.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (log_fd < 0 || null_fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", log_fd < 0 ? p.log : "/dev/null",
			 strerror(-r));
		goto out;
	}
	/* The group and its limits come before the process: a VM whose
	 * limits cannot be applied must not start unlimited. */
	r = limits_vm_prepare(vm, err, errlen);
	if (r < 0)
		goto out;
	if (pipe2(go, O_CLOEXEC) < 0) {
		r = -errno;
		snprintf(err, errlen, "pipe: %s", strerror(-r));
		limits_vm_exited(vm, false);
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		snprintf(err, errlen, "fork: %s", strerror(-r));
		limits_vm_exited(vm, false);
		goto out;
	}
	if (pid == 0) {
		close(go[1]);
		supervise_child(argv, null_fd, log_fd, go[0]);
	}
	close(go[0]);
	go[0] = -1;
	r = limits_vm_attach(vm, pid, err, errlen);
	if (r == 0 && write(go[1], "g", 1) != 1) {
		r = -errno;
		snprintf(err, errlen, "cannot let vmm-run start: %s",
			 strerror(-r));
	}
	if (r < 0) {
		/* The child sees end of file and exits without exec. */
		close(go[1]);
		go[1] = -1;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		limits_vm_exited(vm, false);
		goto out;
	}

	vm->pid = pid;
	vm->child = true;
	vm->reattaching = false;
	vm->start_timed_out = false;
	vm->intent = VM_INTENT_NONE;
	vm->intent_reason[0] = '\0';
	vm->console_ring = supervise_console_ring(vm->def);
	clock_gettime(CLOCK_REALTIME, &vm->started_at);
	vm->started_ms = vm_now_ms();
	r = supervise_watch(vm);
	if (r == 0)
		r = vmmrun_new(d->base, p.control, supervise_ctl_event, vm,
			       &vm->ctl);
	if (r == 0)
		r = supervise_start_timer(vm);
	if (r < 0) {
		/* Cannot watch it: it must not run unsupervised. */
		snprintf(err, errlen, "cannot watch the new process: %s",
			 strerror(-r));
		pidfd_kill(vm->pidfd, pid, SIGKILL);
		waitpid(pid, NULL, 0);
		vm->pid = 0;
		supervise_unwatch(vm);
		limits_vm_exited(vm, false);
		goto out;
	}
	snprintf(pidtext, sizeof(pidtext), "%d\n", (int)pid);
	if (write_small_file(p.pid, pidtext) < 0)
		log_warn(sub_of(vm, sub, sizeof(sub)), "cannot write %s: %s",
			 p.pid, strerror(errno));
	log_info(sub_of(vm, sub, sizeof(sub)), "vmm-run started, pid %d, "
		 "log %s", (int)pid, p.log);
	r = 0;
out:
	if (go[0] >= 0)
		close(go[0]);
	if (go[1] >= 0)
		close(go[1]);
	if (log_fd >= 0)
		close(log_fd);
	if (null_fd >= 0)
		close(null_fd);
	supervise_argv_free(argv);
	return r;
}

int
supervise_start(struct vm *vm, const char *why, char *err, size_t errlen)
{
	int r;

	if (!vm_state_is_down(vm->state)) {
		snprintf(err, errlen, "vm \"%s\" is %s", vm->name,
			 vm_state_name(vm->state));
		return -EBUSY;
	}
	r = vmdef_check_files(vm->def, err, errlen);
	if (r < 0)
		return r;
	r = supervise_spawn(vm, err, errlen);
	if (r < 0)
		return r;
	/* A start by hand gives the restart policy a fresh window. */
	vm->restarts = 0;
	vm->window_start_ms = 0;
	vm_set_state(vm, VM_STATE_STARTING, "%s", why);
	return 0;
}

static void
supervise_probe_done(void *arg, int err, json_t *result, const char *msg)
{
	struct vm *vm = arg;
	const char *name, *state;
	json_int_t pid;
	char sub[96];

	vm->start_probing = false;
	if (vm->state != VM_STATE_STARTING || vm->pid <= 0 ||
	    !vm->start_timer) {
		vm_unref(vm);
		return;
	}
	if (err < 0) {
		/* Not listening yet: the next tick tries again. */
		log_debug(sub_of(vm, sub, sizeof(sub)), "control socket: %s",
			  msg);
		vm_unref(vm);
		return;
	}
	name = json_string_value(json_object_get(result, "name"));
	state = json_string_value(json_object_get(result, "state"));
	pid = json_integer_value(json_object_get(result, "pid"));
	if (!name || strcmp(name, vm->name) || pid != vm->pid) {
		log_warn(sub_of(vm, sub, sizeof(sub)), "the control socket "
			 "answers for another VM (\"%s\", pid %lld)",
			 name ? name : "?", (long long)pid);
		vm_unref(vm);
		return;
	}
	event_free(vm->start_timer);
	vm->start_timer = NULL;
	if (vm->reattaching)
		vm_set_state(vm, state && strcmp(state, "paused") == 0 ?
			     VM_STATE_PAUSED : VM_STATE_RUNNING,
			     "reattached to vmm-run (pid %d)", (int)vm->pid);
	else
		vm_set_state(vm, VM_STATE_RUNNING, "vmm-run (pid %d) is up",
			     (int)vm->pid);
	vm->reattaching = false;
	limits_vm_running(vm);
	vm_wait_fire(vm, VM_WAIT_STARTED, 0, NULL);
	vm_unref(vm);
}

static void
supervise_start_tick(evutil_socket_t fd, short what, void *arg)
{
	struct vm *vm = arg;
	struct vm_paths p;
	char sub[96];

	(void)fd;
	(void)what;
	if (vm->state != VM_STATE_STARTING || vm->pid <= 0)
		return;
	if (vm_now_ms() >= vm->start_deadline_ms) {
		event_free(vm->start_timer);
		vm->start_timer = NULL;
		if (vm->reattaching) {
			/* The process lives; never be the reason it stops. */
			log_warn(sub_of(vm, sub, sizeof(sub)), "its control "
				 "socket does not answer; reattached without "
				 "it");
			vm->reattaching = false;
			vm_set_state(vm, VM_STATE_RUNNING, "reattached to "
				     "vmm-run (pid %d); its control socket "
				     "does not answer", (int)vm->pid);
			vm_wait_fire(vm, VM_WAIT_STARTED, 0, NULL);
			return;
		}
		snprintf(vm->intent_reason, sizeof(vm->intent_reason),
			 "vmm-run did not answer on its control socket within "
			 "%u s", vm->d->cfg->start_timeout_sec);
		vm->intent = VM_INTENT_KILL;
		vm->start_timed_out = true;
		if (pidfd_kill(vm->pidfd, vm->pid, SIGKILL) < 0)
			log_error(sub_of(vm, sub, sizeof(sub)), "kill pid %d: "
				  "%s", (int)vm->pid, strerror(errno));
		return;
	}
	if (!vm->start_probing &&
	    supervise_paths(vm->d->cfg->runtime_dir, vm->name, &p) == 0 &&
	    access(p.control, F_OK) == 0) {
		vm->start_probing = true;
		if (vmmrun_call(vm->ctl, "vm.info", NULL, supervise_probe_done,
				vm_ref(vm)) < 0) {
			vm->start_probing = false;
			vm_unref(vm);
		}
	}
	event_add(vm->start_timer, &(struct timeval){
		0, SUPERVISE_PROBE_MS * 1000 });
}

/* --- exits ---------------------------------------------------------------- */

enum exit_kind {
	EXIT_KIND_POWEROFF,
	EXIT_KIND_REBOOT,
	EXIT_KIND_CRASH,
	EXIT_KIND_ERROR,
	EXIT_KIND_SIGNAL,
	EXIT_KIND_UNKNOWN,
};

/* What the log of a process we could not wait for says about its end. */
static enum exit_kind
supervise_log_exit(const char *path)
{
	static const struct {
		const char *marker;
		enum exit_kind kind;
	} markers[] = {
		{ ": info: guest powered off", EXIT_KIND_POWEROFF },
		{ ": info: guest asked to reboot", EXIT_KIND_REBOOT },
		{ ": error: guest crashed", EXIT_KIND_CRASH },
		{ ": error: stopped on an error", EXIT_KIND_ERROR },
		{ ": info: stopped: ", EXIT_KIND_SIGNAL },
	};
	char tail[SUPERVISE_TAIL + 1];
	enum exit_kind kind = EXIT_KIND_UNKNOWN;
	const char *best = NULL;
	ssize_t n;
	off_t size;
	size_t i;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kind;
	size = lseek(fd, 0, SEEK_END);
	n = pread(fd, tail, SUPERVISE_TAIL,
		  size > SUPERVISE_TAIL ? size - SUPERVISE_TAIL : 0);
	close(fd);
	if (n <= 0)
		return kind;
	tail[n] = '\0';
	for (i = 0; i < sizeof(markers) / sizeof(markers[0]); i++) {
		const char *p = tail, *last = NULL;

		while ((p = strstr(p, markers[i].marker))) {
			last = p;
			p++;
		}
		if (last && (!best || last > best)) {
			best = last;
			kind = markers[i].kind;
		}
	}
	return kind;
}

static enum exit_kind
supervise_classify(struct vm *vm, bool known, int wstatus, int *ret_status,
		   int *ret_signal, char *desc, size_t len)
{
	struct vm_paths p;
	char tail[200] = "";
	enum exit_kind kind;
	int code;

	*ret_status = -1;
	*ret_signal = 0;
	if (supervise_paths(vm->d->cfg->runtime_dir, vm->name, &p) == 0)
		supervise_log_tail(p.log, tail, sizeof(tail));
	if (!known) {
		kind = supervise_log_exit(p.log);
		switch (kind) {
		case EXIT_KIND_POWEROFF:
			snprintf(desc, len, "guest powered off");
			break;
		case EXIT_KIND_REBOOT:
			snprintf(desc, len, "guest asked to reboot");
			break;
		case EXIT_KIND_CRASH:
			snprintf(desc, len, "guest crashed (%.120s)", tail);
			break;
		default:
			/* Its log does not say (SIGKILL leaves no line). */
			snprintf(desc, len, "process exited while the daemon "
				 "could not wait for it: unknown status");
			kind = EXIT_KIND_UNKNOWN;
			break;
		}
		return kind;
	}
	if (WIFSIGNALED(wstatus)) {
		*ret_signal = WTERMSIG(wstatus);
		snprintf(desc, len, "vmm-run killed by signal %d (SIG%s)",
			 *ret_signal, sigabbrev_np(*ret_signal) ?
			 sigabbrev_np(*ret_signal) : "?");
		return EXIT_KIND_SIGNAL;
	}
	code = WEXITSTATUS(wstatus);
	*ret_status = code;
	switch (code) {
	case 0:
		snprintf(desc, len, "guest powered off");
		return EXIT_KIND_POWEROFF;
	case 3:
		snprintf(desc, len, "guest asked to reboot");
		return EXIT_KIND_REBOOT;
	case 4:
		snprintf(desc, len, "guest crashed (exit status 4)%s%.120s",
			 tail[0] ? "; log: " : "", tail);
		return EXIT_KIND_CRASH;
	default:
		if (code > 128 && code < 128 + 65) {
			snprintf(desc, len, "vmm-run stopped on signal %d "
				 "(exit status %d)", code - 128, code);
			return EXIT_KIND_SIGNAL;
		}
		snprintf(desc, len, "vmm-run exited with status %d%s%.120s", code,
			 tail[0] ? "; log: " : "", tail);
		return EXIT_KIND_ERROR;
	}
}

/* Whether the restart policy allows one more restart now (counting it). */
static bool
supervise_may_restart(struct vm *vm)
{
	uint64_t now = vm_now_ms();
	uint64_t window = (uint64_t)vm->def->restart.window_sec * 1000u;

	if (!vm->window_start_ms || now - vm->window_start_ms > window) {
		vm->window_start_ms = now;
		vm->restarts = 0;
	}
	if (vm->restarts >= vm->def->restart.max_restarts)
		return false;
	vm->restarts++;
	return true;
}

static void
supervise_exited(struct vm *vm, bool known, int wstatus)
{
	enum vm_state prev = vm->state;
	enum vm_intent intent = vm->intent;
	enum vm_state next;
	enum exit_kind kind;
	struct vm_paths p;
	char desc[200], reason[400], intent_reason[120], sub[96];
	int status, sig, start_err = 0;
	pid_t pid = vm->pid;
	bool restart = false;

	/* A process we were reattaching to was running all along: its end
	 * is judged as a running VM's, not as a failed start. */
	if (prev == VM_STATE_STARTING && vm->reattaching)
		prev = VM_STATE_RUNNING;
	vm_ref(vm);
	memset(&p, 0, sizeof(p));
	memcpy(intent_reason, vm->intent_reason, sizeof(intent_reason));
	kind = supervise_classify(vm, known, wstatus, &status, &sig, desc,
				  sizeof(desc));
	vm->pid = 0;
	vm->intent = VM_INTENT_NONE;
	vm->intent_reason[0] = '\0';
	supervise_unwatch(vm);
	if (supervise_paths(vm->d->cfg->runtime_dir, vm->name, &p) == 0)
		unlink(p.pid);
	log_info(sub_of(vm, sub, sizeof(sub)), "vmm-run (pid %d) ended: %s",
		 (int)pid, desc);

	vm->last_exit.valid = true;
	vm->last_exit.at = time(NULL);
	vm->last_exit.status = status;
	vm->last_exit.signal = sig;
	snprintf(vm->last_exit.reason, sizeof(vm->last_exit.reason), "%s",
		 desc);
	vm->reattaching = false;

	if (prev == VM_STATE_STARTING) {
		if (vm->start_timed_out) {
			char tail[160] = "";

			supervise_log_tail(p.log, tail, sizeof(tail));
			next = VM_STATE_CRASHED;
			snprintf(reason, sizeof(reason), "%s%s%s",
				 intent_reason, tail[0] ? "; log: " : "",
				 tail);
			start_err = -ETIMEDOUT;
			vm->start_timed_out = false;
		} else if (intent == VM_INTENT_KILL) {
			next = VM_STATE_STOPPED;
			snprintf(reason, sizeof(reason), "%s", intent_reason);
			start_err = -ECANCELED;
		} else {
			next = VM_STATE_CRASHED;
			snprintf(reason, sizeof(reason), "could not start: %s",
				 desc);
			start_err = -EIO;
		}
	} else if (intent == VM_INTENT_KILL) {
		next = VM_STATE_STOPPED;
		snprintf(reason, sizeof(reason), "%s", intent_reason[0] ?
			 intent_reason : "killed");
	} else if (prev == VM_STATE_STOPPING || intent == VM_INTENT_STOP) {
		next = VM_STATE_STOPPED;
		snprintf(reason, sizeof(reason), "%s", desc);
	} else {
		/* It ended on its own: the restart policy decides. */
		enum vmdef_restart_policy pol = vm->def->restart.policy;

		switch (kind) {
		case EXIT_KIND_POWEROFF:
			restart = pol == VMDEF_RESTART_ALWAYS;
			next = VM_STATE_STOPPED;
			break;
		case EXIT_KIND_REBOOT:
			/* What a reboot means to whoever runs the VM. */
			restart = true;
			next = VM_STATE_STOPPED;
			break;
		default:
			restart = pol != VMDEF_RESTART_NEVER;
			next = VM_STATE_CRASHED;
			break;
		}
		snprintf(reason, sizeof(reason), "%s", desc);
		if (restart && !supervise_may_restart(vm)) {
			restart = false;
			next = VM_STATE_CRASHED;
			snprintf(reason, sizeof(reason), "%.150s; not restarted: "
				 "%u restarts within %u s", desc,
				 vm->def->restart.max_restarts,
				 vm->def->restart.window_sec);
		}
	}
	/* A restart takes the group over; anything else removes it. */
	limits_vm_exited(vm, restart);
	if (restart) {
		char err[256];

		if (supervise_spawn(vm, err, sizeof(err)) == 0) {
			vm_set_state(vm, VM_STATE_STARTING, "restarting (%u of "
				     "%u within %u s) after: %.120s",
				     vm->restarts,
				     vm->def->restart.max_restarts,
				     vm->def->restart.window_sec, desc);
		} else {
			limits_vm_exited(vm, false);
			vm_set_state(vm, VM_STATE_CRASHED, "%.120s; restart "
				     "failed: %.120s", desc, err);
		}
	} else {
		vm_set_state(vm, next, "%s", reason);
	}
	if (prev == VM_STATE_STARTING) {
		char msg[sizeof(reason) + 80];

		snprintf(msg, sizeof(msg), "vm \"%s\": %s", vm->name, reason);
		vm_wait_fire(vm, VM_WAIT_STARTED, start_err, msg);
	}
	vm_wait_fire(vm, VM_WAIT_EXIT, 0, NULL);
	vm_unref(vm);
}

void
supervise_reap(struct vmmd *d)
{
	struct vm *vm;
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		vm = registry_find_pid(&d->reg, pid);
		if (vm && vm->child)
			supervise_exited(vm, true, st);
	}
}

int
supervise_kill(struct vm *vm, const char *why)
{
	int r;

	if (vm->pid <= 0)
		return -ESRCH;
	vm->intent = VM_INTENT_KILL;
	snprintf(vm->intent_reason, sizeof(vm->intent_reason), "%s", why);
	r = pidfd_kill(vm->pidfd, vm->pid, SIGKILL);
	return r == -ESRCH ? 0 : r;
}

/* --- vm.stop -------------------------------------------------------------- */

struct stop_op {
	struct vm *vm;
	struct vm_waiter w;
	struct event *timer;
	unsigned int refs;	/* the op itself, each call out to vmm-run */
	unsigned int timeout_sec;
	bool force;
	bool forced;
	bool finished;
	bool resumed;
	enum vm_state before;
	supervise_stop_fn fn;
	void *arg;
};

static void
stop_op_unref(struct stop_op *op)
{
	if (--op->refs)
		return;
	if (op->timer)
		event_free(op->timer);
	vm_unref(op->vm);
	free(op);
}

static void
stop_op_finish(struct stop_op *op, int err, const char *msg)
{
	if (op->finished)
		return;
	op->finished = true;
	if (op->timer)
		event_del(op->timer);
	vm_wait_remove(op->vm, &op->w);
	op->fn(op->vm, op->arg, err, op->forced, msg);
	stop_op_unref(op);
}

static void
stop_op_exit(struct vm *vm, void *arg, int err, const char *msg)
{
	(void)vm;
	stop_op_finish(arg, err, msg);
}

/* The guest keeps running: back to where it was, and say why. */
static void
stop_op_give_up(struct stop_op *op, int err, const char *msg)
{
	struct vm *vm = op->vm;

	if (vm->state == VM_STATE_STOPPING) {
		vm->intent = VM_INTENT_NONE;
		vm_set_state(vm, op->before == VM_STATE_PAUSED && !op->resumed ?
			     VM_STATE_PAUSED : VM_STATE_RUNNING, "%s", msg);
	}
	stop_op_finish(op, err, msg);
}

static void
stop_op_kill(struct stop_op *op, const char *why)
{
	op->forced = true;
	if (supervise_kill(op->vm, why) < 0 && op->vm->pid > 0)
		stop_op_give_up(op, -EIO, "cannot kill the VM process");
}

static void
stop_op_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct stop_op *op = arg;
	char msg[200];

	(void)fd;
	(void)what;
	if (op->finished)
		return;
	if (op->force) {
		snprintf(msg, sizeof(msg), "vm.stop: the guest did not power "
			 "off within %u s; killed (force)", op->timeout_sec);
		stop_op_kill(op, msg);
		return;
	}
	snprintf(msg, sizeof(msg), "vm \"%s\": the guest did not power off "
		 "within %u s (force kills it)", op->vm->name, op->timeout_sec);
	stop_op_give_up(op, -ETIMEDOUT, msg);
}

static void
stop_op_powerdown_done(void *arg, int err, json_t *result, const char *msg)
{
	struct stop_op *op = arg;
	char why[300];

	(void)result;
	if (!op->finished && err < 0 && op->vm->pid > 0 &&
	    op->vm->state == VM_STATE_STOPPING) {
		if (op->force) {
			snprintf(why, sizeof(why), "vm.stop: no power button "
				 "(%s); killed (force)", msg);
			stop_op_kill(op, why);
		} else {
			snprintf(why, sizeof(why), "vm \"%s\": cannot press "
				 "the power button: %s", op->vm->name, msg);
			stop_op_give_up(op, err, why);
		}
	}
	stop_op_unref(op);
}

static void
stop_op_resume_done(void *arg, int err, json_t *result, const char *msg)
{
	struct stop_op *op = arg;

	(void)result;
	(void)msg;
	if (!op->finished && op->vm->ctl) {
		op->resumed = err == 0;
		op->refs++;
		if (vmmrun_call(op->vm->ctl, "vm.powerdown", NULL,
				stop_op_powerdown_done, op) < 0)
			op->refs--;
	}
	stop_op_unref(op);
}

int
supervise_stop(struct vm *vm, unsigned int timeout_sec, bool force,
	       supervise_stop_fn fn, void *arg)
{
	struct stop_op *op;
	char why[160];

	if (vm->state != VM_STATE_RUNNING && vm->state != VM_STATE_PAUSED)
		return -EBUSY;
	op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->vm = vm_ref(vm);
	op->refs = 1;
	op->timeout_sec = timeout_sec;
	op->force = force;
	op->before = vm->state;
	op->fn = fn;
	op->arg = arg;
	op->timer = event_new(vm->d->base, -1, 0, stop_op_timeout, op);
	if (!op->timer) {
		stop_op_unref(op);
		return -ENOMEM;
	}
	vm_wait_add(vm, &op->w, VM_WAIT_EXIT, stop_op_exit, op);
	if (timeout_sec == 0 && force) {
		vm_set_state(vm, VM_STATE_STOPPING, "vm.stop: killing (force, "
			     "timeout 0)");
		stop_op_kill(op, "vm.stop: killed (force, timeout 0)");
		return 0;
	}
	snprintf(why, sizeof(why), "vm.stop: ACPI power button, waiting up "
		 "to %u s", timeout_sec);
	vm->intent = VM_INTENT_STOP;
	vm_set_state(vm, VM_STATE_STOPPING, "%s", why);
	event_add(op->timer, &(struct timeval){ timeout_sec, 0 });
	op->refs++;
	if (vmmrun_call(vm->ctl, op->before == VM_STATE_PAUSED ? "vm.resume" :
			"vm.powerdown", NULL, op->before == VM_STATE_PAUSED ?
			stop_op_resume_done : stop_op_powerdown_done, op) < 0) {
		op->refs--;
		stop_op_give_up(op, -ENOMEM, "out of memory");
	}
	return 0;
}

/* --- reattaching ---------------------------------------------------------- */

int
supervise_reattach(struct vm *vm)
{
	struct vm_paths p;
	char buf[32], sub[96];
	size_t ring = 0;
	ssize_t n;
	long pid;
	int fd, r;

	r = supervise_paths(vm->d->cfg->runtime_dir, vm->name, &p);
	if (r < 0)
		return r;
	fd = open(p.pid, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, NULL, 10);
	if (pid <= 0 || pid > 0x3fffffff ||
	    supervise_proc_is_vm((pid_t)pid, vm->name, &ring) != 1) {
		log_info(sub_of(vm, sub, sizeof(sub)), "pid file names no "
			 "live vmm-run of this VM; removed");
		unlink(p.pid);
		return 0;
	}
	vm->pid = (pid_t)pid;
	vm->child = false;
	r = supervise_watch(vm);
	/* The pid may have gone and come back as another process between
	 * the check and the pidfd: check again, through the pidfd's pid. */
	if (r == 0 && supervise_proc_is_vm(vm->pid, vm->name, NULL) != 1)
		r = -ESRCH;
	if (r == 0)
		r = vmmrun_new(vm->d->base, p.control, supervise_ctl_event, vm,
			       &vm->ctl);
	if (r == 0)
		r = supervise_start_timer(vm);
	if (r < 0) {
		vm->pid = 0;
		supervise_unwatch(vm);
		return r;
	}
	vm->reattaching = true;
	vm->intent = VM_INTENT_NONE;
	limits_vm_reattach(vm);
	vm->console_ring = ring ? ring : supervise_console_ring(vm->def);
	proc_start_time(vm->pid, &vm->started_at, &vm->started_ms);
	vm_set_state(vm, VM_STATE_STARTING, "reattaching to vmm-run (pid %d)",
		     (int)vm->pid);
	return 1;
}
