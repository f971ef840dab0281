#!/usr/bin/env bash
# Mesa lavapipe (a software Vulkan device) and the Vulkan loader, unpacked into a folder (nothing is installed
# system-wide), so the WebGPU smoke test has a device on a machine without a GPU (tfjs-notes §4.1). Debian 12's own
# Mesa 22.3 is too old for Dawn; the backports build works. Uses this machine's configured Debian mirror.
# Usage: .ci/fetch-lavapipe.sh [dir]    (default: .cache/lavapipe; the test looks there or in $FLASHDEPTH_LAVAPIPE)
set -euo pipefail
dest="${1:-.cache/lavapipe}"
if [[ -f "$dest/usr/share/vulkan/icd.d/lvp_icd.json" ]]; then exit 0; fi

# The archive URI and release this machine's apt already uses (deb822 or one-line sources).
uri=$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
if [[ -z "$uri" ]]; then uri=$(awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true); fi
# shellcheck disable=SC1091
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
if [[ -z "$uri" || -z "$codename" ]]; then echo "fetch-lavapipe: no Debian apt source found" >&2; exit 1; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
printf 'deb %s %s main\ndeb %s %s-backports main\n' "$uri" "$codename" "$uri" "$codename" > "$work/sources.list"
apt_opts=(-q -o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
apt-get "${apt_opts[@]}" update > /dev/null
(cd "$work/debs" && apt-get "${apt_opts[@]}" download "mesa-vulkan-drivers/$codename-backports" \
  "libdrm2/$codename-backports" "libdrm-amdgpu1/$codename-backports" libvulkan1 > /dev/null)
mkdir -p "$dest"
for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$dest"; done
echo "fetch-lavapipe: $dest/usr/share/vulkan/icd.d/lvp_icd.json"
