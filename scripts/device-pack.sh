#!/usr/bin/env bash
# Packs what Anvil needs on a machine that has neither Node nor a package
# registry (the GPU device machines): Node's binary, the production npm
# packages, Debian's bubblewrap and libseccomp, and a script that unpacks them.
# Writes .carry/ (ignored by git); run `bash .carry/unpack.sh` there first, then
# use /tmp/node in place of node. Needs: npm run build done, apt-get, xz.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d dist ] || { echo "device-pack: run npm run build first" >&2; exit 1; }
rm -rf .carry && mkdir -p .carry
(cd .carry && apt-get download bubblewrap libseccomp2 libseccomp-dev redis-server redis-tools libjemalloc2 liblzf1 >/dev/null)
xz -T0 -6 -c "$(command -v node)" > .carry/node.xz
tmp=$(mktemp -d)
cp package.json package-lock.json "$tmp"/
(cd "$tmp" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
tar cf - -C "$tmp" node_modules | xz -T0 -6 > .carry/node_modules.tar.xz
rm -rf "$tmp"
cat > .carry/unpack.sh <<'UNPACK'
#!/usr/bin/env bash
# On the device machine, from the repository root: bash .carry/unpack.sh; then source .carry/env.sh
set -eu
mkdir -p /tmp/deb
for f in .carry/*.deb; do dpkg -x "$f" /tmp/deb; done
[ -x /tmp/node ] || { xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node; }
[ -d node_modules/piscina ] || tar xJf .carry/node_modules.tar.xz
UNPACK
cat > .carry/env.sh <<'ENV'
export PATH=/tmp/deb/usr/bin:$PATH CPATH=/tmp/deb/usr/include ANVIL_BWRAP=/tmp/deb/usr/bin/bwrap
export LIBRARY_PATH=/tmp/deb/usr/lib/x86_64-linux-gnu LD_LIBRARY_PATH=/tmp/deb/usr/lib/x86_64-linux-gnu
ENV
du -sh .carry
echo "device-pack: carry [\".carry\", \"dist\"]; start the command with: bash .carry/unpack.sh && source .carry/env.sh &&"
