.PHONY: test build bench bench-smoke

# The whole test suite (README's second quick-start command).
test:
	bash scripts/test

build:
	CGO_ENABLED=0 go build -trimpath -o bin/ ./cmd/...
