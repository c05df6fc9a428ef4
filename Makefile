# prefer: build, test, bench, install.
#   make              optimised build of bin/prefer
#   make check        every test (installs missing Debian packages first)
#   make check-slurm  the Slurm job scripts on a throwaway local Slurm cluster (root)
#   make demo         the demo pipeline
#   make bench        forward+backward throughput against the sgemm ceiling (bench model, GPT-2 124M);
#                     a curriculum selection's cost in DPO steps, measured against its prediction
#   make bench-scaling  data-parallel step at 1 and 2 ranks: scaling efficiency, allreduce overlap
#   make fuzz [FUZZ_TIME=60]  libFuzzer on the readers of untrusted input (needs clang)
#   make install PREFIX=/opt/prefer DESTDIR=...
#   make SANITIZE=1 check   AddressSanitizer + UBSan build (separate build dir)
#   make DEBUG=1      -O0 -g
# CC, CFLAGS, LDFLAGS, PREFIX, DESTDIR are honoured. MARCH (default -march=native) sets
# the target CPU for our own kernels; use MARCH= for a portable binary.

ifeq ($(origin CC),default)
CC = mpicc
endif
PREFIX ?= /usr/local
MARCH ?= -march=native
PKG_CONFIG ?= pkg-config
PYTHON ?= /usr/bin/python3

ifeq ($(DEBUG),1)
CFLAGS ?= -O0 -g
else ifeq ($(SANITIZE),1)
CFLAGS ?= -O1 -g
else
CFLAGS ?= -O3 $(MARCH)
endif

BUILD := build$(if $(filter 1,$(SANITIZE)),-san)$(if $(filter 1,$(DEBUG)),-dbg)
BIN := $(if $(filter build,$(BUILD)),bin,$(BUILD)/bin)

PKGS := openblas hdf5-openmpi libconfig libpcre2-8 jansson
HAVE_PKGS := $(shell $(PKG_CONFIG) --exists $(PKGS) 2>/dev/null && echo yes)
ifeq ($(HAVE_PKGS),yes)
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS))
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS))
MPI_CFLAGS := $(shell $(PKG_CONFIG) --cflags ompi-c 2>/dev/null)
MPI_LIBS := $(shell $(PKG_CONFIG) --libs ompi-c 2>/dev/null)
CUNIT_LIBS := $(shell $(PKG_CONFIG) --libs cunit 2>/dev/null || echo -lcunit)
endif

ifeq ($(SANITIZE),1)
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
WFLAGS := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-psabi
PREFER_COMMIT := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
ALL_CFLAGS := -DPREFER_COMMIT='"$(PREFER_COMMIT)"' -std=gnu11 -fopenmp -fno-math-errno $(WFLAGS) -Iinclude $(PKG_CFLAGS) $(MPI_CFLAGS) $(CFLAGS) $(SAN_FLAGS) -MMD -MP
ALL_LDFLAGS := -fopenmp $(SAN_FLAGS) $(LDFLAGS)
LIBS := $(PKG_LIBS) $(MPI_LIBS) -lm

