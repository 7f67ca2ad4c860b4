# Weft — one Makefile for every part. Sources are discovered by directory:
#   lib/*.c                      -> libweft.a (shared by every binary)
#   <part>/main.c + <part>/*.c   -> build/bin/weft-<part>
#   tests/unit/<dir>/test_*.c    -> one cmocka binary each, linked with <dir>'s objects
#   fuzz/fuzz_*.c                -> libFuzzer targets (clang), linked like tests/unit/<part>
# SANITIZER=address|undefined builds into build-<sanitizer>/; WERROR=1 adds -Werror.

PARTS      := webhook init proxy identity discovery
SANITIZER  ?=
BUILD      ?= build$(if $(SANITIZER),-$(SANITIZER))
BIN        := $(BUILD)/bin
OBJ        := $(BUILD)/obj
VERSION    := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
PYTHON     := /usr/bin/python3

CC         ?= gcc
PKGS       := libmicrohttpd gnutls jansson yaml-0.1 openssl libnghttp2
WARN       := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
OPT        ?= -O2 -g
# CFLAGS and LDFLAGS given on the command line are added to, not replacing, these.
# pkg-config is asked when a recipe first needs its answer, not when make
# reads this file: on a fresh machine `deps` (an order-only prerequisite of
# every object) installs the packages first. Each is asked once per make.
pkg_cflags  = $(eval pkg_cflags := $$(call pkg_config,--cflags))$(pkg_cflags)
LDLIBS      = $(eval LDLIBS := $$(call pkg_config,--libs) -lm)$(LDLIBS)
pkg_config  = $(shell pkg-config $(1) $(PKGS))$(if $(filter 0,$(.SHELLSTATUS)),,$(error pkg-config $(1) $(PKGS) failed: run 'make deps' as root))
WEFT_CFLAGS = $(OPT) -std=c11 -D_GNU_SOURCE $(WARN) -D_FORTIFY_SOURCE=2 -fstack-protector-strong \
              -Ilib -DWEFT_VERSION='"$(VERSION)"' $(pkg_cflags) $(WEFT_CFLAGS_EXTRA)
WEFT_LDFLAGS :=
WEFT_CFLAGS_EXTRA :=
ifeq ($(WERROR),1)
WEFT_CFLAGS_EXTRA += -Werror
endif
ifneq ($(SANITIZER),)
WEFT_CFLAGS_EXTRA += -fsanitize=$(SANITIZER) -fno-sanitize-recover=all -fno-omit-frame-pointer
WEFT_LDFLAGS += -fsanitize=$(SANITIZER)
endif
WEFT_CFLAGS_EXTRA += $(CFLAGS)
WEFT_LDFLAGS += $(LDFLAGS)

LIB_SRCS   := $(wildcard lib/*.c)
LIB_OBJS   := $(LIB_SRCS:%.c=$(OBJ)/%.o)
LIBWEFT    := $(BUILD)/libweft.a

# A part's "core" objects are all its objects but main.o: unit tests and fuzzers link them.
core_objs   = $(patsubst %.c,$(OBJ)/%.o,$(filter-out $(1)/main.c,$(wildcard $(1)/*.c)))
BUILT_PARTS := $(foreach p,$(PARTS),$(if $(wildcard $(p)/main.c),$(p)))
BINARIES    := $(BUILT_PARTS:%=$(BIN)/weft-%)
# cli/ is weftctl, not weft-cli, and links the webhook's core (inject, uninject)
# and the proxy's authorization decision (authz why) as its own: its binary,
# unit tests and fuzzers all get part_core.
BINARIES    += $(BIN)/weftctl
part_core   = $(call core_objs,$(1))$(if $(filter cli,$(1)), $(call core_objs,webhook) $(OBJ)/proxy/authz.o)

UNIT_SRCS  := $(wildcard tests/unit/*/test_*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)

.PHONY: all deps test unit golden golden-update integration e2e fuzz bench demo clean format-check
.PHONY: fresh-check
all: $(BINARIES)

deps:
	@bash scripts/deps.sh

$(OBJ)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(WEFT_CFLAGS) -MMD -MP -c -o $@ $<

$(LIBWEFT): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

