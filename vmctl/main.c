/* SPDX-License-Identifier: MIT */
/* vmctl: the command-line client of vmmd. Everything is in run.c and cmd.c. */
#include "vmctl/run.h"

int
main(int argc, char *argv[])
{
	return run_main(argc, argv);
}
