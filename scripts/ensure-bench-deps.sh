#!/usr/bin/env bash
# Installs the Debian packages the swarm benchmarks need when they are missing (issue 6):
# iproute2 (ip, tc, bridge) for the network-namespace testbed, and python3-libtorrent (for Debian's
# /usr/bin/python3) for the BitTorrent baseline.  Not needed by `make test`: the testbed tests and
# the swarm scenarios skip, with the reason, where these are missing or where we are not root.
set -euo pipefail
if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-bench-deps: not a Debian system; the swarm benchmarks need iproute2 and python3-libtorrent" >&2
  exit 0
fi
missing=()
for pkg in iproute2 python3-libtorrent; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "ensure-bench-deps: missing ${missing[*]} (apt-get install them as root); the swarm scenarios will be skipped" >&2
  exit 0
fi
echo "installing system packages for the swarm benchmarks: ${missing[*]}"
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
