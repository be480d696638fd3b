# vmmd: a host service that runs many KVM virtual machines.
# Non-recursive: every module's sources are picked up by wildcard, so adding
# a file touches no Makefile. `make help` lists the targets.

PREFIX ?= /usr/local
DESTDIR ?=
BUILD ?= build
CC ?= gcc
V ?= 0
Q := $(if $(filter 1,$(V)),,@)

WARN := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wpointer-arith -Wcast-qual -Wwrite-strings -Wundef
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
BASE_CFLAGS := -std=gnu17 -D_GNU_SOURCE -g -O2 -mcx16 -pthread -MMD -MP $(WARN)
CFLAGS ?=
LDFLAGS ?=
HARDEN_LD := -pie -Wl,-z,relro,-z,now
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

CORE_LIBS := -lz -llzma -llz4 -lzstd -lbz2 -luring -lpthread
TEST_LIBS := -lcmocka
# proto/ (and what links it: vmm-run, vmmd, vmctl) uses jansson, libevent
# and OpenSSL; vmm-core never does.
PROTO_LIBS := -ljansson -levent_openssl -levent -lssl -lcrypto

# vmm-run is vmm-core/vmm-run*.c on top of the library and proto/.
RUN_SRCS := $(wildcard vmm-core/vmm-run*.c)
CORE_SRCS := $(filter-out $(RUN_SRCS),\
	$(wildcard vmm-core/*.c vmm-core/*/*.c))
