# Benchmark programs and the benchmark guest, included by the root Makefile
# (after tests/guest/guest.mk). bench/run.sh runs them; see bench/README.md.
#
# firstline: times a VMM from its exec to a guest's console output, and
#   samples its memory beyond guest RAM.
# exits_vmm / exits_bare: port-I/O exits through vmm-core, and through a
#   bare raw-ioctl KVM_RUN loop, on the same guest (outloop.bin).
# emu_floor: what one guest kernel instruction costs on this host (raw
#   ioctls; emulated on a PVM host), beside vmm-run's cost per emulated
#   instruction on the way to the Debian kernel's first line.
# blk_bench: virtio-blk (4 KiB random reads at QD32, 1 MiB sequential) beside
#   a bare io_uring loop on the same O_DIRECT file.
# net_bench: virtio-net (64 B, 1514 B, 64 KiB TSO frames each way) beside a
#   bare loop on the same TAP, in a network namespace of its own (root).
# vsock_bench: vsock streams each way beside a bare UNIX socket pair.
# noisy_bench: virtio-blk limits among noisy neighbours (a limited disk
#   beside an unlimited one hammering the same disk), the rate a limited
#   disk achieves for 10 ms and 1 s refill times, and the same for a
#   limited virtio-net each way (a TAP in a network namespace of its own,
#   root).
# rpc_bench: vmmd's RPC latency and throughput (vm.list over the UNIX socket
#   and TLS) and its VM start rate, against a daemon run.sh starts.

BENCH_DIR := $(BUILD)/bench
BENCH_AS_FLAGS := -m32 -nostdinc -Wall -Werror
BENCH_LD ?= ld
BENCH_OBJCOPY ?= objcopy

BENCH_BINS := $(BENCH_DIR)/firstline $(BENCH_DIR)/exits_bare \
	$(BENCH_DIR)/exits_vmm $(BENCH_DIR)/outloop.bin $(BENCH_DIR)/blk_bench \
	$(BENCH_DIR)/net_bench $(BENCH_DIR)/vsock_bench $(BENCH_DIR)/rpc_bench \
	$(BENCH_DIR)/noisy_bench $(BENCH_DIR)/emu_floor

$(BENCH_DIR)/firstline: $(OBJ)/bench/firstline.o
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^

$(BENCH_DIR)/exits_bare: $(OBJ)/bench/exits_bare.o
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^

$(BENCH_DIR)/emu_floor: $(OBJ)/bench/emu_floor.o
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^

$(BENCH_DIR)/exits_vmm: $(OBJ)/bench/exits_vmm.o $(BUILD)/libvmmcore.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(CORE_LIBS) -pthread

# virtio-blk through the driver harness beside a bare io_uring loop.
$(BENCH_DIR)/blk_bench: $(OBJ)/bench/blk_bench.o \
		$(OBJ)/tests/unit/helpers/virtio_harness.o $(BUILD)/libvmmcore.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(CORE_LIBS) -pthread

# virtio-net and vsock through the driver harness beside bare loops.
$(BENCH_DIR)/net_bench: $(OBJ)/bench/net_bench.o \
		$(OBJ)/tests/unit/helpers/virtio_harness.o $(BUILD)/libvmmcore.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(CORE_LIBS) -pthread

$(BENCH_DIR)/vsock_bench: $(OBJ)/bench/vsock_bench.o \
		$(OBJ)/tests/unit/helpers/virtio_harness.o $(BUILD)/libvmmcore.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(CORE_LIBS) -pthread

# virtio-blk and virtio-net limits through the driver harness.
$(BENCH_DIR)/noisy_bench: $(OBJ)/bench/noisy_bench.o \
		$(OBJ)/tests/unit/helpers/virtio_harness.o $(BUILD)/libvmmcore.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(CORE_LIBS) -pthread

# A client of vmmd: proto/ only, like vmctl.
$(BENCH_DIR)/rpc_bench: $(OBJ)/bench/rpc_bench.o $(BUILD)/libproto.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(PROTO_LIBS) -pthread

# A flat binary loaded at 0x1000, like the tiny test guests.
$(BENCH_DIR)/outloop.bin: bench/outloop.S bench/bench.mk
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  GUEST   $@")
	$(Q)$(CC) $(BENCH_AS_FLAGS) -c $< -o $(@:.bin=.o)
	$(Q)$(BENCH_LD) -m elf_i386 -Ttext=0x1000 -e _start \
		-o $(@:.bin=.elf) $(@:.bin=.o)
	$(Q)$(BENCH_OBJCOPY) -O binary -j .text $(@:.bin=.elf) $@

.PHONY: bench-build
bench-build: $(BENCH_BINS)

# The root Makefile's `bench` recipe runs bench/run.sh; these are its
# programs.
bench: $(BENCH_BINS)

# The in-guest fio and iperf3 comparisons (bench/run.sh sections 5 and 6)
# boot the bench guest image; it is built only when they will run: with
# BENCH_GUEST=1, or on a host with hardware virtualization (no kvm_pvm
# module) unless BENCH_GUEST=0, and when BENCH_ONLY (if set) has blk or
# net.
bench_comma := ,
BENCH_GUEST_ON := $(if $(filter 1,$(BENCH_GUEST)),1,$(if $(filter 0,$(BENCH_GUEST)),,$(if $(wildcard /sys/module/kvm_pvm),,1)))
BENCH_GUEST_SECTIONS := $(if $(BENCH_ONLY),$(filter blk net,$(subst $(bench_comma), ,$(BENCH_ONLY))),all)
ifneq ($(and $(BENCH_GUEST_ON),$(BENCH_GUEST_SECTIONS)),)
bench: guest-bench
endif
