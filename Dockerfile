# Build stage: the same dependency script and Makefile as the local stack.
FROM debian:bookworm-slim AS build
WORKDIR /src
COPY scripts/deps.sh scripts/deps.sh
RUN scripts/deps.sh build && rm -rf /var/lib/apt/lists/*
COPY Makefile ./
COPY app app
COPY web web
COPY scripts/build-web.sh scripts/checksec.sh scripts/
# The Makefile's hardened build (PIE, full RELRO, stack protector,
# FORTIFY_SOURCE), checked before it goes into the image.
RUN make -j"$(nproc)" && scripts/checksec.sh build/paintstudio

# Runtime stage: shared libraries, nginx, the binary, migrations, the UI
# and the nginx templates; runs as an unprivileged user (nginx too: compose
# runs it from this image, with its configuration and certificate in the
# folders made here for that user).
FROM debian:bookworm-slim
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
      libfcgi0ldbl libpq5 libjson-c5 libhiredis0.14 libsodium23 \
      libpng16-16 libturbojpeg0 libwebp7 \
      nginx openssl ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /app --shell /usr/sbin/nologin paintstudio \
 && install -d -o paintstudio -g paintstudio -m 0750 /etc/paintstudio/nginx \
 && install -d -o paintstudio -g paintstudio -m 0700 /etc/paintstudio/tls
WORKDIR /app
COPY --from=build /src/build/paintstudio /usr/local/bin/paintstudio
COPY --from=build /src/build/web web
COPY migrations migrations
COPY nginx nginx
COPY scripts/railway-entrypoint.sh scripts/railway-entrypoint.sh
USER paintstudio
# FastCGI on every interface, for nginx (compose's "nginx") and the
# container's own healthcheck only: the service refuses any other peer.
ENV APP_ENV=production FCGI_LISTEN=0.0.0.0:9000 FCGI_WEB_SERVER_ADDRS=nginx,127.0.0.1
EXPOSE 9000
# The process answers over its own socket (no nginx needed for the check).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["paintstudio", "status"]
CMD ["paintstudio", "serve"]
