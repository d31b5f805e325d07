# syntax=docker/dockerfile:1
# caddy-mcpauth: Caddy built with xcaddy and this module, on a slim
# non-root runtime image.
#
#   docker build -t caddy-mcpauth .
#   docker run -d --name mcpauth -p 80:80 -p 443:443 \
#     -v "$PWD/Caddyfile:/etc/caddy-mcpauth/Caddyfile:ro" \
#     -v mcpauth-data:/data caddy-mcpauth
#
# Build args: CADDY_VERSION (default: the version in go.mod) and
# MCPAUTH_VERSION (empty: this checkout; or a released module version such
# as v0.1.0, which `mcpauth version` then reports).

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
ARG CADDY_VERSION=v2.11.9
ARG MCPAUTH_VERSION=
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
RUN go install github.com/caddyserver/xcaddy/cmd/xcaddy@latest
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN if [ -n "$MCPAUTH_VERSION" ]; then \
      with="github.com/mcpauth/caddy-mcpauth@${MCPAUTH_VERSION}"; \
    else \
      with="github.com/mcpauth/caddy-mcpauth=/src"; \
    fi; \
    xcaddy build "$CADDY_VERSION" --with "$with" --output /out/caddy-mcpauth \
    && /out/caddy-mcpauth version \
    && /out/caddy-mcpauth mcpauth version \
    && mkdir -p /out/data /out/config

# Static binary: no libc needed. CA certificates, tzdata, uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/caddy-mcpauth /usr/bin/caddy-mcpauth
COPY --from=build --chown=nonroot:nonroot /out/data /data
COPY --from=build --chown=nonroot:nonroot /out/config /config
# The bbolt store and Caddy's certificates live in /data (mount a volume);
# by default the store is /data/caddy/mcpauth/mcpauth.db.
ENV XDG_DATA_HOME=/data XDG_CONFIG_HOME=/config HOME=/data
VOLUME ["/data"]
EXPOSE 80 443 443/udp
USER nonroot
ENTRYPOINT ["/usr/bin/caddy-mcpauth"]
CMD ["run", "--config", "/etc/caddy-mcpauth/Caddyfile", "--adapter", "caddyfile"]
