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
	-Ivmm-core
# What each harness links: the virtqueue needs only guest memory.
FUZZ_virtq_SRCS := vmm-core/virtio/virtq.c vmm-core/mem.c
FUZZ_blk_SRCS := vmm-core/virtio/blk.c vmm-core/virtio/virtio.c vmm-core/virtio/virtq.c \
	vmm-core/mem.c vmm-core/log.c
# The fuzz rule links no -l flags: liburing comes in as its static archive.
FUZZ_blk_SRCS += $(shell pkg-config --variable=libdir liburing)/liburing.a
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(addprefix $(FUZZ_DIR)/fuzz_,$(FUZZ_NAMES))

.PHONY: fuzz fuzz-run
fuzz: $(FUZZ_BINS)

# One rule per harness: fuzz_NAME.c plus FUZZ_NAME_SRCS.
define FUZZ_RULE
$(FUZZ_DIR)/fuzz_$(1): tests/fuzz/fuzz_$(1).c $$(FUZZ_$(1)_SRCS)
	@mkdir -p $$(dir $$@)
	$$(Q)$$(FUZZ_CC) $$(FUZZ_FLAGS) $$< $$(FUZZ_$(1)_SRCS) -o $$@
endef
$(foreach n,$(FUZZ_NAMES),$(eval $(call FUZZ_RULE,$(n))))

fuzz-run: fuzz
	$(Q)for f in $(FUZZ_BINS); do \
		mkdir -p $(FUZZ_DIR)/corpus/$$(basename $$f); \
		$$f -max_total_time=$(FUZZ_TIME) $(FUZZ_DIR)/corpus/$$(basename $$f) \
			|| exit 1; \
	done
