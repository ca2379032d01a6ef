# The ingress-proxy image that deploy/deployment.yaml runs:
#   docker build -t ghcr.io/ingress-rs/ingress-proxy:0.1.0 .
# Two stages: build with the Rust toolchain, run from a distroless base (glibc, CA
# certificates for https auth URLs, no shell) as the non-root user 65532.
FROM rust:1.88-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p ingress-proxy --bin ingress-proxy

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/ingress-proxy /usr/local/bin/ingress-proxy
USER 65532:65532
EXPOSE 8080 8443 9090
ENTRYPOINT ["/usr/local/bin/ingress-proxy"]
