# Native tests. Test programs link only -ldl (+ -pthread); the shim is preloaded by tests/run.sh.
TB := $(B)/tests
TEST_CFLAGS := -std=gnu11 -O1 -g -Wall -Wextra -Wno-unused-parameter -Wno-unused-function -pthread \
  -Iinclude -Isrc -Itests -I$(INC) -I$(B)/gen
TEST_PROGS := split replay loader expandable deny async report nvml_only stress procs fork safety backend
TEST_BINS := $(addprefix $(TB)/test_,$(TEST_PROGS))

$(TB)/test_%: tests/test_%.c tests/t.h include/emuv_contract.h $(HDRS) $(HOOK_ABIS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< -ldl

# linked against the simulated driver at build time (DT_NEEDED libcuda.so.1)
$(TB)/test_linked: tests/test_linked.c tests/t.h $(SIM_CUDA) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(SIM_CUDA) -ldl
TEST_BINS += $(TB)/test_linked

# the users' kind: nothing but -ldl, no CUDA headers
$(TB)/test_dlonly: tests/test_dlonly.c
	@mkdir -p $(@D)
	$(CC) -O1 -Wall -o $@ $< -ldl
TEST_BINS += $(TB)/test_dlonly

$(TESTENV): $(LIB_CUDA) $(LIB_NVML) $(SIM_CUDA) $(SIM_NVML) scripts/install-shim.sh
	scripts/install-shim.sh $(B)/testenv ../sim/libcuda.so.1 ../sim/libnvidia-ml.so.1
	touch $@

# Sanitizer variants: the shim and the stress test built with ASan+UBSan, and with TSan.
SAN_asan := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SAN_tsan := -fsanitize=thread
define SAN_RULES
$(B)/$(1)/lib/libemuv-cuda.so: $(HOOK_ABIS) $(CUDA_SHIM_SRC) $(CUDA_SHIM_HDR) $(CORE_SRC) $(CORE_HDR) src/exports.map $(B)/stub/libemuv-real-cuda.so $(HDRS)
	@mkdir -p $$(@D)
	$(CC) $$(SHIM_CFLAGS) $(SAN_$(1)) -o $$@ $(CUDA_SHIM_SRC) $(CORE_SRC) $$(SHIM_LDFLAGS) $(SAN_$(1)) \
	  -Wl,-soname,libcuda.so.1 -Wl,--no-as-needed $(B)/stub/libemuv-real-cuda.so
$(B)/$(1)/lib/libemuv-nvml.so: $(LIB_NVML)
	@mkdir -p $$(@D)
	cp $$< $$@
$(B)/$(1)/env/.done: $(B)/$(1)/lib/libemuv-cuda.so $(B)/$(1)/lib/libemuv-nvml.so $(SIM_CUDA) $(SIM_NVML)
	scripts/install-shim.sh $(B)/$(1)/env ../../sim/libcuda.so.1 ../../sim/libnvidia-ml.so.1 $(B)/$(1)/lib
	touch $$@
$(TB)/test_stress_$(1): tests/test_stress.c tests/t.h $(HDRS)
	@mkdir -p $$(@D)
	$(CC) $(TEST_CFLAGS) $(SAN_$(1)) -o $$@ $$< -ldl
SAN_TARGETS += $(B)/$(1)/env/.done $(TB)/test_stress_$(1)
endef
$(eval $(call SAN_RULES,asan))
$(eval $(call SAN_RULES,tsan))

# statically linked against the core (no driver)
CORE_OBJS_SRC := src/config.c src/stats.c src/budget.c src/table.c
$(TB)/test_unit: tests/test_unit.c tests/t.h $(CORE_OBJS_SRC) $(CORE_HDR) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(CORE_OBJS_SRC) -ldl
$(TB)/test_golden: tests/test_golden.c $(CORE_OBJS_SRC) $(CORE_HDR)
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -O1 -g -Wall -pthread -Iinclude -Isrc -o $@ $< $(CORE_OBJS_SRC)
$(TB)/emuv-parse-size: tests/parse_size_tool.c src/config.c $(CORE_HDR)
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -O1 -Wall -Iinclude -Isrc -o $@ $< src/config.c
TEST_BINS += $(TB)/test_unit $(TB)/test_golden $(TB)/emuv-parse-size

# Placement on its own, statically linked with the core: its driver is a recording fake (no shim, no driver).
$(TB)/test_placement: tests/test_placement.c tests/t.h src/placement.c src/placement.h $(CORE_OBJS_SRC) $(CORE_HDR) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< src/placement.c $(CORE_OBJS_SRC) -ldl
TEST_BINS += $(TB)/test_placement
parse-size-tool: $(TB)/emuv-parse-size
golden-tool: $(TB)/test_golden
.PHONY: parse-size-tool golden-tool

GOLDEN := ../test/fixtures/stats/golden-v1.bin
golden: $(TB)/test_golden
	@mkdir -p $(dir $(GOLDEN))
	$(TB)/test_golden $(GOLDEN)


# The cuGetProcAddress recorder (test/realsw records the pinned cudarts' request lists with it).
RECORDER := $(B)/recorder/libcuda.so.1
$(RECORDER): tests/record_gpa.c $(B)/stub/libemuv-real-cuda.so $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -fPIC -fvisibility=hidden -shared -o $@ $< -Wl,-soname,libcuda.so.1 \
	  -Wl,--no-as-needed $(B)/stub/libemuv-real-cuda.so -ldl
	ln -sfn ../sim/libcuda.so.1 $(B)/recorder/libemuv-real-cuda.so
recorder: $(RECORDER)
.PHONY: recorder

# The simulated driver on its own (tests/test_sim.c, docs/simulated-driver.md): private export tables,
# interior pointers, the card shared by processes (run by tests/run.sh, no shim preloaded).
$(TB)/test_sim: tests/test_sim.c tests/t.h $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< -ldl
TEST_BINS += $(TB)/test_sim

# Stats file robustness (run by tests/run.sh): refused paths, SIGKILL during allocations, truncation.
TEST_BINS += $(TB)/test_statsfile $(TB)/test_killalloc $(TB)/test_truncate

# Deterministic fuzzer (fixed seed, bounded) of the EMUV_* parsing and the stats file open/claim/reap and
# budget, linked with the core and built with ASan+UBSan; replays tests/corpus/ first (run by tests/run.sh).
$(TB)/test_fuzz: tests/test_fuzz.c tests/t.h $(CORE_OBJS_SRC) $(CORE_HDR) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) $(SAN_asan) -o $@ $< $(CORE_OBJS_SRC) -ldl
TEST_BINS += $(TB)/test_fuzz

# Two users in one container with fs.protected_regular on (needs root; switches the sysctl for its run).
TEST_BINS += $(TB)/test_protected

# Last: make expands a rule's prerequisites where the rule is read, so every TEST_BINS += must come before.
test: all $(TESTENV) $(TEST_BINS) $(SAN_TARGETS)
	tests/run.sh
