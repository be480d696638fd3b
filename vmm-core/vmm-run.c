/* SPDX-License-Identifier: MIT */
/*
 * vmm-run: one VM in the foreground. The daemon starts one of these per VM;
 * by hand it boots a kernel with its console on the terminal.
 */
#include "layout.h"
#include "log.h"
#include "vm.h"
#include "dev/acpi_pm.h"
#include "dev/i8042.h"
#include "dev/pci.h"
#include "dev/rtc.h"
#include "dev/uart8250.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/irq.h"
#include "virtio/net.h"
#include "virtio/rng.h"
#include "virtio/vsock.h"
#include "virtio/virtio_pci.h"
#include "x86/acpi.h"
#include "x86/bootparams.h"
#include "x86/firmware.h"
#include "x86/loader.h"

#include "proto/size.h"
#include "proto/vmdef.h"

#include <asm/bootparam.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <termios.h>
#include <unistd.h>

#define VMM_RUN_VERSION "0.1.0"

/*
 * What an unmodified Linux needs on a PVM host (no hardware
 * virtualization): no XSAVE (XRSTOR cannot be emulated there), and none of
 * the instructions the kernel would pick from the host's CPUID that the
 * host cannot emulate and we do not carry out ourselves, or that it runs
 * on hot paths (README.md, "Hosts without hardware virtualization").
 * Left out because they change nothing: avx, avx2, fma, vaes and
 * vpclmulqdq (noxsave clears them: Linux drops every feature that depends
 * on XSAVE), and bmi1 and abm (the kernel never uses BMI1 or LZCNT
 * instructions; guest user mode runs natively and does not see
 * clearcpuid). The Debian kernel boots to poweroff without them
 * (2026-11-28). bmi2 and movbe stay although that boot did without them:
 * with ADX the kernel's curve25519 (a module, WireGuard's) runs mulx and
 * adox, which PVM fails to emulate, and a movbe in kernel mode ends in a
 * fault there (both checked with a bare KVM loop).
 */
static const char pvm_cmdline[] =
	"noxsave nofsgsbase nopku nopcid noinvpcid "
	"clearcpuid=cx16,smap,smep,rdrand,rdseed,umip,popcnt,rdpid,bmi2,"
	"movbe,sse4_1,sse4_2,aes,pclmulqdq,sha_ni,clflushopt,clwb,f16c,ssse3,"
	"gfni,erms,fsrm nowatchdog";

#include "vmm-run.h"

static struct vmm *the_vmm;	/* for the terminal restore at exit */

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: vmm-run --kernel PATH [--initrd PATH] [--cmdline STRING]\n"
		"       vmm-run --firmware PATH [--firmware-log PATH]\n"
		"               [--cpus N] [--memory SIZE] [--console stdio|file:PATH]\n"
		"               [--disk PATH[,ro][,serial=S][,direct][,bps=SIZE][,iops=N]\n"
		"                      [,bps_burst=SIZE][,iops_burst=N]]...\n"
		"               [--net tap=NAME|fd=N[,mac=MAC][,rom=PATH]\n"
		"                     [,rx_bps=SIZE][,rx_pps=N][,tx_bps=SIZE][,tx_pps=N]\n"
		"                     [,rx_bps_burst=SIZE][,rx_pps_burst=N]\n"
		"                     [,tx_bps_burst=SIZE][,tx_pps_burst=N]]...\n"
		"               [--vsock cid=N,uds=PATH[,timeout=MS]]\n"
		"               [--virtio-console stdio|file:PATH] [--no-rng] [--balloon]\n"
		"               [--stats] [--classic-boot] [--no-pvm-cmdline]\n"
		"               [--no-syscall-bridge] [-v]\n"
		"               [--name NAME] [--control PATH]\n"
		"       vmm-run --definition FILE.json [options but the machine's]\n"
		"               [--console-socket PATH[,history=SIZE]]\n"
		"\n"
		"Boots one VM in the foreground. SIZE takes K, M, G or T (binary\n"
		"units); a plain number is MiB. Default: 1 vCPU, 512M, console on stdio.\n"
		"--classic-boot lets the guest decompress its own bzImage.\n"
		"--disk adds a virtio-blk disk (a raw image; repeatable).\n"
		"--net adds a virtio-net NIC on a TAP; rom= gives it an expansion\n"
		"ROM for --firmware to run (/usr/lib/ipxe/qemu/pxe-virtio.rom);\n"
		"rx_ (to the guest) and tx_ (from it) limit bytes and packets/s.\n"
		"--virtio-console adds hvc0 (virtio-console); with stdio it takes\n"
		"the terminal's input. A virtio-rng device is there unless --no-rng.\n"
		"--firmware boots a BIOS image (e.g. /usr/share/seabios/bios.bin)\n"
		"instead of a kernel; --firmware-log writes its debug port there.\n"
		"--console none discards the console; --console-socket serves it\n"
		"on a UNIX socket (history replayed to each client, default 64K).\n"
		"--control serves the control protocol (proto/PROTOCOL.md): info,\n"
		"stats, pause, resume, power button, balloon target, console history.\n"
		"On a terminal, Ctrl-A x quits. Exit codes: 0 poweroff, 3 reboot,\n"
		"4 guest crash, 2 bad arguments or set-up error, 1 internal error,\n"
		"130/143 after SIGINT/SIGTERM.\n");
}

static int
die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
die_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERR, fmt, ap);
	va_end(ap);
	return EXIT_USAGE;
}

/* Parse "512M", "4G", "1024" (MiB). Returns 0 or -EINVAL / -ERANGE. */
static int
parse_size(const char *s, uint64_t *ret)
{
	unsigned long long v;
	char *end;
	unsigned int shift = 20;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (*end) {
		switch (*end) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		case 't': case 'T': shift = 40; break;
		default: return -EINVAL;
		}
		end++;
		if (*end == 'i')
			end++;
		if (*end == 'B' || *end == 'b')
			end++;
		if (*end)
			return -EINVAL;
	}
	if (v > (UINT64_MAX >> shift))
		return -ERANGE;
	*ret = (uint64_t)v << shift;
	return 0;
}