PROTO_SRCS := $(wildcard proto/*.c)
VMMD_SRCS := $(wildcard vmmd/*.c)
VMCTL_SRCS := $(wildcard vmctl/*.c)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_NAMES := $(patsubst tests/unit/%.c,%,$(UNIT_SRCS))
TEST_HELPERS := $(wildcard tests/unit/helpers/*.c)
INTEG_SRCS := $(wildcard tests/integration/*.c)
INTEG_NAMES := $(patsubst tests/integration/%.c,%,$(INTEG_SRCS))

OBJ := $(BUILD)/obj
AOBJ := $(BUILD)/asan/obj
BIN := $(BUILD)/bin

CORE_OBJS := $(patsubst %.c,$(OBJ)/%.o,$(CORE_SRCS))
CORE_AOBJS := $(patsubst %.c,$(AOBJ)/%.o,$(CORE_SRCS))
PROTO_OBJS := $(patsubst %.c,$(OBJ)/%.o,$(PROTO_SRCS))
PROTO_AOBJS := $(patsubst %.c,$(AOBJ)/%.o,$(PROTO_SRCS))
VMMD_OBJS := $(patsubst %.c,$(OBJ)/%.o,$(VMMD_SRCS))
VMCTL_OBJS := $(patsubst %.c,$(OBJ)/%.o,$(VMCTL_SRCS))
HELPER_OBJS := $(patsubst %.c,$(OBJ)/%.o,$(TEST_HELPERS))
HELPER_AOBJS := $(patsubst %.c,$(AOBJ)/%.o,$(TEST_HELPERS))

UNIT_BINS := $(addprefix $(BUILD)/tests/unit/,$(UNIT_NAMES))
UNIT_ABINS := $(addprefix $(BUILD)/asan/tests/unit/,$(UNIT_NAMES))
INTEG_BINS := $(addprefix $(BUILD)/tests/integration/,$(INTEG_NAMES))
INTEG_ABINS := $(addprefix $(BUILD)/asan/tests/integration/,$(INTEG_NAMES))

PROGS := $(BIN)/vmm-run $(if $(VMMD_SRCS),$(BIN)/vmmd) \
	$(if $(VMCTL_SRCS),$(BIN)/vmctl)

.PHONY: all deps deps-test deps-bench guest test test-unit test-build demo \
	bench install clean help check-includes

all: deps $(PROGS) check-includes

help:
	@echo "make [all]    build everything into $(BUILD)/bin"
	@echo "make demo     boot the reference Debian guest, console on this terminal"
	@echo "make test     unit, sanitizer and integration tests; ends 'N passed, N failed'"
	@echo "make guest    build the reference guest into $(BUILD)/guest"
	@echo "make guest-bench  the reference guest plus fio and iperf3, for in-guest benchmarks"
	@echo "make bench    benchmarks, beside QEMU or the bare system-call loop"
	@echo "make install  PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)"

# Installs the Debian packages the build needs, once per checkout (cheap
# when everything is there already).
deps: $(BUILD)/.deps-build
$(BUILD)/.deps-build: scripts/deps.sh
	$(Q)mkdir -p $(BUILD)
	$(Q)scripts/deps.sh build
	$(Q)touch $@
deps-test: $(BUILD)/.deps-test
$(BUILD)/.deps-test: scripts/deps.sh
	$(Q)mkdir -p $(BUILD)
	$(Q)scripts/deps.sh test
	$(Q)touch $@
deps-bench: deps
	$(Q)scripts/deps.sh bench

# Module boundaries (../shared/STYLE.md): vmm-core never reaches jansson,
# libevent or OpenSSL; vmctl never reaches vmm-core or vmmd.
check-includes:
	$(Q)! grep -rnE '#include[[:space:]]*[<"](jansson|event2/|openssl/)' vmm-core \
		|| { echo "vmm-core must not include jansson, libevent or OpenSSL"; exit 1; }
	$(Q)! grep -rnE '#include[[:space:]]*"(proto|vmmd|vmctl)/' vmm-core \
		--exclude=vmm-run.c --exclude='vmm-run-*.c' \
		|| { echo "vmm-core must not include proto, vmmd or vmctl"; exit 1; }
	$(Q)! grep -rnE '#include[[:space:]]*"[^"]*(vmm-core|vmmd|vmctl)/' proto \
		|| { echo "proto must not include vmm-core, vmmd or vmctl"; exit 1; }
	$(Q)! grep -rnE '#include[[:space:]]*"[^"]*(vmm-core|vmmd)/' vmctl \
		|| { echo "vmctl must not include vmm-core or vmmd"; exit 1; }
	$(Q)! grep -rnE '#include[[:space:]]*"[^"]*(vmm-core|vmctl)/' vmmd \
		|| { echo "vmmd must not include vmm-core or vmctl"; exit 1; }

$(OBJ)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(BASE_CFLAGS) $(HARDEN) $(CFLAGS) -I. -Ivmm-core -c $< -o $@

$(AOBJ)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC-SAN  $<")
	$(Q)$(CC) $(BASE_CFLAGS) -O1 $(SAN) $(CFLAGS) -I. -Ivmm-core -c $< -o $@

$(BUILD)/libvmmcore.a: $(CORE_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $^
$(BUILD)/asan/libvmmcore.a: $(CORE_AOBJS)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN)/vmm-run: $(patsubst %.c,$(OBJ)/%.o,$(RUN_SRCS)) $(BUILD)/libvmmcore.a \
		$(BUILD)/libproto.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(CORE_LIBS) $(PROTO_LIBS) -pthread
$(BUILD)/asan/bin/vmm-run: $(patsubst %.c,$(AOBJ)/%.o,$(RUN_SRCS)) \
		$(BUILD)/asan/libvmmcore.a $(BUILD)/asan/libproto.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(CORE_LIBS) $(PROTO_LIBS) -pthread

$(BUILD)/libproto.a: $(PROTO_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $^
$(BUILD)/asan/libproto.a: $(PROTO_AOBJS)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN)/vmmd: $(VMMD_OBJS) $(BUILD)/libproto.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(PROTO_LIBS) -pthread
$(BIN)/vmctl: $(VMCTL_OBJS) $(BUILD)/libproto.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(PROTO_LIBS) -pthread

# Unit tests of vmmd's and vmctl's own modules (tests/unit/test_vmmd*.c,
# test_vmctl*.c) link those modules (without main.c) and proto.
VMMD_LIB_OBJS := $(filter-out $(OBJ)/vmmd/main.o,$(VMMD_OBJS))
VMCTL_LIB_OBJS := $(filter-out $(OBJ)/vmctl/main.o,$(VMCTL_OBJS))
$(BUILD)/tests/unit/test_vmmd%: $(OBJ)/tests/unit/test_vmmd%.o $(VMMD_LIB_OBJS) $(BUILD)/libproto.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) $(PROTO_LIBS) -pthread
$(BUILD)/asan/tests/unit/test_vmmd%: $(AOBJ)/tests/unit/test_vmmd%.o \
		$(patsubst $(OBJ)/%,$(AOBJ)/%,$(VMMD_LIB_OBJS)) $(BUILD)/asan/libproto.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) $(PROTO_LIBS) -pthread
$(BUILD)/tests/unit/test_vmctl%: $(OBJ)/tests/unit/test_vmctl%.o $(VMCTL_LIB_OBJS) $(BUILD)/libproto.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) $(PROTO_LIBS) -pthread
$(BUILD)/asan/tests/unit/test_vmctl%: $(AOBJ)/tests/unit/test_vmctl%.o \
		$(patsubst $(OBJ)/%,$(AOBJ)/%,$(VMCTL_LIB_OBJS)) $(BUILD)/asan/libproto.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) $(PROTO_LIBS) -pthread

# Unit tests of proto/ (tests/unit/test_proto*.c) link proto and its
# libraries instead of vmm-core (the shorter stem wins over the rule below).
$(BUILD)/tests/unit/test_proto%: $(OBJ)/tests/unit/test_proto%.o $(BUILD)/libproto.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) $(PROTO_LIBS)
$(BUILD)/asan/tests/unit/test_proto%: $(AOBJ)/tests/unit/test_proto%.o $(BUILD)/asan/libproto.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) $(PROTO_LIBS)

$(BUILD)/tests/unit/%: $(OBJ)/tests/unit/%.o $(HELPER_OBJS) $(BUILD)/libvmmcore.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) $(CORE_LIBS)
$(BUILD)/asan/tests/unit/%: $(AOBJ)/tests/unit/%.o $(HELPER_AOBJS) $(BUILD)/asan/libvmmcore.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) $(CORE_LIBS)
$(BUILD)/tests/integration/%: $(OBJ)/tests/integration/%.o $(HELPER_OBJS) $(BUILD)/libvmmcore.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) $(CORE_LIBS)
$(BUILD)/asan/tests/integration/%: $(AOBJ)/tests/integration/%.o $(HELPER_AOBJS) $(BUILD)/asan/libvmmcore.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) $(CORE_LIBS)

# Test guests built from source (tiny real-mode/long-mode programs and the
# freestanding C test kernel); rules in tests/guest/guest.mk.
-include tests/guest/guest.mk
# Benchmark programs (make bench).
-include bench/bench.mk
# libFuzzer harnesses (make fuzz, make fuzz-run FUZZ_TIME=60).
-include tests/fuzz/fuzz.mk

test-build: all $(UNIT_BINS) $(UNIT_ABINS) $(INTEG_BINS) $(INTEG_ABINS) \
	$(BUILD)/asan/bin/vmm-run $(TEST_GUESTS)

guest: deps
	$(Q)scripts/deps.sh guest
	$(Q)scripts/mkguest.sh $(BUILD)/guest all

test: deps-test test-build guest
	$(Q)BUILD=$(BUILD) tests/run.sh

test-unit: test-build
	$(Q)BUILD=$(BUILD) TESTS_ONLY_UNIT=1 tests/run.sh

demo: all guest $(TEST_GUESTS)
	$(Q)scripts/demo.sh $(BUILD)

bench: deps-bench all guest $(TEST_GUESTS)
	$(Q)BUILD=$(BUILD) bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(PROGS) $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/lib/systemd/system \
		$(DESTDIR)$(PREFIX)/lib/tmpfiles.d $(DESTDIR)$(PREFIX)/share/doc/vmmd
	sed 's|/usr/local/|$(PREFIX)/|g' systemd/vmmd.service \
		>$(DESTDIR)$(PREFIX)/lib/systemd/system/vmmd.service
	install -m 0644 systemd/vmmd.tmpfiles $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/vmmd.conf
	install -m 0644 proto/PROTOCOL.md configs/*.json $(DESTDIR)$(PREFIX)/share/doc/vmmd/

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
