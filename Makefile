# routefs — build, test, run.  `make help` lists the targets.

CC       ?= gcc
PKGS     := fuse3 libcurl libcjson sqlite3 libsystemd hiredis
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -pthread \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libgcc_s is linked whether or not a symbol needs it: glibc's pthread_cancel (which
# fuse_session_loop_mt calls when it stops) loads it on first use and aborts when it
# cannot, e.g. with no descriptor left (see src/service.c).
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread -lm -ldl \
            -Wl,--push-state,--no-as-needed -lgcc_s -Wl,--pop-state
SIM_LIBS := $(shell pkg-config --libs libmicrohttpd libcjson 2>/dev/null) -pthread -lm
PREFIX   ?= /usr/local
BUILD    ?= build

# Sanitizer build: `make test-asan` rebuilds everything into build-asan/.
ifeq ($(SAN),1)
BUILD    := build-asan
CFLAGS   += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif

LIB_SRC  := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJ  := $(LIB_SRC:src/%.c=$(BUILD)/%.o)
SIM_SRC  := $(wildcard src/sim/*.c)
SIM_OBJ  := $(SIM_SRC:src/sim/%.c=$(BUILD)/sim/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/unit/%)

.PHONY: all help deps run stop test test-build test-unit test-e2e test-asan lint bench bench-scale bench-shared bench-outage install uninstall clean

all: $(BUILD)/routefs $(BUILD)/routefs-sim

help:
	@echo "make            build routefs and routefs-sim into $(BUILD)/"
	@echo "make run        install missing packages, build, mount at ./mnt (offline demo without OPENROUTER_API_KEY)"
	@echo "make stop       unmount ./mnt and stop the demo simulator"
	@echo "make test       build and run every test suite (unit + end-to-end)"
	@echo "make test-asan  the same under AddressSanitizer + UBSan"
	@echo "make lint       shellcheck on every shell script (also part of make test)"
	@echo "make bench      the throughput / overhead benchmark (tests/bench/bench.sh)"
	@echo "make bench-scale   20,000 prompts on a real disk, then a state of a million finished jobs"
	@echo "make bench-shared  what Redis shared state adds to each job"
	@echo "make bench-outage  a blackholed / refused primary against a healthy batch"
	@echo "make install    install binaries, man pages and examples (PREFIX=$(PREFIX), DESTDIR)"

deps:
	@sh tests/install-deps.sh

$(BUILD)/%.o: src/%.c src/*.h | $(BUILD)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/sim/%.o: src/sim/%.c src/sim/*.h | $(BUILD)
	@mkdir -p $(BUILD)/sim
	$(CC) $(CFLAGS) $(shell pkg-config --cflags libmicrohttpd 2>/dev/null) -c -o $@ $<

$(BUILD)/librfs.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/routefs: $(BUILD)/main.o $(BUILD)/librfs.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/routefs-sim: $(SIM_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(SIM_LIBS)

$(BUILD)/unit/%: tests/unit/%.c $(BUILD)/librfs.a
	@mkdir -p $(BUILD)/unit
	$(CC) $(CFLAGS) -Isrc -o $@ $< $(BUILD)/librfs.a $(LDFLAGS) $(LDLIBS) -lcmocka

# Allocation-failure injection (tests/unit/alloc_fail.h): this test's allocations, and
# librfs.a's, go through its wrappers.
$(BUILD)/unit/test_alloc_fail: LDFLAGS += -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc \
                                          -Wl,--wrap=strdup,--wrap=strndup

$(BUILD):
	@mkdir -p $(BUILD)

# pkg-config flags are read when make starts, so on a fresh machine the build must run in
# a second make, after the packages are installed.
run: deps
	@$(MAKE) --no-print-directory all
	@sh tests/run-demo.sh

stop:
	@sh tests/run-demo.sh stop

test-unit: all $(UNIT_BIN)
	@sh tests/run-tests.sh unit $(BUILD)

test-e2e: all
	@sh tests/run-tests.sh e2e $(BUILD)

# The README's test command: every suite, one closing "N passed, N failed" line.
test: deps
	@$(MAKE) --no-print-directory test-build
	@sh tests/run-tests.sh all $(BUILD)

test-build: all $(UNIT_BIN)

lint:
	@sh tests/run-tests.sh lint $(BUILD)

test-asan:
	@$(MAKE) --no-print-directory SAN=1 test

bench: all
	@bash tests/bench/bench.sh

bench-scale: all
	@bash tests/bench/scale.sh

bench-shared: all
	@bash tests/bench/shared.sh

bench-outage: all
	@bash tests/bench/outage.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	           $(DESTDIR)$(PREFIX)/share/routefs/examples \
	           $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 755 $(BUILD)/routefs $(BUILD)/routefs-sim $(DESTDIR)$(PREFIX)/bin/
	install -m 644 src/man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 examples/completion/routefs.bash \
	        $(DESTDIR)$(PREFIX)/share/bash-completion/completions/routefs
	cp -R examples/. $(DESTDIR)$(PREFIX)/share/routefs/examples/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/routefs $(DESTDIR)$(PREFIX)/bin/routefs-sim \
	      $(DESTDIR)$(PREFIX)/share/man/man1/routefs.1 $(DESTDIR)$(PREFIX)/share/man/man1/routefs-sim.1 \
	      $(DESTDIR)$(PREFIX)/share/bash-completion/completions/routefs
	rm -rf $(DESTDIR)$(PREFIX)/share/routefs

clean:
	rm -rf build build-asan

# Fuzzing targets (clang + libFuzzer): see tests/fuzz/README.md.
-include tests/fuzz/fuzz.mk
