#!/bin/sh
# Builds roster's container image offline: no registry, no Dockerfile base image.
#
#   examples/image/build.sh [TAG]            # default tag roster:latest
#   docker run --network host roster:latest agent -dev
#
# By default it builds a fully static binary (`+crt-static` for the explicit host target, so the flag stays off build
# scripts and proc-macros). ROSTER_BIN=/path/to/roster packages that binary instead; a dynamically linked one (a debug
# build) brings the shared libraries `ldd` lists, which is how the test suite builds the image without a release build.
#
# The image holds /bin/roster, /etc/passwd and /etc/group with a non-root `roster` user (uid and gid 100), and
# /var/lib/roster owned by it. The agent runs as `roster`; only the runtime shim's exec driver needs root
# (`docker run --user root ...`).
set -eu

tag="${1:-roster:latest}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
target="x86_64-unknown-linux-gnu"

if [ -z "${ROSTER_BIN:-}" ]; then
    (cd "$repo" && RUSTFLAGS='-C target-feature=+crt-static' \
        cargo build --release --locked -p roster-agent --bin roster --target "$target")
    ROSTER_BIN="$repo/target/$target/release/roster"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/var/lib/roster"
chmod 1777 "$root/tmp"
chmod 0750 "$root/var/lib/roster"
cp "$ROSTER_BIN" "$root/bin/roster"
chmod 0755 "$root/bin/roster"

# A static binary makes ldd fail ("not a dynamic executable"): nothing to bring.
if libs="$(ldd "$ROSTER_BIN" 2>/dev/null)"; then
    echo "$libs" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
fi

cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
roster:x:100:100:roster:/var/lib/roster:/sbin/nologin
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
roster:x:100:
GROUP

# Everything belongs to root except the data dir, whatever user runs this script.
tar -C "$root" --numeric-owner --owner=0 --group=0 --exclude=./var/lib/roster -cf "$work/rootfs.tar" .
tar -C "$root" --numeric-owner --owner=100 --group=100 -rf "$work/rootfs.tar" ./var/lib/roster

docker import \
    --change 'USER roster' \
    --change 'WORKDIR /var/lib/roster' \
    --change 'ENTRYPOINT ["/bin/roster"]' \
    --change 'CMD ["agent", "-dev", "-client", "0.0.0.0"]' \
    --change 'EXPOSE 8300 8301 8301/udp 8500 8600 8600/udp' \
    --change 'VOLUME ["/var/lib/roster"]' \
    "$work/rootfs.tar" "$tag" >/dev/null
echo "built $tag"
