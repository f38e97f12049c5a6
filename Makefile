# sealroot build, test and demo entry points. `make demo` and `make test`
# install what they need through `make deps` (idempotent).
GO        ?= go
export GOFLAGS ?= -mod=mod
BIN       := bin
CACHE     ?= $(CURDIR)/.cache
KERNEL    ?= $(CACHE)/kernel/vmlinuz
KMODULES  ?= $(CACHE)/kernel/modules
INITRD    ?= $(BIN)/initrd.cpio.gz
export SEALROOT_KERNEL ?= $(KERNEL)
export SEALROOT_KMODULES ?= $(KMODULES)
# The libkrunfw-shaped kernel (make kernel-krunfw): built once per machine
# under /var/cache/sealroot/krunfw, copied here.
KRUNFW_KERNEL ?= $(CACHE)/krunfw/bzImage
export SEALROOT_KRUNFW_KERNEL ?= $(KRUNFW_KERNEL)

.PHONY: all build init initrd test unit e2e fuzz demo bench deps clean kernel-krunfw depcheck lint

all: build

deps:
	@bash tests/deps.sh

build:
	$(GO) build -trimpath -o $(BIN)/sealroot ./host/cmd/sealroot

# The guest init alone (static), for `initramfs build --init bin/init`.
init:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags='-s -w' -o $(BIN)/init ./guest/init

initrd: build deps
	$(BIN)/sealroot initramfs build -o $(INITRD) --kernel-modules $(KMODULES)

# A kernel shaped like libkrunfw's (everything built in, no modules, fixed
# command line) from Debian's linux-source-6.12; see docs/libkrunfw.md.
kernel-krunfw:
	nice -n 10 bash kernel/build-krunfw.sh

# The whole suite: unit tests, bounded fuzzing, and the QEMU end-to-end tests.
test: deps build kernel-krunfw
	bash tests/run-tests.sh

# golangci-lint at the version pinned in tests/lint.sh (installed on first
# use); configuration in .golangci.yml.
lint:
	bash tests/lint.sh

unit:
	$(GO) test ./...

# The layering rules (docs/design.md, "Package map"): the init's dependency
# closure holds no host/ package, no verifier and no protobuf; wire/ imports
# no other layer; guest/ and host/ never import each other. The unit tests
# (so `make test`) run the same two tests.
depcheck:
	$(GO) test -count=1 -run '^(TestInitDependencies|TestLayers|TestWireLeaf)$$' ./guest/init

e2e: deps build kernel-krunfw
	$(GO) test -count=1 -timeout 25m ./tests/...

FUZZTIME  ?= 3s
fuzz:
	bash tests/fuzz.sh $(FUZZTIME)

demo: deps build
	bash tests/demo.sh

bench: deps build kernel-krunfw
	bash tests/bench.sh

# A sample workload root for the README's walk-through: ./rootfs/app, a
# static program (a workload must be static or carry its own libc). An
# existing ./rootfs is never touched (make says it is up to date).
rootfs:
	rm -rf rootfs.tmp && mkdir -p rootfs.tmp
	CGO_ENABLED=0 $(GO) build -trimpath -o rootfs.tmp/app ./tests/testprogs/demo
	mv rootfs.tmp rootfs

# Only what `make` builds: bin/. Never out/ or ./rootfs, which hold the
# walk-through's images, keys, passphrases and broker state.
clean:
	rm -rf $(BIN)
