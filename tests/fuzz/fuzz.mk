# libFuzzer harnesses (tests/fuzz/fuzz_*.c), built with clang against the
# vmm-core sources they need, under ASan and UBSan. Included from the
# top-level Makefile:  -include tests/fuzz/fuzz.mk
#
#   make fuzz                     build every harness into $(BUILD)/fuzz
#   make fuzz-run FUZZ_TIME=60    run each for FUZZ_TIME seconds
# tests/integration/test_fuzz_short.sh runs a short bounded pass in make test.

FUZZ_CC ?= clang
FUZZ_TIME ?= 60
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_FLAGS := -std=gnu17 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-I. -Ivmm-core
# What each harness links: the virtqueue needs only guest memory.
FUZZ_virtq_SRCS := vmm-core/virtio/virtq.c vmm-core/mem.c
FUZZ_blk_SRCS := vmm-core/virtio/blk.c vmm-core/virtio/virtio.c vmm-core/virtio/virtq.c \
	vmm-core/mem.c vmm-core/log.c vmm-core/ratelimit.c
# The fuzz rule links no -l flags: liburing comes in as its static archive.
FUZZ_blk_SRCS += $(shell pkg-config --variable=libdir liburing)/liburing.a
# proto/ harnesses: the decoders of a peer's bytes, with their libraries
# (FUZZ_NAME_LIBS goes at the end of the link line).
FUZZ_proto_frame_SRCS := proto/frame.c proto/jsonrpc.c proto/errors.c proto/util.c
FUZZ_proto_frame_LIBS := -ljansson -levent
FUZZ_proto_vmdef_SRCS := proto/vmdef.c proto/size.c proto/cpulist.c proto/util.c
FUZZ_proto_vmdef_LIBS := -ljansson
# The instruction emulator: a hostile guest's bytes and registers.
FUZZ_emulate_SRCS := vmm-core/x86/emulate.c
# Seed corpora (read, never written): the golden inputs, and for the
# emulator one input per instruction vmm-run is known to meet.
FUZZ_proto_frame_SEEDS := tests/unit/golden/jsonrpc
FUZZ_proto_vmdef_SEEDS := tests/unit/golden/vmdef
FUZZ_emulate_SEEDS := tests/fuzz/seeds/emulate
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(addprefix $(FUZZ_DIR)/fuzz_,$(FUZZ_NAMES))

.PHONY: fuzz fuzz-run
fuzz: $(FUZZ_BINS)

# One rule per harness: fuzz_NAME.c plus FUZZ_NAME_SRCS.
define FUZZ_RULE
$(FUZZ_DIR)/fuzz_$(1): tests/fuzz/fuzz_$(1).c $$(FUZZ_$(1)_SRCS)
	@mkdir -p $$(dir $$@)
	$$(Q)$$(FUZZ_CC) $$(FUZZ_FLAGS) $$< $$(FUZZ_$(1)_SRCS) -o $$@ \
		$$(FUZZ_$(1)_LIBS)
endef
$(foreach n,$(FUZZ_NAMES),$(eval $(call FUZZ_RULE,$(n))))

fuzz-run: fuzz
	$(Q)for n in $(FUZZ_NAMES); do \
		f=$(FUZZ_DIR)/fuzz_$$n; \
		mkdir -p $(FUZZ_DIR)/corpus/fuzz_$$n; \
		case $$n in \
		proto_frame) seeds="$(FUZZ_proto_frame_SEEDS)" ;; \
		proto_vmdef) seeds="$(FUZZ_proto_vmdef_SEEDS)" ;; \
		emulate) seeds="$(FUZZ_emulate_SEEDS)" ;; \
		*) seeds= ;; \
		esac; \
		$$f -max_total_time=$(FUZZ_TIME) $(FUZZ_DIR)/corpus/fuzz_$$n $$seeds \
			|| exit 1; \
	done