/* Read a whole regular file. 0 or -errno, with a message naming it. */
static int
read_file(const char *what, const char *path, uint8_t **ret, size_t *ret_len)
{
	struct stat st;
	uint8_t *buf;
	size_t off = 0;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		log_err("%s '%s': %s", what, path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		log_err("%s '%s': %s", what, path, strerror(-r));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		log_err("%s '%s': is a directory", what, path);
		r = -EISDIR;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		log_err("%s '%s': not a regular file", what, path);
		r = -EINVAL;
		goto out;
	}
	if (st.st_size == 0) {
		log_err("%s '%s': file is empty", what, path);
		r = -EINVAL;
		goto out;
	}
	if ((uint64_t)st.st_size > 4 * GiB) {
		log_err("%s '%s': too large (%lld bytes)", what, path,
			(long long)st.st_size);
		r = -EFBIG;
		goto out;
	}
	buf = malloc((size_t)st.st_size);
	if (!buf) {
		r = -ENOMEM;
		log_err("%s '%s': out of memory", what, path);
		goto out;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			log_err("%s '%s': read: %s", what, path, strerror(-r));
			free(buf);
			goto out;
		}
		off += (size_t)n;
	}
	*ret = buf;
	*ret_len = off;
	r = 0;
out:
	close(fd);
	return r;
}

/*
 * --definition FILE: the VM definition of proto/PROTOCOL.md, the very
 * parser the daemon and vmctl use (with its file checks), turned into
 * the options it stands for. The machine comes from the file alone; what
 * only the daemon acts on (resources, autostart, restart) is not ours.
 * The definition is kept for the process's life: options point into it.
 */
static int
load_definition(struct options *o)
{
	struct vmdef *def;
	char err[512];
	uint8_t *buf;
	size_t len;
	unsigned int i;
	int r;

	if (o->kernel || o->initrd || o->cmdline || o->firmware ||
	    o->nr_disks || o->nr_nets || o->balloon)
		return die_usage("--definition gives the machine: no --kernel, "
				 "--initrd, --cmdline, --firmware, --disk, --net "
				 "or --balloon with it");
	r = read_file("--definition", o->definition, &buf, &len);
	if (r < 0)
		return EXIT_USAGE;
	r = vmdef_from_string((const char *)buf, len, VMDEF_CHECK_FILES, &def,
			      err, sizeof(err));
	free(buf);
	if (r < 0)
		return die_usage("--definition %s: %s", o->definition, err);
	if (def->virtio_console && !o->virtio_console)
		return die_usage("--definition %s: virtio_console needs "
				 "--virtio-console stdio|file:PATH", o->definition);
	if (def->has_vsock && !o->vsock)
		return die_usage("--definition %s: vsock needs --vsock "
				 "cid=N,uds=PATH", o->definition);
	if (!o->name)
		o->name = def->name;
	o->cpus = def->vcpus;
	o->memory = def->memory;
	o->kernel = def->kernel;
	o->initrd = def->initrd;
	o->cmdline = def->cmdline;
	o->firmware = def->firmware;
	o->balloon = def->balloon;
	o->console_history = def->console_history < CONHUB_HISTORY_MIN ?
			     CONHUB_HISTORY_MIN : def->console_history;
	for (i = 0; i < def->nr_disks; i++) {
		const struct vmdef_disk *d = &def->disks[i];
		const struct vmdef_disk_limits *l = &d->limits;
		char *arg;

		if (asprintf(&arg, "%s%s%s%s%s,bps=%llu,bps_burst=%llu,"
			     "iops=%llu,iops_burst=%llu", d->path,
			     d->readonly ? ",ro" : "",
			     d->serial[0] ? ",serial=" : "", d->serial,
			     d->direct ? ",direct" : "",
			     (unsigned long long)l->bytes.rate,
			     (unsigned long long)l->bytes.burst,
			     (unsigned long long)l->ops.rate,
			     (unsigned long long)l->ops.burst) < 0)
			return EXIT_INTERNAL;
		o->disks[o->nr_disks++] = arg;
	}
	for (i = 0; i < def->nr_nics; i++) {
		const struct vmdef_nic *n = &def->nics[i];
		char mac[18] = "", *arg;

		const struct vmdef_nic_limits *l = &n->limits;

		if (n->has_mac)
			vmdef_mac_format(n->mac, mac);
		if (asprintf(&arg, "tap=%s%s%s,rx_bps=%llu,rx_bps_burst=%llu,"
			     "rx_pps=%llu,rx_pps_burst=%llu,tx_bps=%llu,"
			     "tx_bps_burst=%llu,tx_pps=%llu,tx_pps_burst=%llu",
			     n->tap, n->has_mac ? ",mac=" : "", mac,
			     (unsigned long long)l->rx_bytes.rate,
			     (unsigned long long)l->rx_bytes.burst,
			     (unsigned long long)l->rx_packets.rate,
			     (unsigned long long)l->rx_packets.burst,
			     (unsigned long long)l->tx_bytes.rate,
			     (unsigned long long)l->tx_bytes.burst,
			     (unsigned long long)l->tx_packets.rate,
			     (unsigned long long)l->tx_packets.burst) < 0)
			return EXIT_INTERNAL;
		o->nets[o->nr_nets++] = arg;
	}
	return 0;
}

