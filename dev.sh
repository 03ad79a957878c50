#!/usr/bin/env bash
# bevy_calling's two entry points on Debian/Ubuntu. Each installs what it needs first.
#   ./dev.sh run    the conference app on the embedded call service (extra arguments go to it:
#                   ./dev.sh run --help)
#   ./dev.sh test   formatting, clippy and every test of the workspace
# Both build the same profile (dev: see Cargo.toml for which dependencies are optimized), so the
# second reuses the first's dependencies.
set -euo pipefail
cd "$(dirname "$0")"

# Build dependencies: cpal's ALSA backend (libasound2-dev, pkg-config), the bundled libopus and
# str0m's aws-lc-rs (cmake, a C/C++ compiler), openh264's assembly (nasm; without it openh264
# silently builds a slower C-only codec) and nokhwa's V4L2 bindings (libclang-dev, for bindgen).
APT_PACKAGES=(build-essential pkg-config cmake nasm libclang-dev libasound2-dev)
# The app's window: the X libraries winit loads, and Mesa's Vulkan driver for machines without a
# GPU (lavapipe, software rendering).
RUN_APT_PACKAGES=(libxkbcommon-x11-0 libxcursor1 libxi6 libxrandr2 mesa-vulkan-drivers)
# Test peers: a private PulseAudio daemon gives cpal real (null-sink) speakers and microphones
# through ALSA's pulse plugin, with paplay, parec and module-loopback (a room's echo) around the
# app; nftables drops packets on loopback for the packet-loss tests;
# iproute2 makes the network namespaces and veth pairs of the calls-across-hosts test; Xvfb
# with Mesa's Vulkan drivers (lavapipe) and the X libraries winit loads let the GPU-texture test
# render a real window without a GPU, and gives the screen-sharing tests screens and windows to
# capture; Debian's Chromium and its chromedriver join calls through the web client; sipp
# (sip-tester) is the phone carrier of the SIP gateway's tests.
TEST_APT_PACKAGES=(pulseaudio pulseaudio-utils libasound2-plugins nftables iproute2
  xvfb xauth mesa-vulkan-drivers libgl1-mesa-dri libxkbcommon-x11-0 libxcursor1 libxi6 libxrandr2
  chromium chromium-driver sip-tester)

setup() {
  local missing=() p
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if ((${#missing[@]})); then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
  fi
}

case "${1:-}" in
  run)
    setup "${APT_PACKAGES[@]}" "${RUN_APT_PACKAGES[@]}"
    shift
    exec cargo run -p call-app -- "$@"
    ;;
  test)
    setup "${APT_PACKAGES[@]}" "${TEST_APT_PACKAGES[@]}"
    cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1 ||
      rustup component add rustfmt clippy
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    exec cargo test --workspace
    ;;
  *)
    echo "usage: ./dev.sh run [app arguments] | test" >&2
    exit 2
    ;;
esac
