# Paint Studio admin service.
#
#   make            build build/paintstudio (optimised)
#   make run        start the whole local stack (installs what is missing)
#   make test       run every suite (unit, integration, compose) under ASan+UBSan
#   make test-compose  only the image and docker-compose.yml, on a private dockerd
#   make stop       stop a stack left running (make run DETACH=1)
#   make CC=clang   build with clang
#   make SANITIZE=address,undefined   (or thread) an instrumented build
#
# Each SANITIZE value builds into its own folder, so switching is cheap.

CC ?= cc
SANITIZE ?=
PKGS := fcgi libpq json-c hiredis libsodium libpng libturbojpeg libwebp

comma := ,
ifeq ($(SANITIZE),)
BUILD := build
else
BUILD := build/$(subst $(comma),-,$(SANITIZE))
endif

# libfcgi ships no .pc file on Debian: fall back to plain flags.
PKG_CFLAGS := $(shell pkg-config --cflags libpq json-c hiredis libsodium \
	libpng libturbojpeg libwebp 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs libpq json-c hiredis libsodium \
	libpng libturbojpeg libwebp 2>/dev/null)
ifeq ($(PKG_LIBS),)
PKG_LIBS := -lpq -ljson-c -lhiredis -lsodium -lpng16 -lturbojpeg -lwebp
PKG_CFLAGS := -I/usr/include/postgresql -I/usr/include/libpng16
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wno-format-nonliteral -Wvla
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -D_DEFAULT_SOURCE -pthread $(WARN) -Iapp $(PKG_CFLAGS) -MMD -MP
LDLIBS := -lfcgi $(PKG_LIBS) -lm -pthread

# Hardening, in every build: stack canaries, a position-independent
# executable, relocations read-only and bound at start (full RELRO).
# scripts/checksec.sh checks build/paintstudio for them (make test, and
# the image's build stage).
CFLAGS += -fstack-protector-strong -fPIE
LDFLAGS += -pie -Wl,-z,relro,-z,now

ifneq ($(SANITIZE),)
CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -O1
LDFLAGS += -fsanitize=$(SANITIZE)
else
# glibc's checked string, memory and I/O calls (needs -O1 or more). Only
# without sanitizers: they check those accesses themselves, exactly, and
# with clang the fortified call aborts first ("buffer overflow detected"),
# in place of AddressSanitizer's report that the tests look for.
CFLAGS += -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2
endif

