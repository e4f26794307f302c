# fuzz.mk — libFuzzer targets (clang); included by the Makefile.  See tests/fuzz/README.md.
#
#   make fuzz-build                  build build/fuzz/fuzz_config, fuzz_openai, fuzz_stream,
#                                    fuzz_shared, fuzz_openrouter
#   make fuzz [FUZZ_SECONDS=300]     build, then fuzz each target for FUZZ_SECONDS
#                                    (make -j2 fuzz runs two at once)
#   make fuzz-config / -openai / -stream / -shared / -openrouter   one target only
#   make fuzz-merge                  minimise the corpora (seed-* files are always kept)
#   make fuzz-check                  run the corpora and crash reproducers through the
#                                    libFuzzer binaries once (no fuzzing)
#
# New inputs go into tests/fuzz/corpus/<target>/, crashes into
# tests/fuzz/crashes/<target>-crash-<sha1> (also leak-, timeout-, oom-, slow-unit-).
# The corpus regression in `make test` is tests/unit/test_fuzz_corpus.c (gcc, no libFuzzer).

FUZZ_CC       ?= $(shell command -v clang-14 2>/dev/null || echo clang)
FUZZ_CFLAGS   ?= -g -O1 -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer \
                 -fno-sanitize-recover=undefined -std=c11 -D_GNU_SOURCE -Isrc
FUZZ_LIBS     ?= -lcjson -lm
FUZZ_SECONDS  ?= 300
FUZZ_MAX_LEN  ?= 16384
FUZZ_TIMEOUT  ?= 10
FUZZ_RSS_MB   ?= 2048
FUZZ_OPTS     ?=
FUZZ_DIR      := tests/fuzz
FUZZ_OUT      := build/fuzz
FUZZ_CRASHES  := $(FUZZ_DIR)/crashes
FUZZ_RUN_OPTS  = -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAX_LEN) \
                 -timeout=$(FUZZ_TIMEOUT) -rss_limit_mb=$(FUZZ_RSS_MB) -print_final_stats=1 \
                 $(FUZZ_OPTS)

FUZZ_CONFIG_SRC := src/config.c src/config_json.c src/config_parse.c src/config_check.c \
                   src/config_schema.c src/jsonfmt.c src/strbuf.c src/err.c
FUZZ_OPENAI_SRC := src/openai.c src/openai_error.c src/jsonfmt.c src/strbuf.c src/err.c
FUZZ_STREAM_SRC := src/stream.c $(FUZZ_OPENAI_SRC)
FUZZ_SHARED_SRC := src/shared_reply.c src/err.c
FUZZ_OPENROUTER_SRC := src/openrouter_parse.c src/hmap.c src/clock.c $(FUZZ_OPENAI_SRC)
FUZZ_TARGETS    := config openai stream shared openrouter

# The corpus regression test includes the targets' sources: rebuild it when they change.
$(BUILD)/unit/test_fuzz_corpus: $(FUZZ_DIR)/fuzz_config.c $(FUZZ_DIR)/fuzz_openai.c \
                                $(FUZZ_DIR)/fuzz_stream.c $(FUZZ_DIR)/fuzz_shared.c \
                                $(FUZZ_DIR)/fuzz_openrouter.c

.PHONY: fuzz fuzz-build fuzz-config fuzz-openai fuzz-stream fuzz-shared fuzz-openrouter \
        fuzz-merge fuzz-check

fuzz-build: $(FUZZ_OUT)/fuzz_config $(FUZZ_OUT)/fuzz_openai $(FUZZ_OUT)/fuzz_stream \
            $(FUZZ_OUT)/fuzz_shared $(FUZZ_OUT)/fuzz_openrouter

