# Common tasks. `make test` is the README's test command.
GO ?= go

.PHONY: test race short lint fuzz bench tidy run

test:
	$(GO) test -race -timeout 20m ./...

race: test

short:
	$(GO) test -short ./...

lint:
	$(GO) vet ./...
	@command -v golangci-lint >/dev/null && golangci-lint run ./... || echo "golangci-lint not installed; ran go vet only"

fuzz:
	@for t in $$(grep -rhoE '^func (Fuzz[A-Za-z0-9_]+)' --include='*_test.go' . | sed 's/^func //' | sort -u); do \
		pkg=$$(grep -rlE "^func $${t}\(" --include='*_test.go' . | head -1 | xargs dirname); \
		$(GO) test -run='^$$' -fuzz="^$${t}\$$" -fuzztime=30s $$pkg || exit 1; \
	done

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

tidy:
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

run:
	$(GO) run .
