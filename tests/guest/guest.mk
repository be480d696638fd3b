# Test guests built from source, included by the root Makefile.
#
# tiny/*.S: flat binaries of a few instructions, each loaded at guest-physical
# 0x1000 and entered in 32-bit protected mode without paging
# (tests/integration/test_tiny.c).
# testguest/: a freestanding 64-bit C kernel, an ELF executable loaded at
# 2 MiB and entered like a vmlinux (tests/integration/test_vmmrun.sh).
#
# On hosts without VT-x/AMD-V every instruction of a guest kernel is
# emulated (~1 us each), so these stay small on purpose.

GUEST_TESTS_DIR := $(BUILD)/guest-tests
GUEST_AS_FLAGS := -m32 -nostdinc -Wall -Werror
GUEST_LD ?= ld
GUEST_OBJCOPY ?= objcopy

TINY_SRCS := $(wildcard tests/guest/tiny/*.S)
TINY_BINS := $(patsubst tests/guest/tiny/%.S,$(GUEST_TESTS_DIR)/tiny/%.bin,\
	$(TINY_SRCS))

# Only .text goes into the flat binary: the tiny guests keep their data
# (the IDT pointer of triple.S) inside it.
$(GUEST_TESTS_DIR)/tiny/%.bin: tests/guest/tiny/%.S tests/guest/guest.mk
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  GUEST   $@")
	$(Q)$(CC) $(GUEST_AS_FLAGS) -c $< -o $(@:.bin=.o)
	$(Q)$(GUEST_LD) -m elf_i386 -Ttext=0x1000 -e _start \
		-o $(@:.bin=.elf) $(@:.bin=.o)
	$(Q)$(GUEST_OBJCOPY) -O binary -j .text $(@:.bin=.elf) $@

TESTGUEST_DIR := tests/guest/testguest
TESTGUEST_CSRCS := $(wildcard $(TESTGUEST_DIR)/*.c)
TESTGUEST_SSRCS := $(wildcard $(TESTGUEST_DIR)/*.S)
TESTGUEST_OBJS := $(patsubst $(TESTGUEST_DIR)/%.c,$(GUEST_TESTS_DIR)/testguest/%.o,\
	$(TESTGUEST_CSRCS)) \
	$(patsubst $(TESTGUEST_DIR)/%.S,$(GUEST_TESTS_DIR)/testguest/%.o,\
	$(TESTGUEST_SSRCS))
TESTGUEST_ELF := $(GUEST_TESTS_DIR)/testguest.elf

# No SSE, no red zone, no stack protector, no CET landing pads and no
# unwind tables: the guest has nothing set up for any of them, and every
# instruction costs ~1 us where kernel mode is emulated.
TESTGUEST_CFLAGS := -std=gnu17 -m64 -ffreestanding -fno-pic -fno-pie \
	-fno-stack-protector -fno-builtin -fcf-protection=none \
	-fno-asynchronous-unwind-tables -fno-unwind-tables \
	-mno-red-zone -mno-sse -mno-sse2 -mno-mmx -mno-avx -mno-80387 \
	-mgeneral-regs-only -mcmodel=small \
	-falign-functions=1 -falign-jumps=1 -falign-loops=1 -falign-labels=1 \
	-nostdlib -static -O2 \
	-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wpointer-arith -Wcast-qual -Wwrite-strings \
	-Wundef -MMD -MP
TESTGUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none \
	-Wl,-z,max-page-size=0x1000 -Wl,-z,noexecstack \
	-Wl,-T,$(TESTGUEST_DIR)/testguest.ld

$(GUEST_TESTS_DIR)/testguest/%.o: $(TESTGUEST_DIR)/%.c tests/guest/guest.mk
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  GUESTCC $<")
	$(Q)$(CC) $(TESTGUEST_CFLAGS) -c $< -o $@

$(GUEST_TESTS_DIR)/testguest/%.o: $(TESTGUEST_DIR)/%.S tests/guest/guest.mk
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  GUESTAS $<")
	$(Q)$(CC) $(TESTGUEST_CFLAGS) -c $< -o $@

$(TESTGUEST_ELF): $(TESTGUEST_OBJS) $(TESTGUEST_DIR)/testguest.ld
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  GUESTLD $@")
	$(Q)$(CC) $(TESTGUEST_CFLAGS) $(TESTGUEST_LDFLAGS) -o $@ $(TESTGUEST_OBJS)

TEST_GUESTS := $(TINY_BINS) $(TESTGUEST_ELF)

.PHONY: guest-tests
guest-tests: $(TEST_GUESTS)

# The benchmark guest image: $(BUILD)/guest/initrd-bench.img, the reference
# initramfs followed by a second archive with fio, iperf3, the libraries
# they load and /bin/vmmd-bench (bench/guest_bench.sh), from Debian's
# packages; cached like the reference guest (scripts/mkguest-bench.sh).
# bench/run.sh boots it only on hardware virtualization (or BENCH_GUEST=1),
# and `make bench` builds it only then (bench/bench.mk).
.PHONY: guest-bench
guest-bench: guest
	$(Q)scripts/mkguest-bench.sh $(BUILD)/guest
