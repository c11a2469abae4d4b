# Makefile -- builds the ouro runtime, the `ouro` tool and both database extensions.
#
# Targets:
#   make              core library, build/ouro (tool), build/ouro.so (SQLite extension),
#                     and the PostgreSQL extension when pg_config is found
#   make install      installs the PostgreSQL extension into the server pg_config names (root)
#   make uninstall    removes what make install installed (root)
#   make installcheck the pg_regress tests against a running server where `make install` was
#                     run (PGHOST, PGPORT, PGUSER: a superuser; see test/installcheck.sh)
#   make test         the whole test suite; ends with "N passed, N failed"
#   make asan         the core tests built and run under AddressSanitizer
#   make test-aarch64 the core and the C tests (golden ones included) cross-built for
#                     aarch64 in build-aarch64/ (no x86 intrinsics: the portable path)
#                     and run under qemu-user; needs gcc-aarch64-linux-gnu, qemu-user,
#                     libcjson-dev:arm64, libutf8proc-dev:arm64 and libgomp1:arm64 (see
#                     README "Other processors: aarch64"); not part of `make test`
#   make asan-ext     the SQLite extension built with ASan and UBSan, over its suites
#                     (libasan preloaded into Python); slow, not part of `make test`.
#                     OURO_ASAN_PG=1 (as root) adds the PostgreSQL suites pg, pg_safety and
#                     pg_batch on an ASan build of pg_ext (see test/asan_ext.sh)
#   make demo         installs missing Debian packages (through sudo), builds, and runs
#                     the SQLite demo on the trained demonstration model models/ouro-demo
#                     (or $OURO_MODEL)
#   make model        retrains models/ouro-demo from scratch (Debian's python3-torch, one
#                     CPU thread, about 75 minutes; see README "The demonstration model")
#   make model-eval   the held-out evaluation table of models/ouro-demo (bf16, q8 and q4)
#   make model-check  the training program's PyTorch forward against `ouro logits`
#   make bench        speed figures for this machine
#   make bench-compare LLAMA_CPP=DIR GGUF_BF16=F [GGUF_Q8_0=F] [GGUF_Q4_0=F OURO_Q4=DIR]
#                     ouro against a llama.cpp build of the user's on GGUF files of the same
#                     checkpoint, interleaved runs, the ratio of every column
#                     (test/bench/compare.sh); without LLAMA_CPP it says so and does nothing
#   make deb          Debian packages in build/deb/: postgresql-<v>-ouro, sqlite3-ouro, ouro
#                     (debian/build.sh; needs debhelper and postgresql-server-dev-all)
#   make deps         installs the Debian packages the build and tests need (sudo)
#   make clean
#
# Variables: CC, OPT (optimisation flags), PG_CONFIG.

CC        ?= cc
OPT       ?= -O2
PG_CONFIG ?= pg_config
HAVE_PG   := $(shell test -f pg_ext/Makefile && command -v $(PG_CONFIG) >/dev/null 2>&1 && test -f "$$($(PG_CONFIG) --pgxs 2>/dev/null)" && echo yes)

B         := build
WARN      := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wvla
CFLAGS_CORE = -std=c11 -D_GNU_SOURCE $(OPT) -g -fPIC -fopenmp $(WARN) -Icore
LIBS_CORE := -lcjson -lutf8proc -lm -fopenmp

