#!/bin/sh
# The image's whole root filesystem, shared by the Dockerfile and `make image` so both build the
# same image: the static operator binary, Debian's CA bundle, and passwd/group entries for the
# non-root user 65532 ("nonroot", as distroless images name it). Nothing else: no shell, no libc.
#
#   rootfs.sh BINARY CA_BUNDLE OUT_DIR
set -eu
bin=$1 ca=$2 out=$3
mkdir -p "$out/usr/local/bin" "$out/etc/ssl/certs" "$out/home/nonroot" "$out/tmp"
cp "$bin" "$out/usr/local/bin/apitoken-operator"
chmod 0755 "$out/usr/local/bin/apitoken-operator"
cp "$ca" "$out/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$out/etc/ssl/certs/ca-certificates.crt"
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
  'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$out/etc/passwd"
printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' >"$out/etc/group"
# glibc (linked in statically) resolves names by these sources without loading NSS modules.
printf '%s\n' 'hosts: files dns' >"$out/etc/nsswitch.conf"
chmod 0644 "$out/etc/passwd" "$out/etc/group" "$out/etc/nsswitch.conf"
chmod 1777 "$out/tmp"
