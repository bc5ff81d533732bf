"""The commented ``config.toml`` that ``p2p-orchestrator init`` writes.

Every setting is shown commented out at its default, so the file changes
nothing until a line is uncommented; the examples at the end (one service's
settings, peer names, publishers, ``require_signed = true``) show what to
write.  ``tests/cli/test_cli_offline.py`` checks that uncommenting every
setting gives exactly the defaults, that no setting of
:class:`~p2p_orchestrator.config.OrchestratorConfig` is missing, and that the
signed-releases example is a valid configuration.
"""

from __future__ import annotations

__all__ = ["CONFIG_TEMPLATE"]

CONFIG_TEMPLATE = """\
# p2p-orchestrator node configuration (docs/operations.md, "Configuration").
# Every setting below is commented out at its default: uncomment a line to change it.
# Unknown sections and keys are refused, so a typo never falls back to a default silently.

[node]
# listen = ["/ip4/127.0.0.1/tcp/0"]    # TCP multiaddrs; port 0 picks a free port (--listen)
# bootstrap = []                       # multiaddrs ending in /p2p/<peer id>, kept connected (--bootstrap)
# mdns = false                         # announce and discover peers on the local network
# call_timeout = 30.0                  # s, default deadline of a call to another node
# dial_timeout = 10.0                  # s, one connection attempt
# read_timeout = 10.0                  # s, a stream's first frame and the rest of a begun frame
# idle_timeout = 60.0                  # s, a stream with nothing in flight is closed after this
# write_timeout = 10.0                 # s, a peer that does not take our frame is reset
# max_streams_per_peer = 8             # RPC streams one peer may hold open
# max_streams_total = 128              # RPC streams all peers together may hold open
# max_pending_connections = 64        # inbound handshakes at once (16 per address); more drop the oldest
# max_stranger_connections = 64       # inbound connections peers without a role may hold together
# max_stranger_connections_per_ip = 8 # ... and from one IP address
# max_in_flight_per_stream = 64        # outstanding requests per stream
# reconnect_attempts = 6               # redials of a pinned peer whose connection dropped
# reconnect_delay = 0.5                # s before the first redial, doubled after each failure
# reconnect_max_delay = 30.0           # s, at most
# distribute_concurrency = 8           # targets a distribution sends to at once
# transfer_attempts = 3                # tries per target of a distribution or fetch (resumed, not restarted)
# install_timeout = 900.0              # s a sender waits for the receiver's install once all chunks are there
# max_transfers_per_peer = 4           # transfer streams one peer may hold open to this node
# max_transfers_total = 64             # transfer streams all peers together may hold open
# labels = {}                          # what this node is known by, e.g. { zone = "a" } (replicas --label)

[access]
# unknown_peers = "public"             # peers without a role may call public methods marked
#                                      # requires_auth=False (a service's ping, say); "none": nothing
# Roles: "admin" (everything), "deployer" (install, start, stop... and read), "reader" (list, info, export).
# `p2p-orchestrator trust PEER_ID --role ROLE` gives roles at run time (kept in roles.toml); these win:
# [access.roles]
# "12D3KooW..." = "admin"

[archive]                              # limits applied to every archive before anything is written
# max_compressed_bytes = 268435456
# max_uncompressed_bytes = 1073741824
# max_members = 10000
# max_path_depth = 16
# max_path_length = 255
# max_header_bytes = 16384
# max_manifest_bytes = 65536

[store]
# keep_versions = 3                    # versions kept per service (the current one included), for rollback
# fsync = true                         # flush installed files to disk before switching to them

[runtime]                              # how service processes run (each service may override some)
# start_timeout = 10.0                 # s to import main.py and finish initialize()
# stop_timeout = 5.0                   # s of grace for cleanup(), then SIGTERM, then SIGKILL
# call_timeout = 30.0                  # s, default deadline of a call to a service
# memory_limit_mb = 0                  # address-space limit per service process; 0: none
# log_max_bytes = 1048576              # a service's log is rotated at this size...
# log_backups = 3                      # ...keeping this many old files
# max_concurrent_calls = 64            # calls sent to one service process at once
# dependency_timeout = 30.0            # s a start waits for each dependency to be running and healthy
# auto_revert = true                   # revert an upgrade that fails to start or fails soon after
# revert_window = 30.0                 # s an upgraded service must run well to count as good
# wheel_dir = ""                       # build service virtualenvs only from these wheels; "": the index
# requirements_timeout = 600.0         # s pip may take for a service's requirements.txt
# auto_start = true                    # start a service when it is installed (its manifest may say false)
# sandbox = true                       # confine each service with Landlock: its own files and data only
# pass_env = []                        # node environment variables services get too (they get PATH, locale)
# fork_server = true                   # fork services from a warm process: faster starts, shared memory

[metrics]
# listen = ""                          # "127.0.0.1:9464": serve node and service metrics for Prometheus

[dashboard]                            # the fleet in a browser; actions need `p2p-orchestrator dashboard --token`
# listen = ""                          # "127.0.0.1:8080": serve it there (loopback unless allow_remote)
# allow_remote = false                 # true: let listen be another address (reading then needs the token too)

# Operator settings of one service; each wins over its manifest:
# [services.example_service]
# auto_start = true
# [services.example_service.config]
# greeting = "Hello from this node"

# Names for peer IDs, usable as --peer NAME, proxy.call(..., peer=NAME) and
# self.proxy.<service>.<NAME>.<method>() in services:
# [peers]
# coordinator = "12D3KooW..."

# Signed releases (docs/operations.md, "Publishers and release keys"). The publishers whose
# release statements this node trusts, each for some services (names or globs); a publisher
# makes a key with `p2p-orchestrator keygen -o KEYFILE`, which prints the public_key line:
# [publishers.example]
# public_key = "ed25519:..."
# services = ["example_service", "example_*"]

# Install only archives that come with a release statement (`p2p-orchestrator sign`) from such a
# publisher; by default (false) unsigned archives are installed too:
# [security]
# require_signed = true

# Follow services: install each newer release of theirs that a trusted publisher signed, when a
# peer announces it (`p2p-orchestrator publish`) or lists it, then start it; an update that fails
# to start or fails within revert_window is reverted and never tried again (docs/operations.md,
# "Following services (automatic updates)"; `p2p-orchestrator updates` shows where each stands):
# [updates]
# follow = ["example_service"]
# check_interval = 300                 # s between two rounds of asking the connected peers
# window = "02:00-04:00"               # local time; outside it updates wait (default: any time)
"""
