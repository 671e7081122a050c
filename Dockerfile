# The static tigerchat and tigerctl binaries on an empty base image.
#   docker build -t tigerchat .
#   docker run --rm -v /etc/tigerchat:/etc/tigerchat:ro -v tigerchat-data:/var/lib/tigerchat \
#     --network host tigerchat start -config /etc/tigerchat/cluster.json -replica 0 \
#     -data /var/lib/tigerchat -identity /etc/tigerchat/node.pem
# See docs/deploy.md.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/tigerchat ./cmd/tigerctl

FROM scratch
COPY --from=build /out/tigerchat /out/tigerctl /
# The data dir; a volume in production (preallocated files, fdatasync).
VOLUME /var/lib/tigerchat
ENTRYPOINT ["/tigerchat"]
CMD ["help"]
