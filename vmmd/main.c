/* SPDX-License-Identifier: MIT */
/*
 * vmmd [--config FILE] [--foreground]: the VM host daemon. Everything but
 * the command line lives in the other files of vmmd/, where the unit
 * tests reach it.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmmd/config.h"
#include "vmmd/daemon.h"
#include "vmmd/log.h"

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: vmmd [--config FILE] [--foreground]\n"
		"\n"
		"Runs KVM virtual machines, one vmm-run process each, driven by\n"
		"vmctl over %s (and TLS when configured).\n"
		"  --config FILE   the configuration (default %s when it\n"
		"                  exists, else built-in defaults)\n"
		"  --foreground    stay in the foreground (vmmd always does;\n"
		"                  run it under systemd, Type=notify)\n"
		"  --version       print the version\n",
		CONFIG_SOCKET_DEFAULT, CONFIG_DEFAULT_PATH);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = NULL;
	char self[PATH_MAX], err[1024];
	bool foreground = false;
	struct config *cfg;
	struct vmmd *d;
	ssize_t n;
	int c, r;

	while ((c = getopt_long(argc, argv, "c:fhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config_path = optarg; break;
		case 'f': foreground = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("vmmd %s\n", VMMD_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vmmd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!config_path && access(CONFIG_DEFAULT_PATH, F_OK) == 0)
		config_path = CONFIG_DEFAULT_PATH;
	r = config_path ? config_load(config_path, &cfg, err, sizeof(err)) :
			  config_new(&cfg);
	if (r < 0) {
		log_error("config", "%s", r == -ENOMEM ? "out of memory" : err);
		return 2;
	}
	if (!foreground)
		log_info("daemon", "staying in the foreground (a service "
			 "manager such as systemd keeps it running; "
			 "--foreground says so)");
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = '\0';
	r = daemon_new(cfg, self, &d, err, sizeof(err));
	if (r < 0) {
		log_error("daemon", "%s", err[0] ? err : strerror(-r));
		return 1;
	}
	r = daemon_run(d);
	daemon_free(d);
	return r < 0 ? 1 : 0;
}