static int
parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "cmdline", required_argument, NULL, 'c' },
		{ "firmware", required_argument, NULL, 'F' },
		{ "firmware-log", required_argument, NULL, 'L' },
		{ "cpus", required_argument, NULL, 'n' },
		{ "memory", required_argument, NULL, 'm' },
		{ "console", required_argument, NULL, 'C' },
		{ "stats", no_argument, NULL, 's' },
		{ "classic-boot", no_argument, NULL, 'B' },
		{ "no-pvm-cmdline", no_argument, NULL, 'P' },
		{ "no-syscall-bridge", no_argument, NULL, 'Y' },
		{ "virtio-console", required_argument, NULL, 'H' },
		{ "no-rng", no_argument, NULL, 'R' },
		{ "disk", required_argument, NULL, 'D' },
		{ "balloon", no_argument, NULL, 'b' },
		{ "net", required_argument, NULL, 'N' },
		{ "vsock", required_argument, NULL, 'S' },
		{ "name", required_argument, NULL, 'A' },
		{ "control", required_argument, NULL, 'T' },
		{ "console-socket", required_argument, NULL, 'O' },
		{ "definition", required_argument, NULL, 'J' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	unsigned long n;
	int c;

	o->cpus = 1;
	o->memory = 512 * MiB;
	o->console = "stdio";
	o->console_history = 64 * KiB;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":k:i:c:n:m:C:svhV", longopts,
				NULL)) != -1) {
		switch (c) {
		case 'k': o->kernel = optarg; break;
		case 'i': o->initrd = optarg; break;
		case 'c': o->cmdline = optarg; break;
		case 'F': o->firmware = optarg; break;
		case 'L': o->firmware_log = optarg; break;
		case 'n':
			errno = 0;
			n = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || optarg[0] == '-')
				return die_usage("--cpus '%s': not a number",
						 optarg);
			if (n == 0 || n > VM_MAX_VCPUS)
				return die_usage("--cpus %lu: must be between 1 "
						 "and %u", n, VM_MAX_VCPUS);
			o->cpus = (unsigned int)n;
			break;
		case 'm':
			if (parse_size(optarg, &o->memory) < 0)
				return die_usage("--memory '%s': not a size "
						 "(use e.g. 512M or 4G)", optarg);
			break;
		case 'C': o->console = optarg; break;
		case 's': o->stats = true; break;
		case 'B': o->classic = true; break;
		case 'P': o->no_pvm_cmdline = true; break;
		case 'Y': o->no_syscall_bridge = true; break;
		case 'H':
			if (strcmp(optarg, "stdio") != 0 &&
			    (strncmp(optarg, "file:", 5) != 0 || !optarg[5]))
				return die_usage("--virtio-console '%s': expected "
						 "stdio or file:PATH", optarg);
			o->virtio_console = optarg;
			break;
		case 'R': o->no_rng = true; break;
		case 'b': o->balloon = true; break;
		case 'S': o->vsock = optarg; break;
		case 'A':
			if (!*optarg || strlen(optarg) > 63)
				return die_usage("--name '%s': 1 to 63 characters",
						 optarg);
			o->name = optarg;
			break;
		case 'T':
			if (!*optarg || strlen(optarg) >= 108)
				return die_usage("--control '%s': a socket path "
						 "of 1 to 107 bytes", optarg);
			o->control = optarg;
			break;
		case 'O': {
			char *comma = strchr(optarg, ',');

			o->console_socket = optarg;
			if (comma) {
				*comma = '\0';
				if (strncmp(comma + 1, "history=", 8) != 0 ||
				    parse_size(comma + 9, &o->console_history) < 0 ||
				    o->console_history < CONHUB_HISTORY_MIN ||
				    o->console_history > CONHUB_HISTORY_MAX)
					return die_usage("--console-socket: '%s': "
						"expected history=SIZE, 4K to 16M",
						comma + 1);
			}
			if (!*optarg || strlen(optarg) >= 108)
				return die_usage("--console-socket '%s': a socket "
						 "path of 1 to 107 bytes", optarg);
			break;
		}
		case 'N':
			if (o->nr_nets == VMM_MAX_NICS)
				return die_usage("--net: at most %u NICs",
						 VMM_MAX_NICS);
			o->nets[o->nr_nets++] = optarg;
			break;
		case 'D':
			if (o->nr_disks == VMM_MAX_DISKS)
				return die_usage("--disk: at most %u disks",
						 VMM_MAX_DISKS);
			o->disks[o->nr_disks++] = optarg;
			break;
		case 'J': o->definition = optarg; break;
		case 'v': log_set_level(LOG_LEVEL_DEBUG); break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("vmm-run %s\n", VMM_RUN_VERSION); exit(0);
		case ':':
			return die_usage("option '%s' needs a value",
					 argv[optind - 1]);
		default:
			return die_usage("unknown option '%s' (see --help)",
					 argv[optind - 1]);
		}
	}
	if (optind < argc)
		return die_usage("unexpected argument '%s'", argv[optind]);
	if (o->definition) {
		int r = load_definition(o);

		if (r)
			return r;
	}
	if (o->firmware && (o->kernel || o->initrd || o->cmdline))
		return die_usage("--firmware boots the BIOS image alone: no "
				 "--kernel, --initrd or --cmdline with it");
	if (o->firmware_log && !o->firmware)
		return die_usage("--firmware-log needs --firmware");
	if (!o->kernel && !o->firmware)
		return die_usage("no kernel given: --kernel PATH (or "
				 "--firmware PATH) is required");
	return 0;
}

static int
check_memory(const struct options *o)
{
	struct sysinfo si;
	uint64_t host;

	if (o->memory < 16 * MiB)
		return die_usage("--memory %llu KiB: at least 16M is needed",
				 (unsigned long long)(o->memory >> 10));
	if (o->memory % (4 * KiB))
		return die_usage("--memory must be a multiple of 4K");
	if (sysinfo(&si) == 0) {
		host = (uint64_t)si.totalram * si.mem_unit;
		if (o->memory > host)
			return die_usage("--memory %llu MiB is more than this "
					 "host has (%llu MiB)",
					 (unsigned long long)(o->memory >> 20),
					 (unsigned long long)(host >> 20));
	}
	return 0;
}

static void
console_restore(void)
{
	if (the_vmm && the_vmm->tty_raw) {
		tcsetattr(STDIN_FILENO, TCSANOW, &the_vmm->tty_saved);
		the_vmm->tty_raw = false;
	}
}

static int
console_open(struct vmm *m)
{
	const char *c = m->opt.console;

	if (strcmp(c, "stdio") == 0) {
		m->console_fd = STDOUT_FILENO;
		return 0;
	}
	if (strcmp(c, "none") == 0)
		return 0;
	if (strncmp(c, "file:", 5) == 0 && c[5]) {
		m->console_fd = open(c + 5, O_WRONLY | O_CREAT | O_TRUNC |
				     O_APPEND | O_CLOEXEC, 0640);
		if (m->console_fd < 0) {
			log_err("--console '%s': %s", c, strerror(errno));
			return -errno;
		}
		return 0;
	}
	log_err("--console '%s': expected stdio, file:PATH or none", c);
	return -EINVAL;
}

