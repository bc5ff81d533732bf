#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need when they are missing: fastecdsa builds
# against libgmp; tests/dashboard drives the dashboard in a headless chromium through chromedriver.
set -euo pipefail
missing=()
for pkg in libgmp-dev gcc python3-dev chromium chromium-driver; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# python3-dev is only a fallback: a Python built from source ships its own headers.
if ((${#missing[@]})); then
  if python3 -c 'import sysconfig, os, sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)'; then
    missing=("${missing[@]/python3-dev}")
  fi
  pkgs=$(echo "${missing[@]}" | xargs)
  if [[ -n "$pkgs" ]]; then
    if [[ $(id -u) -ne 0 ]]; then
      echo "missing system packages: $pkgs (install them with apt-get as root)" >&2
      exit 1
    fi
    echo "installing system packages: $pkgs"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
  fi
fi
