/* SPDX-License-Identifier: MIT */
/* What entry.S and main.c share. */
#ifndef TESTGUEST_H
#define TESTGUEST_H

#include <stdint.h>

/* Called by _start with RSI (the boot_params address) as its argument. */
void testguest_main(uint64_t boot_params) __attribute__((noreturn));
/* cli; hlt forever. */
void testguest_halt_forever(void) __attribute__((noreturn));
/* Load a zero-limit IDT and raise a breakpoint: a triple fault. */
void testguest_triple_fault(void) __attribute__((noreturn));

#endif