/* Feeds the terminal (or a pipe) to the UART; Ctrl-A x quits. */
static void *
console_input_thread(void *arg)
{
	struct vmm *m = arg;
	uint8_t buf[256];
	bool escape = false;

	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
		size_t off = 0, i, w = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		if (m->tty_raw) {
			for (i = 0; i < (size_t)n; i++) {
				if (escape) {
					escape = false;
					if (buf[i] == 'x') {
						vm_request_stop(m->vm,
							VM_STOP_SIGNAL,
							"Ctrl-A x on the console");
						return NULL;
					}
					if (buf[i] != 0x01)
						buf[w++] = 0x01;
				} else if (buf[i] == 0x01) {
					escape = true;
					continue;
				}
				buf[w++] = buf[i];
			}
			n = (ssize_t)w;
		}
		if (m->vcon_in[1] >= 0) {
			/* hvc0 has the terminal: the device reads a pipe. */
			while (off < (size_t)n) {
				ssize_t k = write(m->vcon_in[1], buf + off,
						  (size_t)n - off);

				if (k < 0 && errno == EINTR)
					continue;
				if (k < 0)
					return NULL;
				off += (size_t)k;
			}
			continue;
		}
		while (off < (size_t)n) {
			struct pollfd pfd[2] = {
				{ .fd = uart8250_input_eventfd(m->uart),
				  .events = POLLIN },
				{ .fd = m->vm->stop_eventfd, .events = POLLIN },
			};
			uint64_t ev;

			off += uart8250_input(m->uart, buf + off, (size_t)n - off);
			if (off == (size_t)n)
				break;
			/* The guest is not reading: wait until it drained
			 * its input, or the VM stops. */
			if (poll(pfd, 2, -1) < 0 && errno != EINTR)
				return NULL;
			if (pfd[1].revents)
				return NULL;
			if (read(pfd[0].fd, &ev, sizeof(ev)) < 0 &&
			    errno != EAGAIN)
				return NULL;
		}
	}
}

static int
console_start_input(struct vmm *m)
{
	pthread_t t;
	struct termios raw;

	if (strcmp(m->opt.console, "stdio") != 0 &&
	    !(m->opt.virtio_console && strcmp(m->opt.virtio_console, "stdio") == 0))
		return 0;
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &m->tty_saved) == 0) {
		raw = m->tty_saved;
		cfmakeraw(&raw);
		raw.c_oflag |= OPOST | ONLCR;
		if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) {
			m->tty_raw = true;
			atexit(console_restore);
		}
	}
	if (pthread_create(&t, NULL, console_input_thread, m) != 0)
		return -EAGAIN;
	pthread_detach(t);
	return 0;
}

static void *
signal_thread(void *arg)
{
	struct vmm *m = arg;
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (sigwait(&set, &sig) == 0) {
		m->signo = sig;
		vm_request_stop(m->vm, VM_STOP_SIGNAL, "signal %s",
				strsignal(sig));
	}
	return NULL;
}

/* Load kernel, initrd, command line, ACPI and boot_params into the VM. */
static int
setup_boot(struct vmm *m)
{
	struct vm *vm = m->vm;
	struct kernel_info k;
	struct boot_params bp;
	struct acpi_config acfg;
	uint8_t *kbuf = NULL, *ibuf = NULL;
	size_t klen = 0, ilen = 0;
	uint64_t initrd_gpa = 0, rsdp = 0;
	char err[256] = "";
	char *cmdline = NULL;
	size_t clen;
	uint32_t cmax;
	int r;

	r = read_file("kernel", m->opt.kernel, &kbuf, &klen);
	if (r < 0)
		goto out;
	if (m->opt.initrd) {
		r = read_file("initrd", m->opt.initrd, &ibuf, &ilen);
		if (r < 0)
			goto out;
	}
	r = loader_load_kernel(&vm->mem, kbuf, klen,
			       m->opt.classic ? LOADER_CLASSIC :
						LOADER_HOST_DECOMPRESS,
			       &k, err, sizeof(err));
	if (r < 0) {
		log_err("kernel '%s': %s", m->opt.kernel, err);
		goto out;
	}
	log_debug("kernel: %s%s%s, entry 0x%llx, 0x%llx-0x%llx",
		  k.is_bzimage ? "bzImage" : "ELF",
		  k.host_decompressed ? ", decompressed on the host from " : "",
		  k.host_decompressed && k.compression ? k.compression : "",
		  (unsigned long long)k.entry,
		  (unsigned long long)k.load_start,
		  (unsigned long long)k.load_end);
	if (k.is_bzimage && !k.host_decompressed && !m->opt.classic)
		log_warn("kernel '%s': payload (%s) not decompressed on the "
			 "host; the guest runs its own decompressor",
			 m->opt.kernel, k.compression ? k.compression : "?");

	/* The command line, with what a PVM host needs appended. */
	clen = (m->opt.cmdline ? strlen(m->opt.cmdline) : 0) +
	       sizeof(pvm_cmdline) + 2;
	cmdline = calloc(1, clen);
	if (!cmdline) {
		r = -ENOMEM;
		goto out;
	}
	if (m->opt.cmdline)
		strcpy(cmdline, m->opt.cmdline);
	cmax = bootparams_cmdline_max(&k);
	if (strlen(cmdline) > cmax) {
		log_err("--cmdline is %zu bytes, over this kernel's limit of "
			"%u", strlen(cmdline), cmax);
		r = -E2BIG;
		goto out;
	}
	if (vm->is_pvm && !m->opt.no_pvm_cmdline) {
		if (strlen(cmdline) + 1 + strlen(pvm_cmdline) <= cmax) {
			if (cmdline[0])
				strcat(cmdline, " ");
			strcat(cmdline, pvm_cmdline);
		} else {
			log_warn("no room on the command line for the PVM "
				 "switches (limit %u bytes)", cmax);
		}
	}
	if (strlen(cmdline) + 1 > LAYOUT_CMDLINE_MAX) {
		r = -E2BIG;
		goto out;
	}
	if (guest_mem_write(&vm->mem, LAYOUT_CMDLINE, cmdline,
			    strlen(cmdline) + 1) < 0) {
		r = -EFAULT;
		log_err("no room for the command line in guest RAM");
		goto out;
	}
	if (ibuf) {
		r = loader_load_initrd(&vm->mem, &k, ibuf, ilen, &initrd_gpa,
				       err, sizeof(err));
		if (r < 0) {
			log_err("initrd '%s': %s", m->opt.initrd, err);
			goto out;
		}
	}
	memset(&acfg, 0, sizeof(acfg));
	acfg.nr_cpus = vm->nr_vcpus;
	acfg.pci_mmio32_start = LAYOUT_PCI_MMIO32_START;
	acfg.pci_mmio32_end = LAYOUT_PCI_MMIO32_END;
	r = acpi_build(&vm->mem, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE, &acfg,
		       &rsdp);
	if (r < 0) {
		log_err("building ACPI tables: %s", strerror(-r));
		goto out;
	}
	r = bootparams_build(&vm->mem, &k, LAYOUT_CMDLINE,
			     (uint32_t)strlen(cmdline), initrd_gpa, ilen, rsdp,
			     &bp);
	if (r < 0) {
		log_err("building boot_params: %s", strerror(-r));
		goto out;
	}
	if (guest_mem_write(&vm->mem, LAYOUT_BOOT_PARAMS, &bp, sizeof(bp)) < 0) {
		r = -EFAULT;
		goto out;
	}
	r = vm_setup_long_mode(vm, k.entry, LAYOUT_BOOT_PARAMS);
	if (r < 0)
		log_err("setting up the boot vCPU: %s", strerror(-r));
out:
	free(kbuf);
	free(ibuf);
	free(cmdline);
	return r;
}

