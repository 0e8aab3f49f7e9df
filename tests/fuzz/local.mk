# Fuzzing: libFuzzer harnesses of what reads untrusted input (issue 6).
# Included at the end of the top Makefile.am:
#
#   include $(top_srcdir)/tests/fuzz/local.mk
#
#   make fuzz                  builds the harnesses and runs each for
#                              FUZZ_SECONDS (60); fails on any crash, leak,
#                              timeout or broken invariant
#   make fuzz FUZZ_SECONDS=600 FUZZ_FLAGS='-jobs=4 -workers=4'
#   make fuzz-build            only builds them
#   make check                 runs each harness once over its seeds and the
#                              crashes kept (tests/fuzz/regress-*.sh)
#
# The harnesses are built with clang, not with configure's compiler: the
# core sources (src_libaua_core_a_SOURCES, so a new core file is fuzzed
# without an edit here) are compiled again with coverage instrumentation
# and ASan + UBSan into tests/fuzz/libcore-fuzz.a.  It needs from
# configure.ac: CLANG, the conditional HAVE_FUZZER, and YAML_CFLAGS/LIBS,
# JANSSON_CFLAGS/LIBS, EV_LIBS.  Paths are relative to the top build
# directory, sources are read from $(srcdir): VPATH builds work.
#
# A harness: tests/fuzz/fuzz-NAME.c, seeds in tests/fuzz/corpus/NAME/,
# crashes kept as regression inputs in tests/fuzz/crashes/NAME/, an optional
# libFuzzer dictionary tests/fuzz/NAME.dict, and tests/fuzz/regress-NAME.sh.

aua_fuzz_harnesses = policy device match control qmp
aua_fuzz_programs = \
	tests/fuzz/fuzz-policy \
	tests/fuzz/fuzz-device \
	tests/fuzz/fuzz-match \
	tests/fuzz/fuzz-control \
	tests/fuzz/fuzz-qmp

# What the harnesses include (a change rebuilds them all); fuzz-control
# routes the machine of the router's unit tests.
aua_fuzz_headers = tests/fuzz/fuzz.h tests/unit/router-fixture.h

FUZZ_SECONDS = 60
# More libFuzzer options for make fuzz, e.g. -jobs=4 -workers=4.
FUZZ_FLAGS =

# The core is compiled without $(AUA_CFLAGS): those warnings are gcc's
# business (clang's -Wformat=2 differs); the harnesses get them.
aua_fuzz_cflags = -std=gnu11 -g -O1 -fno-omit-frame-pointer \
	-fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-I$(abs_top_builddir) -I$(abs_top_srcdir)/src -DSYSCONFDIR=\"$(sysconfdir)\" \
	$(YAML_CFLAGS) $(JANSSON_CFLAGS)
aua_fuzz_libs = tests/fuzz/libcore-fuzz.a $(YAML_LIBS) $(JANSSON_LIBS) $(EV_LIBS)
aua_fuzz_link = $(AM_V_CCLD)$(CLANG) $(aua_fuzz_cflags) $(AUA_CFLAGS) -fsanitize=fuzzer -o $@

aua_fuzz_no_clang = echo "make fuzz needs clang with libFuzzer: install the Debian packages clang-14 and libclang-rt-14-dev (contrib/install-deps --test), then run configure again" >&2; exit 1

