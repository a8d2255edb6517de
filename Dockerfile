# The operator's image for those with Docker (or any OCI builder): the same image `make image`
# builds here without one. A static binary (glibc linked in), Debian's CA certificates and a
# passwd entry for the non-root user 65532 on an empty base, assembled by image/rootfs.sh.
#
#   docker build -t apitoken-operator:dev .
FROM docker.io/library/rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --locked --release --target x86_64-unknown-linux-gnu --bin apitoken-operator \
 && sh image/rootfs.sh target/x86_64-unknown-linux-gnu/release/apitoken-operator \
      /etc/ssl/certs/ca-certificates.crt /rootfs

FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
LABEL org.opencontainers.image.title=apitoken-operator \
      org.opencontainers.image.description="Manages API tokens as Kubernetes custom resources"
ENTRYPOINT ["/usr/local/bin/apitoken-operator"]
CMD ["run"]