/* ---- firmware boot (--firmware) ---------------------------------- */

/*
 * How long SeaBIOS waits after "No bootable device" before it reboots,
 * which ends vmm-run with EXIT_REBOOT.
 */
#define FIRMWARE_BOOT_FAIL_WAIT_MS 5000

/*
 * Map the BIOS image and put the boot vCPU at its reset vector; the
 * firmware prints on COM1 and its debug port goes to --firmware-log.
 */
static int
setup_firmware(struct vmm *m)
{
	struct firmware_config fc;
	uint8_t *img = NULL;
	size_t len = 0;
	char err[256] = "";
	int log_fd = -1, r;

	r = read_file("firmware", m->opt.firmware, &img, &len);
	if (r < 0)
		return r;
	if (m->opt.firmware_log) {
		log_fd = open(m->opt.firmware_log, O_WRONLY | O_CREAT |
			      O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
		if (log_fd < 0) {
			r = -errno;
			log_err("--firmware-log '%s': %s", m->opt.firmware_log,
				strerror(-r));
			goto out;
		}
	}
	memset(&fc, 0, sizeof(fc));
	fc.image = img;
	fc.image_size = len;
	fc.debug_fd = log_fd;
	fc.serial_port = PORT_COM1;
	fc.boot_fail_wait_ms = FIRMWARE_BOOT_FAIL_WAIT_MS;
	r = firmware_new(m->vm, &fc, &m->fw, err, sizeof(err));
	if (r < 0) {
		log_err("firmware '%s': %s", m->opt.firmware, err);
		if (log_fd >= 0)
			close(log_fd);
	}
	/* On success log_fd stays open for the life of the VM. */
out:
	free(img);
	return r;
}

/* ---- end of firmware boot ------------------------------------------- */

/* The console hub feeds client input to the UART and takes its output. */
static size_t
hub_input(void *opaque, const uint8_t *buf, size_t len)
{
	struct vmm *m = opaque;

	return uart8250_input(m->uart, buf, len);
}

static void
hub_output(void *opaque, const uint8_t *buf, size_t len)
{
	conhub_write(opaque, buf, len);
}

static int
setup_devices(struct vmm *m)
{
	struct vm *vm = m->vm;
	uint64_t low = vm->mem.regions[0].size;
	uint64_t high = vm->mem.nr_regions > 1 ? vm->mem.regions[1].size : 0;

	m->uart = uart8250_new(&vm->pio, PORT_COM1, IRQ_COM1, &vm->platform,
			       m->console_fd);
	if (m->uart && m->opt.console_socket) {
		int r = conhub_new(m->opt.console_history, hub_input, m,
				   uart8250_input_eventfd(m->uart), &m->hub);

		if (r == 0)
			r = conhub_listen(m->hub, m->opt.console_socket);
		if (r < 0) {
			log_err("--console-socket '%s': %s",
				m->opt.console_socket, strerror(-r));
			return r;
		}
		uart8250_set_output_cb(m->uart, hub_output, m->hub);
	}
	m->i8042 = i8042_new(&vm->pio, &vm->platform);
	m->rtc = rtc_new(&vm->pio, &vm->platform, low, high, vm->nr_vcpus);
	m->pci = pci_host_new(&vm->pio, &vm->mmio, &vm->platform);
	m->pm = acpi_pm_new(&vm->pio, &vm->platform);
	if (!m->uart || !m->i8042 || !m->rtc || !m->pci || !m->pm) {
		log_err("setting up the platform devices failed");
		return -ENOMEM;
	}
	return 0;
}

/*
 * Put a virtio device on the PCI bus behind a modern virtio-pci function,
 * in the lowest free slot, with an expansion ROM (copied) or none. Its
 * INTA# drives the GSI layout_pci_intx_gsi() gives that slot, the one the
 * DSDT's _PRT names: the transport takes its sink when it is created, so
 * the slot is chosen first (devices are added by this thread only).
 */
static int
attach_virtio_rom(struct vmm *m, struct virtio_device *vdev, const char *what,
		  const void *rom, size_t rom_size)
{
	struct virtio_pci_config pc = { .rom = rom, .rom_size = rom_size };
	struct virtio_pci_sink sink;
	struct pci_device *pd;
	struct virtio_pci *vp;
	unsigned int gsi = 0;
	int r;

	r = pci_host_free_slot(m->pci);
	if (r >= 0) {
		gsi = layout_pci_intx_gsi((unsigned int)r, 0);
		irq_router_sink(m->router, gsi, &sink);
		pc.slot = r;
		pc.sink = &sink;
		r = virtio_pci_new(m->pci, vdev, &pc, &vp);
	}
	if (r < 0) {
		log_err("%s: attaching to PCI: %s", what, strerror(-r));
		return r;
	}
	/*
	 * What firmware would have written: the line the pin is routed to.
	 * Linux takes the routing from _PRT; the guest may overwrite it.
	 */
	pd = virtio_pci_device(vp);
	pthread_mutex_lock(&pd->lock);
	if (pci_cfg_get8(pd, PCI_INTERRUPT_PIN))
		pci_cfg_set8(pd, PCI_INTERRUPT_LINE, (uint8_t)gsi);
	pthread_mutex_unlock(&pd->lock);
	return 0;
}

static int
attach_virtio(struct vmm *m, struct virtio_device *vdev, const char *what)
{
	return attach_virtio_rom(m, vdev, what, NULL, 0);
}

/*
 * Parse "PATH[,ro][,serial=S][,direct]" into o; o->path and o->serial
 * point into buf (a copy of the argument). 0 or -EINVAL with a message.
 */
/*
 * One I/O limit of --disk: bps= and bps_burst= take sizes (512K, 10M, or
 * bytes), iops= and iops_burst= counts. 0, or -EINVAL when tok is none.
 */
static int
parse_disk_limit(const char *tok, struct ratelimit_limits *l)
{
	static const struct {
		const char *key;
		bool size;
		size_t off;
	} keys[] = {
		{ "bps=", true, offsetof(struct ratelimit_limits, bytes_per_sec) },
		{ "bps_burst=", true, offsetof(struct ratelimit_limits, bytes_burst) },
		{ "iops=", false, offsetof(struct ratelimit_limits, ops_per_sec) },
		{ "iops_burst=", false, offsetof(struct ratelimit_limits, ops_burst) },
	};
	unsigned int i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		size_t n = strlen(keys[i].key);
		uint64_t v;
		char *end;

		if (strncmp(tok, keys[i].key, n) != 0)
			continue;
		if (keys[i].size) {
			if (size_parse(tok + n, &v) < 0)
				return -EINVAL;
		} else {
			errno = 0;
			v = strtoull(tok + n, &end, 10);
			if (errno || end == tok + n || *end || tok[n] == '-')
				return -EINVAL;
		}
		*(uint64_t *)((char *)l + keys[i].off) = v;
		return 0;
	}
	return -EINVAL;
}

