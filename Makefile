# Vigil — every task a developer or CI runs. `make help` lists them.
SHELL := /bin/bash
GO ?= go
BIN := bin/vigil
IMAGE ?= vigil:dev
PROTOC_GEN_GOGOFAST := $(shell $(GO) env GOPATH)/bin/protoc-gen-gogofast
GOGO_DIR = $(shell $(GO) list -m -f '{{.Dir}}' github.com/gogo/protobuf)
PROM_DIR = $(shell $(GO) list -m -f '{{.Dir}}' github.com/prometheus/prometheus)
# Where each imported .proto's Go package is.
PROTO_MAP = Mtypes.proto=github.com/prometheus/prometheus/prompb,Mremote.proto=github.com/prometheus/prometheus/prompb,Mseries.proto=github.com/vigil-metrics/vigil/pkg/pb/seriespb,Mgogoproto/gogo.proto=github.com/gogo/protobuf/gogoproto

# Loopback-only flags for a laptop run: nothing listens beyond this machine.
RUN_FLAGS := -server.http-listen-address=127.0.0.1 -server.grpc-listen-address=127.0.0.1 \
	-memberlist.bind-addr=127.0.0.1 -ingester.ring.instance-addr=127.0.0.1 -controlplane.ring.instance-addr=127.0.0.1 -store-gateway.ring.instance-addr=127.0.0.1 -compactor.ring.instance-addr=127.0.0.1

.PHONY: help build run test e2e bench lint image proto reference-help install-prometheus install-prometheus3 install-minio install-alertmanager image-minio clean compose-up compose-down helm-test

help: ## List the targets.
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

build: ## Build bin/vigil (static).
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/vigil

run: build ## Build and start a monolithic Vigil on 127.0.0.1:9009 with state under ./data.
	./$(BIN) $(RUN_FLAGS) $(ARGS)

test: ## Unit tests and in-process integration tests (what CI requires).
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd pkg integration tools internal)" || { echo "gofmt needed:"; gofmt -l cmd pkg integration tools internal; exit 1; }
	$(GO) test -race -count=1 -timeout 15m ./...

e2e: install-prometheus install-prometheus3 install-minio install-alertmanager ## Multi-process cluster tests (kill and rolling restarts), the bounded series call over a day of 100k series, a real Prometheus agent remote-writing to Vigil, Prometheus 3.16 remote-writing with SigV4, every read endpoint compared field by field with a Prometheus 3.16 holding the same data, a week of 1,000 series at step 60 s, the aws CLI's amp commands (workspaces and rule groups namespaces), rules files checked by Vigil and by Prometheus 3.16's promtool alike, the long-term storage suite on a real MinIO, Prometheus's PromQL test corpus through the query API, a ruler's alerts through Debian's Alertmanager to a webhook, two ruler processes handing groups over when one is killed and when it comes back, the same alerts, silence and configuration through a workspace's Alertmanager and Debian's (same groups, states and notifications), three alertmanagers losing one while alerts fire and restarting together (no notification lost or sent twice, silences and the notification log kept), the aws CLI's alert manager definition and logging configuration commands, and the alert generator specification run to its 15 minutes of resolved notifications.
	$(GO) test -count=1 -timeout 50m -tags e2e -run 'TestCluster|TestPrometheusAgent|TestSeriesCallOverADay|TestStorageOnMinIO|TestAWSCLI|TestPrometheus3|TestHonest|TestPromQLCorpus|TestRulerAlerts|TestAlertmanagerMatchesDebian' -v ./integration/ 2>&1 | grep -v '^        level='; exit $${PIPESTATUS[0]}

