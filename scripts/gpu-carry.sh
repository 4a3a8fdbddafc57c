#!/usr/bin/env bash
# Prepares what a device call carries (see ../shared/device/README.md), in a checkout that lacks it:
#   .deps/         the Debian 12 packages the build needs: ../shared/device/debs, plus PCRE2 (32-bit) and the part
#                  of ICU the tokenizer links (libicuuc, libicudata, headers), which that folder does not hold;
#                  the ICU part is repacked to fit the 64 MiB a call may carry
#   .gpu-models/   data.tar.gz: ../shared/golden and the models, less the three largest f32 ones (same limit)
# Both are git-ignored (.git/info/exclude). Needs apt-get download (network) for PCRE2 and ICU.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${ROCMFORGE_SHARED:-../shared}
grep -qx '/.deps/' .git/info/exclude 2>/dev/null || printf '/.deps/\n/.gpu-models/\n' >> .git/info/exclude
mkdir -p .deps .gpu-models
cp "$shared"/device/debs/*.deb .deps/
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -qq libpcre2-dev libpcre2-32-0 libicu-dev "libicu[0-9][0-9]" 2>/dev/null ||
  apt-get download -qq libpcre2-dev libpcre2-32-0 libicu-dev libicu72)
cp "$tmp"/libpcre2-*.deb .deps/
mkdir -p "$tmp/icu/DEBIAN"
for f in "$tmp"/libicu*.deb; do dpkg -x "$f" "$tmp/icu"; done
(cd "$tmp/icu" && find usr \( -type f -o -type l \) | grep -vE 'libicu(uc|data)\.so|include/unicode|icu-uc\.pc' |
  xargs rm -f && find usr -type d -empty -delete)
printf 'Package: rocmforge-icu-uc\nVersion: 1\nArchitecture: amd64\nMaintainer: rocmforge\nDescription: ICU uc subset\n' \
  >"$tmp/icu/DEBIAN/control"
dpkg-deb -Zxz -b "$tmp/icu" .deps/rocmforge-icu-uc.deb >/dev/null
tar czf .gpu-models/data.tar.gz -C "$shared" --exclude=fortune-qwen2-f32.gguf --exclude=synth-mixtral-f32.gguf \
  --exclude=synth-qwen2-f32.gguf golden models
du -sh .deps .gpu-models