SRCS := $(filter-out src/main.c,$(wildcard src/*/*.c))
OBJS := $(SRCS:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/src/main.o
TEST_SRCS := $(wildcard tests/test_*.c)
TESTS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)

.SECONDARY:
.PHONY: all deps check check-slurm check-unit check-cli demo bench bench-scaling install uninstall clean reference help

# Recursive so that a first run on a fresh machine installs the packages, then builds with
# the flags pkg-config finds for them.
all:
	@[ "$(HAVE_PKGS)" = yes ] || scripts/install-deps.sh
	@$(MAKE) --no-print-directory $(BIN)/prefer

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

deps-quiet:
	@[ "$(HAVE_PKGS)" = yes ] || scripts/install-deps.sh
.PHONY: deps-quiet

deps:
	scripts/install-deps.sh --python

# quiet by default; make V=1 shows the commands
ifneq ($(V),1)
Q = @
endif

$(BIN)/prefer: $(MAIN_OBJ) $(OBJS)
	@mkdir -p $(@D)
	@echo "  LD    $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	@echo "  CC    $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(OBJS)
	@mkdir -p $(@D)
	@echo "  LD    $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) $(CUNIT_LIBS)

# make check: install what is missing, build, run every unit test and the CLI tests.
check:
	@scripts/install-deps.sh --python
	@$(MAKE) --no-print-directory $(BIN)/prefer $(TESTS)
	@BUILD=$(BUILD) BIN=$(BIN) scripts/run-tests.sh $(TESTS)

# The Slurm job scripts on a real one-node Slurm (scripts/slurm-local.sh): needs root to
# install slurm-wlm and munge; skips otherwise. .ci/run runs it after `make check`.
check-slurm:
	@scripts/install-deps.sh --python
	@$(MAKE) --no-print-directory $(BIN)/prefer
	@BUILD=$(BUILD) BIN=$(BIN) TEST_DIRS=tests/slurm scripts/run-tests.sh

demo:
	@scripts/install-deps.sh --python
	@$(MAKE) --no-print-directory $(BIN)/prefer
	@BIN=$(BIN) scripts/demo.sh

bench:
	@scripts/install-deps.sh
	@$(MAKE) --no-print-directory $(BIN)/prefer
	$(BIN)/prefer bench configs/bench.cfg
	$(BIN)/prefer bench --gpt2
	$(BIN)/prefer bench configs/demo.cfg --pvar --set train.micro_batch=32

bench-scaling:
	@scripts/install-deps.sh
	@$(MAKE) --no-print-directory $(BIN)/prefer
	@BIN=$(BIN) scripts/bench-scaling.sh configs/bench.cfg

# make fuzz [FUZZ_TIME=60] [FUZZ_CC=clang]: libFuzzer targets for the readers of untrusted
# input (fuzz/fuzz_*.c, binaries in build-fuzz/), each run FUZZ_TIME seconds by
# scripts/fuzz.sh, which prints the executions and whether it crashed. Optional: needs clang
# and its runtime (libclang-rt-dev), which install-deps.sh does not install.
FUZZ_TIME ?= 60
FUZZ_CC ?= clang
FUZZ_TARGETS := safetensors jsonl tokenizer config
FUZZ_CFLAGS := -std=gnu11 -g -O1 -fopenmp -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -Wall -Wextra -Wno-unused-parameter -Wno-pass-failed -Iinclude $(PKG_CFLAGS) $(MPI_CFLAGS)
FUZZ_SRCS_safetensors := src/io/hf.c src/io/h5util.c src/model/gpt.c src/model/ops.c src/util/rng.c src/util/util.c
FUZZ_SRCS_jsonl := src/text/jsonl_import.c src/util/util.c
FUZZ_SRCS_tokenizer := src/text/bpe.c src/util/util.c
FUZZ_SRCS_config := src/config/config.c src/train/losses.c src/util/util.c
define FUZZ_RULE
build-fuzz/fuzz_$(1): fuzz/fuzz_$(1).c $$(FUZZ_SRCS_$(1)) $$(wildcard include/prefer/*.h)
	@mkdir -p $$(@D)
	@echo "  FUZZCC $$@"
	$$(Q)$$(FUZZ_CC) $$(FUZZ_CFLAGS) -o $$@ $$(filter %.c,$$^) $$(LIBS)
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_RULE,$(t))))
fuzz: deps-quiet
	@FUZZ_CC=$(FUZZ_CC) scripts/fuzz.sh --check
	@$(MAKE) --no-print-directory $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	@FUZZ_TIME=$(FUZZ_TIME) scripts/fuzz.sh $(FUZZ_TARGETS)
.PHONY: fuzz

reference: $(BIN)/prefer
	$(BIN)/prefer config --reference > configs/reference.cfg

install: $(BIN)/prefer
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/prefer/configs
	install -m 755 $(BIN)/prefer $(DESTDIR)$(PREFIX)/bin/prefer
	install -m 644 configs/*.cfg $(DESTDIR)$(PREFIX)/share/prefer/configs/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/prefer
	rm -rf $(DESTDIR)$(PREFIX)/share/prefer

clean:
	rm -rf build build-san build-dbg build-san-dbg build-fuzz bin

-include $(OBJS:.o=.d) $(MAIN_OBJ:.o=.d) $(TESTS:%=%.d)