static int
parse_disk(char *buf, struct blk_options *o)
{
	char *save = NULL, *tok;

	memset(o, 0, sizeof(*o));
	o->path = strtok_r(buf, ",", &save);
	if (!o->path || !*o->path) {
		log_err("--disk: no image path given");
		return -EINVAL;
	}
	while ((tok = strtok_r(NULL, ",", &save))) {
		if (strcmp(tok, "ro") == 0)
			o->readonly = true;
		else if (strcmp(tok, "direct") == 0)
			o->direct = true;
		else if (strncmp(tok, "serial=", 7) == 0)
			o->serial = tok + 7;
		else if (parse_disk_limit(tok, &o->limits) == 0)
			continue;
		else {
			log_err("--disk '%s': unknown or bad option '%s' "
				"(expected ro, serial=S, direct, bps=SIZE, "
				"bps_burst=SIZE, iops=N or iops_burst=N)",
				o->path, tok);
			return -EINVAL;
		}
	}
	return 0;
}

static int
setup_disks(struct vmm *m)
{
	unsigned int i;
	int r;

	for (i = 0; i < m->opt.nr_disks; i++) {
		struct blk_options o;
		char err[256] = "";
		char *buf = strdup(m->opt.disks[i]);

		if (!buf)
			return -ENOMEM;
		r = parse_disk(buf, &o);
		if (r == 0) {
			r = blk_new(&o, &m->vm->mem, &m->blks[i], err,
				    sizeof(err));
			if (r < 0)
				log_err("--disk: %s", err);
		}
		free(buf);	/* blk_new copied what it keeps */
		if (r < 0)
			return r;
		r = attach_virtio(m, blk_virtio(m->blks[i]), "virtio-blk");
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * The NIC's expansion ROM (--net ...,rom=PATH): read whole at start, at most
 * the 16 MiB a ROM BAR can hold. A ROM the firmware will not run on this
 * device (another device's ids, a bad checksum) is only warned about: the
 * guest still sees it in the ROM BAR, as it would on real hardware.
 * 0 or -errno, with a message naming the file.
 */
static int
read_nic_rom(const char *arg, const char *path, uint8_t **ret, size_t *ret_len)
{
	char err[256] = "";
	struct stat st;
	int r;

	if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size > VIRTIO_PCI_ROM_MAX) {
		log_err("--net '%s': rom '%s': too large (%lld bytes; a ROM "
			"BAR holds at most 16 MiB)", arg, path,
			(long long)st.st_size);
		return -EFBIG;
	}
	r = read_file("--net rom", path, ret, ret_len);
	if (r < 0)
		return r;
	if (*ret_len > VIRTIO_PCI_ROM_MAX) {	/* it grew since the stat */
		log_err("--net '%s': rom '%s': too large (%zu bytes; a ROM "
			"BAR holds at most 16 MiB)", arg, path, *ret_len);
		free(*ret);
		*ret = NULL;
		return -EFBIG;
	}
	if (virtio_pci_rom_check(*ret, *ret_len, VIRTIO_ID_NET, err,
				 sizeof(err)) < 0)
		log_warn("--net '%s': the firmware will not run rom '%s': %s",
			 arg, path, err);
	return 0;
}

/*
 * One limit of --net: rx_ (to the guest) or tx_ (from it), then bps=SIZE,
 * bps_burst=SIZE, pps=N or pps_burst=N: --disk's bps and iops, packets
 * being a NIC's operations. 0, or -EINVAL when tok is none.
 */
static int
parse_net_limit(const char *tok, struct net_options *o)
{
	struct ratelimit_limits *l;
	char disk[64];

	if (strncmp(tok, "rx_", 3) == 0)
		l = &o->rx_limits;
	else if (strncmp(tok, "tx_", 3) == 0)
		l = &o->tx_limits;
	else
		return -EINVAL;
	tok += 3;
	if (strncmp(tok, "bps", 3) == 0)
		return parse_disk_limit(tok, l);
	if (strncmp(tok, "pps", 3) != 0 ||
	    (size_t)snprintf(disk, sizeof(disk), "io%s", tok + 1) >=
	    sizeof(disk))
		return -EINVAL;
	return parse_disk_limit(disk, l);	/* pps... as iops... */
}

/* "tap=NAME[,mac=MAC][,rom=PATH][,LIMIT...]" or "fd=N[,...]"; the NIC's
 * index seeds its MAC. */
static int
setup_nic(struct vmm *m, unsigned int index)
{
	struct net_options o = { .tap_fd = -1 };
	char *buf = strdup(m->opt.nets[index]), *save = NULL, *tok;
	char seed[64], err[256] = "";
	const char *rom_path = NULL;
	uint8_t mac[6], *rom = NULL;
	size_t rom_len = 0;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (tok = strtok_r(buf, ",", &save); tok && r == 0;
	     tok = strtok_r(NULL, ",", &save)) {
		char *end;

		if (strncmp(tok, "tap=", 4) == 0 && tok[4]) {
			o.tap = tok + 4;
		} else if (strncmp(tok, "fd=", 3) == 0 && tok[3]) {
			errno = 0;
			o.tap_fd = (int)strtol(tok + 3, &end, 10);
			if (errno || *end || o.tap_fd < 0) {
				log_err("--net '%s': fd '%s' is not a number",
					m->opt.nets[index], tok + 3);
				r = -EINVAL;
			}
		} else if (strncmp(tok, "mac=", 4) == 0) {
			if (net_parse_mac(tok + 4, mac) < 0) {
				log_err("--net '%s': mac '%s' is not a unicast "
					"MAC address", m->opt.nets[index], tok + 4);
				r = -EINVAL;
			}
			o.mac = mac;
		} else if (strncmp(tok, "rom=", 4) == 0 && tok[4]) {
			rom_path = tok + 4;
		} else if (parse_net_limit(tok, &o) < 0) {
			log_err("--net '%s': unknown or bad option '%s' "
				"(expected tap=NAME, fd=N, mac=MAC, rom=PATH, "
				"rx_ or tx_ bps=SIZE, bps_burst=SIZE, pps=N or "
				"pps_burst=N)", m->opt.nets[index], tok);
			r = -EINVAL;
		}
	}
	if (r == 0 && !o.tap == (o.tap_fd < 0)) {
		log_err("--net '%s': give exactly one of tap=NAME or fd=N",
			m->opt.nets[index]);
		r = -EINVAL;
	}
	/* Before the TAP: a bad file is the first thing to hear about. */
	if (r == 0 && rom_path)
		r = read_nic_rom(m->opt.nets[index], rom_path, &rom, &rom_len);
	if (r == 0) {
		/* Stable across restarts of the same VM: its kernel and
		 * the NIC's position. */
		snprintf(seed, sizeof(seed), "%s/%u",
			 m->opt.kernel ? m->opt.kernel : "firmware", index);
		o.mac_seed = seed;
		r = net_new(&m->vm->mem, &o, &m->nics[index], err, sizeof(err));
		if (r < 0)
			log_err("--net: %s", err);
	}
	free(buf);
	/* The transport copies the ROM into its ROM BAR. */
	if (r == 0)
		r = attach_virtio_rom(m, net_virtio(m->nics[index]),
				      "virtio-net", rom, rom_len);
	free(rom);
	return r;
}

/*
 * "cid=N,uds=PATH[,timeout=MS]": the guest's CID, the host side's UNIX
 * socket, and how long a host process's command line or the guest's
 * answer to a connect may take.
 */
static int
setup_vsock(struct vmm *m)
{
	struct vsock_options o = { 0 };
	char *buf = strdup(m->opt.vsock), *save = NULL, *tok, *end;
	char err[256] = "";
	unsigned long long ms;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (tok = strtok_r(buf, ",", &save); tok && r == 0;
	     tok = strtok_r(NULL, ",", &save)) {
		if (strncmp(tok, "cid=", 4) == 0) {
			errno = 0;
			o.guest_cid = strtoull(tok + 4, &end, 10);
			if (errno || *end || end == tok + 4) {
				log_err("--vsock: cid '%s' is not a number",
					tok + 4);
				r = -EINVAL;
			}
		} else if (strncmp(tok, "uds=", 4) == 0 && tok[4]) {
			o.uds_path = tok + 4;
		} else if (strncmp(tok, "timeout=", 8) == 0) {
			/* strtoull alone would take " 5" and "-5". */
			errno = 0;
			ms = strtoull(tok + 8, &end, 10);
			if (tok[8] < '0' || tok[8] > '9' || *end) {
				log_err("--vsock: timeout '%s' is not a number "
					"of milliseconds", tok + 8);
				r = -EINVAL;
			} else if (errno || ms == 0 || ms > VSOCK_TIMEOUT_MAX) {
				log_err("--vsock: timeout %s ms: must be "
					"between 1 and %u (an hour)", tok + 8,
					VSOCK_TIMEOUT_MAX);
				r = -EINVAL;
			} else {
				o.connect_timeout_ms = (unsigned int)ms;
			}
		} else {
			log_err("--vsock '%s': unknown option '%s' (expected "
				"cid=N,uds=PATH[,timeout=MS])", m->opt.vsock,
				tok);
			r = -EINVAL;
		}
	}
	if (r == 0 && (!o.guest_cid || !o.uds_path)) {
		log_err("--vsock '%s': needs both cid=N and uds=PATH",
			m->opt.vsock);
		r = -EINVAL;
	}
	if (r == 0) {
		r = vsock_new(&m->vm->mem, &o, err, sizeof(err), &m->vsock);
		if (r < 0)
			log_err("--vsock: %s", err);
	}
	free(buf);
	if (r < 0)
		return r;
	return attach_virtio(m, vsock_virtio(m->vsock), "virtio-vsock");
}

static int
setup_virtio(struct vmm *m)
{
	struct vm *vm = m->vm;
	int r;

	m->router = irq_router_new(vm);
	if (!m->router) {
		log_err("interrupt routing for virtio: %s", strerror(errno));
		return -errno;
	}
	if (!m->opt.no_rng) {
		r = rng_new(&vm->mem, &m->rng);
		if (r < 0) {
			log_err("virtio-rng: %s", strerror(-r));
			return r;
		}
		r = attach_virtio(m, rng_virtio(m->rng), "virtio-rng");
		if (r < 0)
			return r;
	}
	r = setup_disks(m);
	if (r < 0)
		return r;
	for (unsigned int i = 0; i < m->opt.nr_nets; i++) {
		r = setup_nic(m, i);
		if (r < 0)
			return r;
	}
	if (m->opt.vsock) {
		r = setup_vsock(m);
		if (r < 0)
			return r;
	}
	if (m->opt.balloon) {
		r = balloon_new(&vm->mem, NULL, &m->balloon);
		if (r < 0) {
			log_err("virtio-balloon: %s", strerror(-r));
			return r;
		}
		r = attach_virtio(m, balloon_virtio(m->balloon),
				  "virtio-balloon");
		if (r < 0)
			return r;
	}
	if (m->opt.virtio_console) {
		struct console_options co = { .in_fd = -1, .out_fd = -1 };
		const char *c = m->opt.virtio_console;
		int fd = -1;

		if (strcmp(c, "stdio") == 0) {
			if (pipe2(m->vcon_in, O_CLOEXEC) < 0)
				return -errno;
			co.in_fd = m->vcon_in[0];
			co.out_fd = STDOUT_FILENO;
		} else {
			fd = open(c + 5, O_WRONLY | O_CREAT | O_TRUNC |
				  O_APPEND | O_CLOEXEC, 0640);
			if (fd < 0) {
				log_err("--virtio-console '%s': %s", c,
					strerror(errno));
				return -errno;
			}
			co.out_fd = fd;
		}
		r = console_new(&vm->mem, &co, &m->vcon);
		if (fd >= 0)
			close(fd);	/* the device keeps its own copy */
		if (r < 0) {
			log_err("virtio-console: %s", strerror(-r));
			return r;
		}
		r = attach_virtio(m, console_virtio(m->vcon), "virtio-console");
		if (r < 0)
			return r;
	}
	return 0;
}

static void
print_stats(struct vmm *m)
{
	struct kvm_stats_values ks;
	unsigned int i, k;

	fprintf(stderr, "vmm-run: exits per vCPU:\n");
	for (i = 0; i < m->vm->nr_vcpus; i++) {
		const struct vcpu_stats *s = &m->vm->vcpus[i].stats;

		struct kvm_regs regs;

		fprintf(stderr, "  vcpu%u: runs=%llu", i,
			(unsigned long long)s->runs);
		/* Where it was when the VM stopped: the first thing to know
		 * about a guest that hangs. */
		if (ioctl(m->vm->vcpus[i].fd, KVM_GET_REGS, &regs) == 0)
			fprintf(stderr, " rip=0x%llx",
				(unsigned long long)regs.rip);
		for (k = 0; k < VCPU_EXIT_MAX; k++)
			if (s->exits[k])
				fprintf(stderr, " %s=%llu",
					vcpu_exit_kind_name(k),
					(unsigned long long)s->exits[k]);
		if (s->pvm_syscalls)
			fprintf(stderr, " pvm_syscalls=%llu",
				(unsigned long long)s->pvm_syscalls);
		fputc('\n', stderr);
		/* KVM's own view of the same vCPU: its exits, and on PVM
		 * insn_emulation, which is what a slow guest kernel costs. */
		if (vcpu_kvm_stats(&m->vm->vcpus[i], &ks) < 0)
			continue;
		fprintf(stderr, "    kvm:");
		for (k = 0; k < KVM_STATS_MAX; k++)
			if (ks.present & (1u << k))
				fprintf(stderr, " %s=%llu", kvm_stats_name(k),
					(unsigned long long)ks.value[k]);
		fputc('\n', stderr);
	}
	fprintf(stderr, "  unowned: pio=%llu mmio=%llu\n",
		(unsigned long long)bus_unowned_count(&m->vm->pio),
		(unsigned long long)bus_unowned_count(&m->vm->mmio));
}

int
main(int argc, char **argv)
{
	struct vmm m;
	struct vm_config cfg;
	char err[256] = "", tag[80];
	enum vm_stop_reason reason;
	sigset_t set;
	pthread_t sigt;
	int r, code;

	memset(&m, 0, sizeof(m));
	m.console_fd = -1;
	m.vcon_in[0] = m.vcon_in[1] = -1;
	the_vmm = &m;
	log_set_tag("vmm-run");
	code = parse_args(argc, argv, &m.opt);
	if (code)
		return code;
	if (m.opt.name) {
		snprintf(tag, sizeof(tag), "vm/%s", m.opt.name);
		log_set_tag(tag);
	}
	if (check_memory(&m.opt))
		return EXIT_USAGE;
	if (m.opt.kernel && access(m.opt.kernel, R_OK) < 0) {
		log_err("kernel '%s': %s", m.opt.kernel, strerror(errno));
		return EXIT_USAGE;
	}
	if (m.opt.initrd && access(m.opt.initrd, R_OK) < 0) {
		log_err("initrd '%s': %s", m.opt.initrd, strerror(errno));
		return EXIT_USAGE;
	}
	if (console_open(&m) < 0)
		return EXIT_USAGE;

	/* Signals go to one thread; vCPU threads take only their kick. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&cfg, 0, sizeof(cfg));
	cfg.nr_vcpus = m.opt.cpus;
	cfg.ram_size = m.opt.memory;
	cfg.pvm_workarounds = true;
	cfg.no_syscall_bridge = m.opt.no_syscall_bridge;
	r = vm_new(&cfg, &m.vm, err, sizeof(err));
	if (r < 0) {
		log_err("%s", err);
		return EXIT_USAGE;
	}
	if (m.vm->is_pvm)
		log_info("host KVM is PVM (no hardware virtualization): guest "
			 "kernel code runs emulated, many times slower; "
			 "instructions the host cannot emulate are carried "
			 "out by vmm-run%s", m.opt.no_pvm_cmdline ? "" :
			 ", and the guest command line gets the PVM switches");
	if (setup_devices(&m) < 0 || setup_virtio(&m) < 0 ||
	    (m.opt.firmware ? setup_firmware(&m) : setup_boot(&m)) < 0) {
		code = EXIT_USAGE;
		goto out;
	}
	if (pthread_create(&sigt, NULL, signal_thread, &m) != 0) {
		code = EXIT_INTERNAL;
		goto out;
	}
	pthread_detach(sigt);
	if (m.opt.control &&
	    vmm_ctl_start(&m, m.opt.control, err, sizeof(err)) < 0) {
		log_err("--control '%s': %s", m.opt.control, err);
		code = EXIT_USAGE;
		goto out;
	}
	m.start_ns = vmm_now_ns();
	if (console_start_input(&m) < 0 || vm_start(m.vm) < 0) {
		log_err("cannot start threads");
		code = EXIT_INTERNAL;
		vm_request_stop(m.vm, VM_STOP_ERROR, "cannot start threads");
	}
	reason = vm_wait(m.vm);
	console_restore();
	if (m.ctl)
		vmm_ctl_notify_state(m.ctl, "stopped");
	switch (reason) {
	case VM_STOP_POWEROFF:
		code = EXIT_POWEROFF;
		log_info("guest powered off");
		break;
	case VM_STOP_REBOOT:
		code = EXIT_REBOOT;
		log_info("guest asked to reboot (%s)", m.vm->stop_message);
		break;
	case VM_STOP_CRASH:
		code = EXIT_CRASH;
		log_err("guest crashed: %s", m.vm->stop_message);
		break;
	case VM_STOP_SIGNAL:
		/* 128 + signal, as a shell reports it; Ctrl-A x is 0. */
		code = m.signo ? 128 + m.signo : EXIT_POWEROFF;
		log_info("stopped: %s", m.vm->stop_message);
		break;
	default:
		code = EXIT_INTERNAL;
		log_err("stopped on an error: %s", m.vm->stop_message);
		break;
	}
	if (m.opt.stats)
		print_stats(&m);
	/* The sockets go with the VM (the threads that use the VM are
	 * stopped by now). */
	vmm_ctl_stop(m.ctl);
	conhub_free(m.hub);
out:
	console_restore();
	fflush(NULL);
	/* Detached threads (console input, signals) may still hold
	 * pointers into the VM: exit without tearing it down. */
	_exit(code);
}
