# syntax=docker/dockerfile:1
# Build stage: the same dependency script and Makefile as the local stack.
FROM debian:bookworm-slim AS build
WORKDIR /src
COPY scripts/deps.sh scripts/deps.sh
RUN scripts/deps.sh build && rm -rf /var/lib/apt/lists/*
COPY Makefile ./
COPY include include
COPY app app
RUN make -j"$(nproc)"

# Runtime stage: shared libraries, nginx, the binary, migrations, UI.
FROM debian:bookworm-slim
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
      libfcgi0ldbl libpq5 libjson-c5 libhiredis0.14 libsodium23 \
      nginx openssl ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /app --shell /usr/sbin/nologin paintstudio
WORKDIR /app
COPY --from=build /src/build/paintstudio /usr/local/bin/paintstudio
COPY migrations migrations
COPY web web
COPY nginx nginx
USER paintstudio
ENV APP_ENV=production FCGI_LISTEN=0.0.0.0:9000
EXPOSE 9000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["paintstudio", "check"]
CMD ["paintstudio", "serve"]