# app/main.c on top of the layer folders (app/LAYERS, scripts/check-layers.py).
SRCS := $(wildcard app/*/*.c) app/main.c
OBJS := $(SRCS:app/%.c=$(BUILD)/obj/%.o)
LIB_OBJS := $(filter-out $(BUILD)/obj/main.o,$(OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
# Tests of modules against the real PostgreSQL of the test stack.
DB_SRCS := $(wildcard tests/db/test_*.c)
DB_BINS := $(DB_SRCS:tests/db/%.c=$(BUILD)/dbtests/%)
# The fuzz harnesses, built to replay their corpora (make fuzz runs libFuzzer).
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz-replay/%)
# Tools the tests run (tests/tools/mkimage.c: test images).
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tools/%)

.PHONY: all deps browser-deps run stop test test-compose unit clean web bench bench-badday bench-ha fuzz valgrind FORCE
all: $(BUILD)/paintstudio web

# The admin UI with fingerprinted asset names (build/web).
web: build/web/index.html
build/web/index.html: $(wildcard web/*) scripts/build-web.sh
	@scripts/build-web.sh build/web

# V=1 shows the whole command lines.
ifeq ($(V),1)
Q :=
else
Q := @
endif

$(BUILD)/paintstudio: $(OBJS)
	@echo "  LINK  $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: app/%.c $(BUILD)/obj/flags | $(BUILD)/obj
	@echo "  CC    $<"
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

# The compiler and flags the objects were built with: a change (a new
# hardening flag, CC=clang) rebuilds them rather than mixing old and new.
FLAGS_LINE := $(CC) $(CFLAGS) $(LDFLAGS)
$(BUILD)/obj/flags: FORCE | $(BUILD)/obj
	$(Q)echo '$(FLAGS_LINE)' | cmp -s - $@ || echo '$(FLAGS_LINE)' >$@
FORCE:

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS) | $(BUILD)/tests
	@echo "  TEST  $@"
	$(Q)$(CC) $(CFLAGS) -MF $(BUILD)/obj/$*.d -o $@ $< $(LIB_OBJS) $(LDFLAGS) $(LDLIBS) -lcmocka

$(BUILD)/dbtests/%: tests/db/%.c $(LIB_OBJS) | $(BUILD)/dbtests
	@echo "  TEST  $@"
	$(Q)$(CC) $(CFLAGS) -MF $(BUILD)/obj/db_$*.d -o $@ $< $(LIB_OBJS) $(LDFLAGS) $(LDLIBS) -lcmocka

$(BUILD)/fuzz-replay/%: tests/fuzz/%.c tests/fuzz/replay.c $(LIB_OBJS) | $(BUILD)/fuzz-replay
	@echo "  FUZZ  $@"
	$(Q)$(CC) $(CFLAGS) -Itests/fuzz -MF $(BUILD)/obj/fuzz_$*.d -o $@ $< tests/fuzz/replay.c $(LIB_OBJS) $(LDFLAGS) $(LDLIBS)

# Test tools (never in the service binary): mkimage makes test images.
$(BUILD)/tools/%: tests/tools/%.c $(LIB_OBJS) | $(BUILD)/tools
	@echo "  TOOL  $@"
	$(Q)$(CC) $(CFLAGS) -MF $(BUILD)/obj/tool_$*.d -o $@ $< $(LIB_OBJS) $(LDFLAGS) $(LDLIBS)

$(BUILD)/obj $(BUILD)/tests $(BUILD)/dbtests $(BUILD)/fuzz-replay $(BUILD)/tools:
	mkdir -p $@

unit: $(UNIT_BINS) $(DB_BINS) $(FUZZ_BINS) $(TOOL_BINS)

deps:
	@scripts/deps.sh

# playwright-core from the npm registry, to drive Debian's Chromium.
browser-deps: tests/browser/node_modules/playwright-core/package.json
tests/browser/node_modules/playwright-core/package.json: tests/browser/package.json tests/browser/package-lock.json
	@echo "  NPM   tests/browser"
	@cd tests/browser && npm ci --no-audit --no-fund --loglevel=error

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/stack.sh run

stop:
	@scripts/stack.sh stop

# Every suite, against the sanitizer build (the threaded database tests
# also under ThreadSanitizer, the UI in headless Chromium, a short load on
# the plain build under valgrind, then the compose suite as in
# test-compose); the last line totals them all.
test: deps browser-deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory all unit SANITIZE=address,undefined
	@$(MAKE) --no-print-directory unit SANITIZE=thread
	@python3 tests/run.py --build build/address-undefined --tsan-build build/thread

# The Docker image and docker-compose.yml for real (tests/compose/): a
# private dockerd, images made here (nothing pulled), the stack with three
# replicas, the Railway profile. Needs root (dockerd).
test-compose: deps
	@python3 tests/run.py --only compose

# libFuzzer on each harness for FUZZ_SECONDS (60) each; new inputs land in
# build/fuzz/, crashes in build/fuzz/crashes/.
fuzz: deps
	@scripts/fuzz.sh

# The service under valgrind's memcheck during a short load.
valgrind: deps
	@$(MAKE) --no-print-directory all
	@scripts/valgrind.sh

# Benchmarks against a stack of their own (bench/results/): the scenarios,
# then the bad day (PostgreSQL capped by a cgroup; bench/badday.sh), which
# make bench-badday runs alone, then what HA=1 costs against the single
# node (bench/ha.sh), which make bench-ha runs alone.
bench: deps
	@$(MAKE) --no-print-directory all
	@bench/run.sh
	@bench/badday.sh
	@bench/ha.sh

bench-badday: deps
	@$(MAKE) --no-print-directory all
	@bench/badday.sh

bench-ha: deps
	@$(MAKE) --no-print-directory all
	@bench/ha.sh

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(UNIT_BINS:$(BUILD)/tests/%=$(BUILD)/obj/%.d) \
	$(DB_BINS:$(BUILD)/dbtests/%=$(BUILD)/obj/db_%.d) \
	$(TOOL_BINS:$(BUILD)/tools/%=$(BUILD)/obj/tool_%.d)
