# The suite's images, from one file:
#   build             Debian bookworm with the -dev packages (those of scripts/deps); builds
#                     the four executables in Release, without tests or benchmarks
#   runtime           bookworm-slim with the shared libraries they load, curl for health
#                     checks, and an unprivileged user
#   user_service, template_service, api_gateway, notification_worker
#                     runtime plus one executable each: docker build --target api_gateway .
# docker-compose.yml builds each target; scripts/check-deploy lints this file against the
# tree (COPY sources, stage names, USER, entrypoints built by the build stage).

ARG DEBIAN_RELEASE=bookworm

FROM debian:${DEBIAN_RELEASE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libboost-dev librabbitmq-dev libpqxx-dev nlohmann-json3-dev libspdlog-dev libssl-dev \
      prometheus-cpp-dev libkainjow-mustache-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# What the build reads, and nothing else, so that an edit to a test or a script does not
# invalidate the compile layer. bench/ is listed by the top-level CMakeLists.txt.
COPY CMakeLists.txt ./
COPY cmake/ cmake/
COPY libs/ libs/
COPY services/ services/
COPY bench/ bench/
# BUILD_JOBS caps the compile's parallelism (docker build --build-arg BUILD_JOBS=2);
# empty means one job per core.
ARG BUILD_JOBS=
RUN cmake -S /src -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DNOTIFS_BUILD_TESTS=OFF \
 && cmake --build /build --parallel ${BUILD_JOBS:-$(nproc)} \
      --target user_service --target template_service --target api_gateway \
      --target notification_worker \
 && install -D -m 0755 -t /out/bin \
      /build/services/user_service/user_service \
      /build/services/template_service/template_service \
      /build/services/api_gateway/api_gateway \
      /build/services/notification_worker/notification_worker \
 && strip --strip-unneeded /out/bin/*

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
ARG DEBIAN_FRONTEND=noninteractive
# The shared libraries the executables load (ldd), ca-certificates for amqps://,
# smtps:// and https:// providers, curl for the health checks of docker-compose.yml.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libspdlog1.10 libfmt9 libprometheus-cpp-core1.0 libpqxx-6.4 libpq5 librabbitmq4 \
      libssl3 libcurl4 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 notifs \
 && useradd --system --uid 10001 --gid notifs --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin notifs
# Numeric, so that Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
WORKDIR /

FROM runtime AS user_service
COPY --from=build /out/bin/user_service /usr/local/bin/user_service
EXPOSE 4001
ENTRYPOINT ["/usr/local/bin/user_service"]

FROM runtime AS template_service
COPY --from=build /out/bin/template_service /usr/local/bin/template_service
EXPOSE 4002
ENTRYPOINT ["/usr/local/bin/template_service"]

FROM runtime AS api_gateway
COPY --from=build /out/bin/api_gateway /usr/local/bin/api_gateway
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/api_gateway"]

# One image for both channels: `--channel email` (port 8000) or `--channel push` (4100).
FROM runtime AS notification_worker
COPY --from=build /out/bin/notification_worker /usr/local/bin/notification_worker
EXPOSE 8000 4100
ENTRYPOINT ["/usr/local/bin/notification_worker"]
CMD ["--channel", "email"]
