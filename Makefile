# The README's two commands. `make demo`: install Debian packages (idempotent), build, run the main demo
# on the embedded local runtime. `make test`: the same set-up, then every test. Other targets are for CI.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all deps build demo test asan tsan fuzz bench clean

all: build

deps:
	@./tools/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	./tools/demo.sh $(BUILD)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

asan: deps
	cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DDRAY_SANITIZE=address
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j $(JOBS)

tsan: deps
	cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDRAY_SANITIZE=thread
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && ctest --output-on-failure -j $(JOBS) -L concurrency

fuzz: deps
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDRAY_FUZZ=ON -DDRAY_SANITIZE=address
	cmake --build build-fuzz -j $(JOBS)
	./tools/fuzz-run.sh build-fuzz $(FUZZ_SECONDS)

bench: build
	./bench/run $(ARGS)

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