CORE_SRC  := $(wildcard core/*.c)
CORE_OBJ  := $(patsubst core/%.c,$(B)/core/%.o,$(CORE_SRC))
CORE_HDR  := $(wildcard core/*.h)
CLI_SRC   := $(wildcard tool/*.c)
SQLITE_SRC:= $(wildcard sqlite_ext/*.c)
UNIT_SRC  := $(wildcard test/unit/*.c)
UNIT_BIN  := $(patsubst test/unit/%.c,$(B)/test/%,$(UNIT_SRC))

.PHONY: all core tool sqlite pg install uninstall installcheck deb test unit asan asan-build asan-ext demo bench bench-compare deps clean \
        model model-eval model-check test-aarch64

all: core tool sqlite $(if $(HAVE_PG),pg)

core: $(B)/libouro.a
tool: $(B)/ouro
sqlite: $(B)/ouro.so

$(B)/core/%.o: core/%.c $(CORE_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_CORE) -c $< -o $@

$(B)/libouro.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/ouro: $(CLI_SRC) $(wildcard tool/*.h) $(B)/libouro.a
	$(CC) $(CFLAGS_CORE) $(CLI_SRC) $(B)/libouro.a $(LIBS_CORE) -lsqlite3 -o $@

# The SQLite extension: one shared object with the core linked in.
# It exports sqlite3_ouro_init alone (sqlite_ext/exports.map): nothing of the
# core can clash with another library's symbols in the same process.
$(B)/ouro.so: $(SQLITE_SRC) $(wildcard sqlite_ext/*.h) sqlite_ext/exports.map $(B)/libouro.a
	$(CC) $(CFLAGS_CORE) -fvisibility=hidden -shared $(SQLITE_SRC) $(B)/libouro.a $(LIBS_CORE) \
	    -Wl,--version-script=sqlite_ext/exports.map -o $@

# The PostgreSQL extension is a PGXS build in pg_ext/ on the same core library.
pg: $(B)/libouro.a
	$(MAKE) -C pg_ext PG_CONFIG=$(PG_CONFIG)

install: all
	$(MAKE) -C pg_ext PG_CONFIG=$(PG_CONFIG) install

uninstall:
	$(MAKE) -C pg_ext PG_CONFIG=$(PG_CONFIG) uninstall

installcheck: tool
	@PG_CONFIG=$(PG_CONFIG) bash test/installcheck.sh

deb:
	bash debian/build.sh

# C unit and golden tests: one program per file in test/unit/.
$(B)/test/%: test/unit/%.c test/unit/*.h $(B)/libouro.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_CORE) -Itest/unit $< $(B)/libouro.a $(LIBS_CORE) -o $@

unit: $(UNIT_BIN)

# The whole suite: C tests (plain and under AddressSanitizer), then test/suites/*.sh.
test: all unit asan-build
	@bash test/run.sh

# The C tests and the tool built with AddressSanitizer and UBSan in build-asan/.
asan-build:
	$(MAKE) B=build-asan OPT="-O1 -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer" \
	    LIBS_CORE="$(LIBS_CORE) -fsanitize=address,undefined,float-cast-overflow" build-asan/ouro unit

asan: asan-build
	@bash test/run.sh --asan

asan-ext: asan-build
	$(MAKE) B=build-asan OPT="-O1 -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer" \
	    LIBS_CORE="$(LIBS_CORE) -fsanitize=address,undefined,float-cast-overflow" build-asan/ouro.so
	@bash test/asan_ext.sh

# The core and the C tests for aarch64 (Debian's cross compiler; the arm64 cjson and
# utf8proc libraries), run under qemu-user with Debian's arm64 libraries (test/run.sh).
AARCH64_CC ?= aarch64-linux-gnu-gcc

test-aarch64:
	$(MAKE) B=build-aarch64 CC=$(AARCH64_CC) build-aarch64/libouro.a unit
	@bash test/run.sh --aarch64

demo: deps
	$(MAKE) all
	@bash models/demo.sh

# The demonstration model: training and checks need /usr/bin/python3 with Debian's
# python3-torch (not in .ci/deps.sh: the tests use committed reference outputs instead)
# and python3-numpy.  MODEL_ARGS passes options to models/train.py.
PYTHON_TORCH ?= /usr/bin/python3

model:
	OMP_NUM_THREADS=1 $(PYTHON_TORCH) models/train.py all --out models/ouro-demo --seed 1 --steps1 5500 --steps2 300 $(MODEL_ARGS)

model-eval: tool sqlite
	$(PYTHON_TORCH) models/eval.py --model models/ouro-demo --n 10 --q8 --q4

model-check: tool
	OMP_NUM_THREADS=1 $(PYTHON_TORCH) models/check_exact.py --model models/ouro-demo

bench: all
	@bash test/bench/run.sh

# Builds only when there is something to compare with.
bench-compare: $(if $(LLAMA_CPP),all)
	@LLAMA_CPP="$(LLAMA_CPP)" GGUF_BF16="$(GGUF_BF16)" GGUF_Q8_0="$(GGUF_Q8_0)" GGUF_Q4_0="$(GGUF_Q4_0)" \
	    OURO_Q4="$(OURO_Q4)" bash test/bench/compare.sh

deps:
	bash .ci/deps.sh

clean:
	rm -rf build build-asan build-aarch64
	-$(if $(HAVE_PG),$(MAKE) -C pg_ext PG_CONFIG=$(PG_CONFIG) clean)
