# The Styrmin image: `styrmin` (server, agent) and `styrminctl`, on a small Debian base.
#   docker build -t styrmin .
# The chart in deploy/helm/styrmin runs it as `styrmin server` and `styrmin agent`.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin styrmin --bin styrminctl

FROM debian:bookworm-slim
# git: the server loads driver versions from git repositories.
# python3: the agent runs drivers' Python actions.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git python3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 65532 --user-group --home-dir /var/lib/styrmin --create-home styrmin
COPY --from=build /src/target/release/styrmin /src/target/release/styrminctl /usr/local/bin/
USER 65532:65532
ENV STYRMIN_DATA_DIR=/var/lib/styrmin
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/styrmin"]
CMD ["server", "--listen", "0.0.0.0:8080"]