if HAVE_FUZZER
# Every .c of the core, compiled in one clang run in tests/fuzz/core/.
tests/fuzz/libcore-fuzz.a: $(src_libaua_core_a_SOURCES) config.h
	$(AM_V_GEN)rm -rf tests/fuzz/core && $(MKDIR_P) tests/fuzz/core && \
	srcs= && for f in $(src_libaua_core_a_SOURCES); do \
	  case $$f in *.c) srcs="$$srcs $(abs_top_srcdir)/$$f" ;; esac; \
	done && \
	(cd tests/fuzz/core && $(CLANG) $(aua_fuzz_cflags) -fsanitize=fuzzer-no-link -c $$srcs) && \
	rm -f $@ && $(AR) cr $@ tests/fuzz/core/*.o && $(RANLIB) $@

tests/fuzz/fuzz-policy: tests/fuzz/fuzz-policy.c $(aua_fuzz_headers) tests/fuzz/libcore-fuzz.a
	$(aua_fuzz_link) $(srcdir)/tests/fuzz/fuzz-policy.c $(aua_fuzz_libs)
tests/fuzz/fuzz-device: tests/fuzz/fuzz-device.c $(aua_fuzz_headers) tests/fuzz/libcore-fuzz.a
	$(aua_fuzz_link) $(srcdir)/tests/fuzz/fuzz-device.c $(aua_fuzz_libs)
tests/fuzz/fuzz-match: tests/fuzz/fuzz-match.c $(aua_fuzz_headers) tests/fuzz/libcore-fuzz.a
	$(aua_fuzz_link) $(srcdir)/tests/fuzz/fuzz-match.c $(aua_fuzz_libs)
tests/fuzz/fuzz-control: tests/fuzz/fuzz-control.c $(aua_fuzz_headers) tests/fuzz/libcore-fuzz.a
	$(aua_fuzz_link) $(srcdir)/tests/fuzz/fuzz-control.c $(aua_fuzz_libs)
tests/fuzz/fuzz-qmp: tests/fuzz/fuzz-qmp.c src/qmp.c $(aua_fuzz_headers) tests/fuzz/libcore-fuzz.a
	$(aua_fuzz_link) $(srcdir)/tests/fuzz/fuzz-qmp.c $(srcdir)/src/qmp.c $(aua_fuzz_libs)

fuzz-build: $(aua_fuzz_programs)

# Each harness writes what it finds to tests/fuzz/corpus-run/NAME (kept
# between runs: the next run starts from there) and a crash to
# tests/fuzz/artifacts/NAME/.  One line per harness: PASS: or FAIL:.
fuzz: fuzz-build
	@failed=; \
	for h in $(aua_fuzz_harnesses); do \
	  $(MKDIR_P) tests/fuzz/corpus-run/$$h tests/fuzz/artifacts/$$h; \
	  dict=; test -f $(srcdir)/tests/fuzz/$$h.dict && dict=-dict=$(srcdir)/tests/fuzz/$$h.dict; \
	  echo "  FUZZ     fuzz-$$h for $(FUZZ_SECONDS) s"; \
	  if tests/fuzz/fuzz-$$h -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	      -print_final_stats=1 -artifact_prefix=tests/fuzz/artifacts/$$h/ $$dict $(FUZZ_FLAGS) \
	      tests/fuzz/corpus-run/$$h $(srcdir)/tests/fuzz/corpus/$$h >tests/fuzz/fuzz-$$h.log 2>&1; \
	  then \
	    echo "PASS: fuzz-$$h: `grep -E '^#[0-9]+' tests/fuzz/fuzz-$$h.log | tail -n 1`"; \
	  else \
	    tail -n 60 tests/fuzz/fuzz-$$h.log; \
	    echo "FAIL: fuzz-$$h (log: tests/fuzz/fuzz-$$h.log; input: tests/fuzz/artifacts/$$h/)"; \
	    failed="$$failed fuzz-$$h"; \
	  fi; \
	done; \
	test -z "$$failed" || { echo "fuzz: failed:$$failed" >&2; exit 1; }

# Runs every seed and kept crash once: seconds, not minutes.
fuzz-regress: fuzz-build
	@failed=; \
	for h in $(aua_fuzz_harnesses); do \
	  if AUA_BUILDDIR=$(abs_top_builddir) AUA_SRCDIR=$(abs_top_srcdir) \
	      $(SHELL) $(srcdir)/tests/fuzz/regress $$h >tests/fuzz/regress-$$h.out 2>&1; then \
	    echo "PASS: fuzz-regress $$h"; \
	  else \
	    tail -n 40 tests/fuzz/regress-$$h.out; echo "FAIL: fuzz-regress $$h"; \
	    failed="$$failed $$h"; \
	  fi; \
	done; \
	test -z "$$failed"

# make check builds the harnesses and runs the regression inputs, one test each.
check_SCRIPTS = $(aua_fuzz_programs)
TESTS += \
	tests/fuzz/regress-policy.sh \
	tests/fuzz/regress-device.sh \
	tests/fuzz/regress-match.sh \
	tests/fuzz/regress-control.sh \
	tests/fuzz/regress-qmp.sh
else
fuzz-build fuzz fuzz-regress:
	@$(aua_fuzz_no_clang)
endif

aua-fuzz-clean:
	rm -rf tests/fuzz/core tests/fuzz/libcore-fuzz.a tests/fuzz/fuzz-qmp $(aua_fuzz_programs) \
	  tests/fuzz/*.log tests/fuzz/*.out
# The corpus grown by make fuzz and the crashes found are kept by make clean.
distclean-local: aua-fuzz-distclean
aua-fuzz-distclean:
	rm -rf tests/fuzz/corpus-run tests/fuzz/artifacts
clean-local: aua-fuzz-clean

.PHONY: fuzz fuzz-build fuzz-regress aua-fuzz-clean aua-fuzz-distclean

EXTRA_DIST += \
	tests/fuzz/local.mk \
	$(aua_fuzz_headers) \
	tests/fuzz/regress \
	tests/fuzz/regress-policy.sh \
	tests/fuzz/regress-device.sh \
	tests/fuzz/regress-match.sh \
	tests/fuzz/regress-control.sh \
	tests/fuzz/regress-qmp.sh \
	tests/fuzz/fuzz-policy.c \
	tests/fuzz/fuzz-device.c \
	tests/fuzz/fuzz-match.c \
	tests/fuzz/fuzz-control.c \
	tests/fuzz/fuzz-qmp.c \
	tests/fuzz/policy.dict \
	tests/fuzz/control.dict \
	tests/fuzz/qmp.dict \
	tests/fuzz/corpus \
	tests/fuzz/crashes