$(FUZZ_OUT)/fuzz_config: $(FUZZ_DIR)/fuzz_config.c $(FUZZ_CONFIG_SRC) src/*.h
	@mkdir -p $(FUZZ_OUT)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_CONFIG_SRC) $(FUZZ_LIBS)

$(FUZZ_OUT)/fuzz_openai: $(FUZZ_DIR)/fuzz_openai.c $(FUZZ_OPENAI_SRC) src/*.h
	@mkdir -p $(FUZZ_OUT)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_OPENAI_SRC) $(FUZZ_LIBS)

$(FUZZ_OUT)/fuzz_stream: $(FUZZ_DIR)/fuzz_stream.c $(FUZZ_STREAM_SRC) src/*.h
	@mkdir -p $(FUZZ_OUT)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_STREAM_SRC) $(FUZZ_LIBS)

# Redis replies, through hiredis's own reader (-lhiredis).
$(FUZZ_OUT)/fuzz_shared: $(FUZZ_DIR)/fuzz_shared.c $(FUZZ_SHARED_SRC) src/*.h
	@mkdir -p $(FUZZ_OUT)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_SHARED_SRC) -lhiredis


$(FUZZ_OUT)/fuzz_openrouter: $(FUZZ_DIR)/fuzz_openrouter.c $(FUZZ_OPENROUTER_SRC) src/*.h
	@mkdir -p $(FUZZ_OUT)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_OPENROUTER_SRC) $(FUZZ_LIBS)

fuzz: fuzz-config fuzz-openai fuzz-stream fuzz-shared fuzz-openrouter

# fuzz-config, fuzz-openai, ...: fuzz one target on its corpus with its dictionary.
$(addprefix fuzz-,$(FUZZ_TARGETS)): fuzz-%: $(FUZZ_OUT)/fuzz_%
	@mkdir -p $(FUZZ_DIR)/corpus/$* $(FUZZ_CRASHES)
	$(FUZZ_OUT)/fuzz_$* $(FUZZ_RUN_OPTS) -dict=$(FUZZ_DIR)/$*.dict \
	    -artifact_prefix=$(FUZZ_CRASHES)/$*- $(FUZZ_DIR)/corpus/$*

# Minimise: the hand-written seed-* files stay, everything else is kept only when it adds
# coverage (libFuzzer -merge=1 into a fresh directory, which then replaces the corpus).
# An input that crashes is left out of the merge: it is written to tests/fuzz/crashes/
# (where the regression test fails on it), so look there before committing.
fuzz-merge: fuzz-build
	@set -e; mkdir -p $(FUZZ_CRASHES); for t in $(FUZZ_TARGETS); do \
	    dir=$(FUZZ_DIR)/corpus/$$t; new=$(FUZZ_OUT)/merge-$$t; \
	    rm -rf $$new; mkdir -p $$new; \
	    cp $$dir/seed-* $$new/ 2>/dev/null || true; \
	    $(FUZZ_OUT)/fuzz_$$t -merge=1 -max_len=$(FUZZ_MAX_LEN) -timeout=$(FUZZ_TIMEOUT) \
	        -rss_limit_mb=$(FUZZ_RSS_MB) -artifact_prefix=$(FUZZ_CRASHES)/$$t- $$new $$dir; \
	    rm -rf $$dir; mv $$new $$dir; \
	    echo "fuzz-merge: $$dir: $$(ls $$dir | wc -l) files, $$(du -sh --apparent-size $$dir | cut -f1)"; \
	done

# The regression run with the libFuzzer binaries (the unit test does it without them).
fuzz-check: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	    $(FUZZ_OUT)/fuzz_$$t -runs=0 -timeout=$(FUZZ_TIMEOUT) \
	        -artifact_prefix=$(FUZZ_OUT)/$$t- $(FUZZ_DIR)/corpus/$$t; \
	    for f in $(FUZZ_CRASHES)/$$t-*; do \
	        [ -f "$$f" ] || continue; \
	        $(FUZZ_OUT)/fuzz_$$t -artifact_prefix=$(FUZZ_OUT)/$$t- "$$f"; done; \
	done
