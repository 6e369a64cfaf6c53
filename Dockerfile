# Multi-stage build: static binaries (CGO_ENABLED=0) in a distroless image
# that runs as a non-root user and holds nothing but the binaries and the
# bundled sample CSV.
FROM golang:1.26.8-alpine3.22 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/producer ./cmd/consumer ./cmd/gencsv

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
# Owned by the runtime user so the producer can write its rejects file next to the input.
COPY --chown=65532:65532 data/ /data/
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/consumer"]
