# Booking Rush -- thin wrapper over CMake. `make help` lists the targets.
JOBS ?= $(shell nproc)
BUILD ?= build
BUILD_ASAN ?= build-asan
CMAKE_FLAGS ?=

.PHONY: help deps build build-asan run test bench fuzz clean format

help:
	@echo "make run     install missing packages, build, run the server on 127.0.0.1:8080 (BIND=ADDR to change)"
	@echo "make test    install missing packages, build under ASan+UBSan, run every test"
	@echo "make bench   release build; benchmarks with their baselines (see README)"
	@echo "make fuzz    every fuzz target for FUZZ_SECONDS (default 60) with libFuzzer and AFL++"
	@echo "make build   release build only (into $(BUILD)/)"
	@echo "make clean   remove build directories"

deps:
	@scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DBR_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD_ASAN) -j $(JOBS)

# The server listens on loopback only; `make run BIND=0.0.0.0` opens it to the network.
BIND ?= 127.0.0.1

run: build
	./$(BUILD)/bookingrush serve --demo --bind $(BIND)

test: build-asan build
	cd $(BUILD_ASAN) && ctest --output-on-failure -j $(JOBS) --timeout 900
	scripts/test-extra.sh $(BUILD_ASAN) $(BUILD)

bench: build
	scripts/bench.sh $(BUILD)

fuzz: deps
	scripts/fuzz.sh

format:
	clang-format -i core/*.[ch] adapters/*.[ch] server/*.[ch] sim/*.[ch] tests/*/*.c fuzz/*.c

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) build-plant* build-fuzz*
