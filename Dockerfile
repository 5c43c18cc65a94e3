# Builds the vela binary in a Go image and runs it on a small Debian base.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/vela .

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 vela && mkdir -p /data && chown vela /data
COPY --from=build /out/vela /usr/local/bin/vela
USER vela
WORKDIR /data
EXPOSE 6379 7946 7946/udp 9121
ENTRYPOINT ["/usr/local/bin/vela"]
# Containers listen on all interfaces, so protected mode needs a password (VELA_REQUIREPASS).
CMD ["-listen", "0.0.0.0:6379", "-metrics_listen", "0.0.0.0:9121"]
