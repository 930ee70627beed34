#!/bin/sh
# Builds roster-example/files:latest offline, with no registry: Debian's static busybox (apt-get install
# busybox-static) plus www/index.html in a tar, imported with `docker import` and given its CMD with --change.
# Usage: examples/files/build-image.sh [IMAGE]   (default roster-example/files:latest)
set -eu

image=${1:-roster-example/files:latest}
busybox=${BUSYBOX:-/bin/busybox}

if ! "$busybox" --list 2>/dev/null | grep -qx httpd; then
    echo "build-image.sh: $busybox is not a busybox with httpd; install busybox-static (apt-get install -y busybox-static)" >&2
    exit 1
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root/bin" "$root/www" "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in sh httpd wget cat echo ls sleep; do
    ln -s busybox "$root/bin/$applet"
done
cat >"$root/www/index.html" <<'HTML'
<!doctype html>
<title>files</title>
<p>Served by busybox httpd in the roster "files" example job.</p>
HTML

tar -C "$root" -c . | docker import \
    --change 'CMD ["/bin/httpd", "-f", "-v", "-p", "80", "-h", "/www"]' \
    --change 'EXPOSE 80/tcp' \
    - "$image" >/dev/null

echo "built $image"