define part_rules
$(BIN)/weft-$(1): $(OBJ)/$(1)/main.o $(call core_objs,$(1)) $(LIBWEFT)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(WEFT_LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach p,$(BUILT_PARTS),$(eval $(call part_rules,$(p))))
$(BIN)/weftctl: $(OBJ)/cli/main.o $(call part_core,cli) $(LIBWEFT)
	@mkdir -p $(dir $@)
	$(CC) $(WEFT_LDFLAGS) -o $@ $^ $(LDLIBS)

# tests/unit/lib/test_x links lib only; tests/unit/<part>/test_x also links <part>'s core.
part_of = $(firstword $(subst /, ,$(1)))
.SECONDEXPANSION:
$(BUILD)/tests/unit/%: tests/unit/%.c $(LIBWEFT) $$(call part_core,$$(call part_of,$$*)) | deps
	@mkdir -p $(dir $@)
	$(CC) $(WEFT_CFLAGS) -I$(call part_of,$*) $(WEFT_LDFLAGS) -o $@ $< \
	  $(call part_core,$(call part_of,$*)) $(LIBWEFT) $(LDLIBS) -lcmocka

# The suites run one after the other (each may still build in parallel):
# integration and e2e tests must not compete for the machine.
test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory golden
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory e2e
	@echo "make test: all suites passed"

unit: $(UNIT_BINS)
	@bash tests/run-unit.sh $(UNIT_BINS)

golden: all
	@WEFT_BIN=$(abspath $(BIN)) bash tests/golden/run.sh

# Also refreshes manifests/' copies of templates/ (kustomize reads only files
# under its own directory; tests/e2e fails while they differ).
golden-update: all
	@WEFT_BIN=$(abspath $(BIN)) bash tests/golden/run.sh --update
	@bash manifests/sync-config.sh

integration: all
	@WEFT_BIN=$(abspath $(BIN)) WEFT_BUILD=$(abspath $(BUILD)) WEFT_SANITIZER=$(SANITIZER) WEFT_PKGS="$(PKGS)" \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

# Builds the pinned control plane into its cache first when it is missing
# (about 5 minutes once; see tests/e2e/README.md).
e2e: all
	@WEFT_E2E_BUILD=1 WEFT_BIN=$(abspath $(BIN)) $(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e

# OCI image archives of the binaries (and the e2e node's pause image) in
# $(BUILD)/images, without a container daemon, reproducible: scripts/images.sh.
.PHONY: images
images: all
	@bash scripts/images.sh $(abspath $(BUILD))/images $(abspath $(BIN))

FUZZ_SRCS  := $(wildcard fuzz/fuzz_*.c)
FUZZ_BINS  := $(FUZZ_SRCS:fuzz/%.c=build-fuzz/%)
FUZZ_SECS  ?= 20
FUZZ_TREE  := build-fuzz/tree
FUZZ_SAN   := -fsanitize=fuzzer-no-link,address,undefined
# fuzz/fuzz_<part>_<what>.c links <part>'s core, built with clang into build-fuzz/tree.
fuzz_part   = $(word 2,$(subst _, ,$(1)))
.PHONY: FORCE
build-fuzz/%: fuzz/%.c FORCE | deps
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_TREE) CC=clang OPT="-O1 -g" SANITIZER= WERROR= \
	  CFLAGS="$(FUZZ_SAN)" $(FUZZ_TREE)/libweft.a \
	  $(patsubst $(OBJ)/%,$(FUZZ_TREE)/obj/%,$(call part_core,$(call fuzz_part,$*)))
	clang -std=c11 -D_GNU_SOURCE -O1 -g -Ilib -I$(call fuzz_part,$*) -fsanitize=fuzzer,address,undefined \
	  -o $@ $< $(patsubst $(OBJ)/%,$(FUZZ_TREE)/obj/%,$(call part_core,$(call fuzz_part,$*))) \
	  $(FUZZ_TREE)/libweft.a $(LDLIBS)

fuzz: $(FUZZ_BINS)
	@bash fuzz/run.sh $(FUZZ_SECS) $(FUZZ_BINS)

bench: all
	@bash bench/run.sh

demo: deps all
	@WEFT_BIN=$(abspath $(BIN)) bash demo/run.sh

clean:
	rm -rf build build-address build-undefined build-fuzz

# Root; not part of test or .ci/run (it takes a while): the README's two
# commands in new Debian 12 roots. FRESH_CHECK_CMDS, FRESH_CHECK_REPO: see the script.
fresh-check:
	@bash scripts/fresh-check.sh

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)
