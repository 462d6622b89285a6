# tierd — build, test, run, benchmark.
GO       ?= go
BIN      := bin
FUZZTIME ?= 4s

.PHONY: build test test-deps unit race fuzz run bench lint clean minio minio-bin pg-bin

build:
	$(GO) build -o $(BIN)/ ./cmd/...

## test: everything CI runs — unit, integration and crash tests, the race
## detector over the concurrent packages, then each fuzz target briefly.
test: build test-deps unit race fuzz

## test-deps: build the test MinIO and install PostgreSQL side by side (a
## compile and a download: together they take the longer one's time).
test-deps:
	@$(MAKE) --no-print-directory -j2 minio-bin pg-bin

## pg-bin: install Debian's postgresql package (once) unless TIERD_SKIP_POSTGRES=1.
pg-bin:
	@if [ "$$TIERD_SKIP_POSTGRES" = 1 ]; then echo "TIERD_SKIP_POSTGRES=1: PostgreSQL not installed; tests that need it will skip"; \
	  else ./testenv/postgres.sh install; fi

## minio-bin: build the test MinIO into .cache/bin (once; minutes) unless TIERD_SKIP_MINIO=1.
minio-bin:
	@if [ "$$TIERD_SKIP_MINIO" = 1 ]; then echo "TIERD_SKIP_MINIO=1: MinIO not built; tests that need it will skip"; \
	  else ./testenv/minio.sh build; fi

## minio: run a MinIO in the foreground for local use (builds it first if needed).
minio:
	./testenv/minio.sh run

unit:
	$(GO) test -count=1 -timeout 18m ./...

## RACE_PKGS: the packages whose goroutines share state (the write path, the
## engine and the move protocol, the migrator, the API on both sides, the
## cold tier), as patterns of import paths inside the module: a package that
## does not exist (yet, like mover) is no error.
RACE_PKGS := hot|hot/wal|engine|mover|internal/keylock|tablesync|migrator|server|client|cold|cold/objstore|catalog/pgcatalog|cluster|cluster/.*

## race: their tests under the race detector. -short: the byte-flipping
## damage tests (one goroutine, thousands of reopens) run a sample here and
## in full in unit.
race:
	mod=$$($(GO) list -m); \
	  $(GO) test -race -short -count=1 -timeout 20m $$($(GO) list ./... | grep -E "^$$mod/($(RACE_PKGS))$$")

## fuzz: run every fuzz target for FUZZTIME (scripts/fuzz.sh lists them).
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

## run: start tierd on examples/tierd.yaml (embedded defaults, data in ./tierd-data).
run: build
	$(BIN)/tierd --config examples/tierd.yaml

bench: build minio-bin pg-bin
	$(BIN)/tierbench ingest
	$(BIN)/tierbench produce
	./testenv/minio.sh start >/dev/null
	./testenv/postgres.sh start >/dev/null || { ./testenv/minio.sh stop; exit 1; }
	export AWS_ACCESS_KEY_ID=tierd AWS_SECRET_ACCESS_KEY=tierd-secret; \
	  $(BIN)/tierbench cold --endpoint $$(cat .cache/minio-run/endpoint) && \
	  $(BIN)/tierbench migrate --endpoint $$(cat .cache/minio-run/endpoint) && \
	  $(BIN)/tierbench cluster --endpoint $$(cat .cache/minio-run/endpoint) --catalog "$$(cat .cache/pg-run/dsn)"; \
	  status=$$?; ./testenv/postgres.sh stop; ./testenv/minio.sh stop; exit $$status
	$(BIN)/tierbench migrate
	$(BIN)/tierbench memory

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