bench: install-prometheus3 ## Go benchmarks of the push path, the query mix served by ingesters and by the store-gateway, bytes per sample after compaction, then one side-by-side table of the write path (tools/writebench): the monolith, the monolith with -ingester.tsdb.wal-sync=always, the three-zone RF 3 cluster of separate processes and Prometheus 3.16's receiver, in samples per CPU-second and RSS per series (VIGIL_BEFORE=<binary> adds that build's rows); then the same side by side for queries (tools/querybench): a node-exporter and API-server dashboard mix over 100k series of an hour, at concurrency 1 and 4, in CPU per query, p50, p99 and queries per second: Vigil's monolith (through its query-frontend) with and without the results cache, and Prometheus 3.16.
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./pkg/distributor/ ./pkg/ingester/ ./pkg/ingester/client/
	$(GO) test -run '^$$' -bench MonolithRemoteWrite -benchtime 500x -count=1 ./integration/
	$(GO) test -run '^$$' -bench MonolithQuery -benchtime 20x -count=1 ./integration/
	$(GO) test -run '^$$' -bench CompactedBytesPerSample -benchtime 1x -count=1 ./pkg/compactor/
	$(GO) build -o bin/writebench ./tools/writebench
	$(MAKE) build
	bin/writebench -vigil $(BIN) -prometheus $(PROMETHEUS3) -systems monolith,monolith-wal-sync,cluster,prometheus $(if $(VIGIL_BEFORE),-vigil-before $(VIGIL_BEFORE))
	$(GO) build -o bin/querybench ./tools/querybench
	bin/querybench -vigil $(BIN) -prometheus $(PROMETHEUS3) -variant vigil-no-cache=-query-frontend.results-cache.backend=none $(if $(VIGIL_BEFORE),-vigil-before $(VIGIL_BEFORE))

lint: ## go vet, gofmt and the import boundaries of ARCHITECTURE.md.
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd pkg integration tools internal)" || { gofmt -l cmd pkg integration tools internal; exit 1; }
	$(GO) test -count=1 ./tools/importcheck

image: ## Build the FROM-scratch container image $(IMAGE) (static binary plus CA certificates for S3 over TLS).
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o deployments/docker/vigil ./cmd/vigil
	@test -f /etc/ssl/certs/ca-certificates.crt || { apt-get update && apt-get install -y ca-certificates; }
	cp /etc/ssl/certs/ca-certificates.crt deployments/docker/ca-certificates.crt
	docker build -t $(IMAGE) deployments/docker

proto: ## Regenerate pkg/pb from proto/ (installs protoc and protoc-gen-gogofast if missing).
	@command -v protoc >/dev/null || { apt-get update && apt-get install -y protobuf-compiler; }
	@test -x $(PROTOC_GEN_GOGOFAST) || $(GO) install github.com/gogo/protobuf/protoc-gen-gogofast@v1.3.2
	PATH=$(dir $(PROTOC_GEN_GOGOFAST)):$$PATH protoc -I proto/series -I $(PROM_DIR)/prompb -I $(GOGO_DIR) -I $(GOGO_DIR)/protobuf \
		--gogofast_out=$(PROTO_MAP):pkg/pb/seriespb \
		proto/series/series.proto
	PATH=$(dir $(PROTOC_GEN_GOGOFAST)):$$PATH protoc -I proto/ingester -I proto/series -I $(PROM_DIR)/prompb -I $(GOGO_DIR) -I $(GOGO_DIR)/protobuf \
		--gogofast_out=plugins=grpc,$(PROTO_MAP):pkg/pb/ingesterpb \
		proto/ingester/ingester.proto
	PATH=$(dir $(PROTOC_GEN_GOGOFAST)):$$PATH protoc -I proto/storegateway -I proto/series -I $(PROM_DIR)/prompb -I $(GOGO_DIR) -I $(GOGO_DIR)/protobuf \
		--gogofast_out=plugins=grpc,$(PROTO_MAP):pkg/pb/storegatewaypb \
		proto/storegateway/storegateway.proto

reference-help: build ## Regenerate cmd/vigil/help.txt, the flag reference TestHelp checks.
	./$(BIN) -help > cmd/vigil/help.txt

MINIO := $(shell $(GO) env GOPATH)/bin/minio

install-minio: ## Install MinIO (a real S3 server, used by make e2e) with go install if missing.
	@test -x $(MINIO) || GOFLAGS= $(GO) install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c

PROMETHEUS3 := $(shell $(GO) env GOPATH)/bin/prometheus-v0.316.0/prometheus

install-prometheus3: ## Install Prometheus 3.16 and its promtool (the reference of make e2e's tests) with go install if missing.
	@test -x $(PROMETHEUS3) || GOFLAGS= GOBIN=$(dir $(PROMETHEUS3)) $(GO) install github.com/prometheus/prometheus/cmd/prometheus@v0.316.0
	@test -x $(dir $(PROMETHEUS3))promtool || GOFLAGS= GOBIN=$(dir $(PROMETHEUS3)) $(GO) install github.com/prometheus/prometheus/cmd/promtool@v0.316.0

install-alertmanager: ## Install Debian's prometheus-alertmanager (the receiver of make e2e's ruler alerts) if missing.
	@command -v prometheus-alertmanager >/dev/null || { apt-get update && apt-get install -y prometheus-alertmanager; }

install-prometheus: ## Install Debian's prometheus package (used by make e2e) if missing.
	@command -v prometheus >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; }

clean: ## Remove build output (not ./data).
	rm -rf bin deployments/docker/vigil deployments/docker/ca-certificates.crt deployments/minio/minio deployments/minio/mkbucket

image-minio: ## Build the FROM scratch image vigil-minio:dev (MinIO and the bucket-creating step) for docker-compose.yml.
	@test -x deployments/minio/minio || CGO_ENABLED=0 GOFLAGS= GOBIN=$(abspath deployments/minio) $(GO) install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o deployments/minio/mkbucket ./tools/mkbucket
	docker build -t vigil-minio:dev deployments/minio

compose-up: image image-minio ## Start the three-zone cluster of docker-compose.yml on MinIO (distributor on 127.0.0.1:9009, query-frontend on :9010).
	docker-compose up -d

compose-down: ## Stop the docker-compose cluster and delete its volumes.
	docker-compose down -v

HELM := $(shell $(GO) env GOPATH)/bin/helm
HELM_S3 := --set mode=microservices,storage.backend=s3,storage.s3.endpoint=minio:9000,storage.s3.bucketName=vigil,storage.s3.secretName=vigil-s3

helm-test: ## Lint and render helm/vigil in both modes (installs helm 3.22 with go install if missing).
	@test -x $(HELM) || $(GO) install helm.sh/helm/v3/cmd/helm@v3.22.0
	$(HELM) lint --strict helm/vigil
	$(HELM) lint --strict helm/vigil $(HELM_S3)
	$(HELM) template t helm/vigil | grep -q 'kind: StatefulSet'
	$(HELM) lint --strict helm/vigil --set auth.mode=sigv4 --set auth.credentialsSecret=vigil-auth
	$(HELM) template t helm/vigil $(HELM_S3) --set auth.mode=sigv4 --set auth.credentialsSecret=vigil-auth | grep -c 'auth.credentials-file=/etc/vigil/auth/credentials.yaml' | grep -qx 12
	$(HELM) template t helm/vigil $(HELM_S3) --set auth.mode=sigv4 --set auth.credentialsSecret=vigil-auth | grep -c 'secretName: vigil-auth' | grep -qx 5
	$(HELM) template t helm/vigil --set auth.mode=sigv4 --set auth.credentialsSecret=vigil-auth | grep -c 'secretName: vigil-auth' | grep -qx 1
	! $(HELM) template t helm/vigil --set auth.mode=sigv4 >/dev/null 2>&1
	$(HELM) template t helm/vigil $(HELM_S3) | grep -c 'ingester.ring.instance-zone=zone-' | grep -qx 3
	$(HELM) template t helm/vigil $(HELM_S3) | grep -c 'store-gateway.ring.instance-zone=zone-' | grep -qx 3
	$(HELM) template t helm/vigil $(HELM_S3) | grep -q -- '-target=compactor'
	$(HELM) template t helm/vigil $(HELM_S3) | grep -q -- '-target=query-frontend'
	$(HELM) template t helm/vigil $(HELM_S3) | grep -q -- '-target=ruler'
	$(HELM) template t helm/vigil $(HELM_S3) | grep -q -- '-target=alertmanager'
	$(HELM) template t helm/vigil $(HELM_S3) | grep -q -- '-querier.frontend-address=t-vigil-query-frontend:9095'
	@! $(HELM) template t helm/vigil --set mode=microservices >/dev/null 2>&1 || { echo "microservices without s3 must be refused"; exit 1; }
