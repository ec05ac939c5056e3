# rls agent configuration. Every setting is shown with its default (or an example where
# there is none). Flags of `rls agent` override the file: -node-id, -data-dir, -http-addr,
# -http-advertise-addr, -raft-addr, -raft-advertise-addr, -bootstrap, -join,
# -admin-token-file, -log-level, -log-format, -tls-cert-file, -tls-key-file,
# -tls-ca-file, -tls-client-auth, -raft-tls, -raft-insecure, -raft-tls-cert-file,
# -raft-tls-key-file, -raft-tls-ca-file, -snapshot-threshold, -trailing-logs,
# -raft-peer-dial.
#
# `rls tls init -dir DIR -nodes n1,n2,n3 -participants admin` makes a CA and the
# certificates the TLS settings below name (see README.md, "TLS").
#
#   rls agent -config /etc/rls/n1.hcl

# Unique, stable id of this node in the cluster (letters, digits, '-', '.').
node_id = "n1"

# Where the node keeps its Raft log (raft.db), Raft snapshots, and replicated state
# (state.db). Give every node its own directory on local disk.
data_dir = "/var/lib/rls/n1"

# host:port the HTTP API (FHIR, /v1, /metrics) listens on.
http_addr = "127.0.0.1:8080"

# URL other nodes and clients use to reach this node's API. Derived from http_addr when
# empty; required when http_addr listens on 0.0.0.0.
http_advertise_addr = ""

# host:port Raft listens on for the other nodes.
raft_addr = "127.0.0.1:8300"

# host:port the other nodes dial for Raft. Derived from raft_addr when empty; required
# when raft_addr listens on 0.0.0.0.
raft_advertise_addr = ""

# Start a new single-voter cluster if this node has no state yet. Set it on exactly one
# node of a new cluster; the others join. Ignored once the node has state.
bootstrap = false

# URLs of existing cluster nodes to join through (tried in order) when this node has no
# state yet. The node asks the leader to add it as a voter, authenticated with the admin
# token. Ignored once the node has state.
join = []
# join = ["http://10.0.0.1:8080", "http://10.0.0.2:8080"]

# File holding the admin token. On a bootstrapping node it is the token of the first admin
# participant ("admin"); on a joining node it authenticates the join. When empty, a
# bootstrapping node generates a token into DATA_DIR/admin-token, and a joining node reads
# RLS_TOKEN from its environment. The file must be readable by its owner only (chmod 600)
# and the token drawn at random with at least 128 bits (for example openssl rand -hex 32):
# the agent refuses to start otherwise (in -dev it warns).
admin_token_file = ""

# debug, info, warn or error.
log_level = "info"

# text or json (one JSON object per line, for log shippers).
log_format = "text"

tls {
  # Serve the API over HTTPS with this certificate and key (PEM). Both or neither. In a
  # cluster use the node's certificate from `rls tls init` (server and client use, URI
  # SAN urn:rls:node:NODE_ID): the node also presents it when it calls other nodes
  # (joining, forwarding writes to the leader, peer status). TLS 1.2 at least; 1.3 when
  # the client has it; TLS 1.2 only with forward-secret AES-GCM/ChaCha20 suites.
  cert_file = ""
  key_file  = ""
  # CA bundle (PEM) that verifies client certificates and the other nodes' API
  # certificates when this node calls them. Empty: the system roots, and no client
  # certificates.
  ca_file = ""
  # Client certificates on the API:
  #   none     do not ask for one; callers use bearer tokens.
  #   request  verify a certificate if the caller presents one (an invalid one fails the
  #            handshake) and map it to a participant; callers without one use tokens.
  #   require  refuse the handshake of a caller without a verified certificate (load
  #            balancer health checks then need one too).
  # A certificate maps to the participant in its URI SAN urn:rls:participant:ID, else to
  # the participant whose id is its subject CN; a node certificate maps to none. A bearer
  # token sent as well must name the same participant (401 otherwise). request and
  # require need cert_file and ca_file.
  client_auth = "none"
}

raft {
  # Take a Raft snapshot (a copy of the state) after this many new log entries, and check
  # at this interval whether one is due. Snapshots let the log be truncated.
  snapshot_threshold = 8192
  snapshot_interval  = "120s"

  # Log entries kept after a snapshot, so a briefly absent follower catches up from the
  # log instead of receiving a whole snapshot.
  trailing_logs = 10240

  # Failure detection. A follower that hears nothing from the leader for heartbeat_timeout
  # starts an election; lower values fail over faster but risk needless elections on a
  # busy or distant network. leader_lease_timeout must not exceed heartbeat_timeout.
  heartbeat_timeout    = "1s"
  election_timeout     = "1s"
  leader_lease_timeout = "500ms"

  # How long a write may wait to be committed and applied before the API answers 503.
  apply_timeout = "10s"

  # Dial these peers (by node id) at these addresses instead of the ones they advertise:
  # for peers reached through NAT or a proxy. Fault-injection tests use it to route each
  # directed link through a proxy of its own.
  peer_dial_addresses = {}
  # peer_dial_addresses = { n2 = "127.0.0.1:19002" }

  # Stop the node (panic, with the stack) when a goroutine that holds a transaction of the
  # state opens a second one: a bug that stalls the node for good once the state file
  # outgrows its memory map. For test and staging clusters: it costs a stack read
  # per transaction. The integration tests turn it on.
  check_state_nesting = false

  # Raft traffic between nodes over mutually authenticated TLS: each end presents its
  # node certificate and accepts only a peer whose certificate chains to the cluster CA
  # and carries a node identity (URI SAN urn:rls:node:ID), so neither a host with a
  # certificate from another CA nor a participant's client certificate can join or
  # append to the log. Host names are not checked (peers may be dialled through
  # peer_dial_addresses). All nodes of a cluster must agree; -dev and tests leave it off.
  tls = false

  # Outside -dev, a node whose raft_addr or raft_advertise_addr is not a loopback address
  # refuses to start without tls: on plain TCP anyone who can reach the port can append
  # forged entries (a new admin) to a follower's log. insecure = true accepts plain TCP
  # anyway (a network you trust and control end to end) and logs a warning at every start.
  insecure = false
  # The node certificate, its key and the cluster CA for Raft. Empty: the tls block's
  # cert_file, key_file and ca_file.
  tls_cert_file = ""
  tls_key_file  = ""
  tls_ca_file   = ""
}

# Tuning of the HTTP API server.
http {
  # Largest request body accepted (413 beyond). Each FHIR resource in it is also held to
  # 64 KiB, 32 levels of nesting and 4096 elements (see README, "Limits").
  max_body_bytes = 1048576

  # Largest request header block accepted (431 beyond, before any handler runs).
  max_header_bytes = 65536

  # Largest answer a node sends: a search page ends early (with a next link) before its
  # resources exceed half of it; an answer that would exceed it is an error, never cut.
  max_response_bytes = 16777216

  # Largest snapshot `rls cluster snapshot restore` may upload.
  max_snapshot_bytes = 8589934592

  # How long a follower may spend passing a request to the leader, waiting out an
  # election included.
  forward_timeout = "15s"

  # Time allowed to read request headers (slow-client protection).
  read_header_timeout = "10s"

  # /v1/health answers 503 while the node has more than this many committed log entries
  # still to apply.
  health_max_lag = 250

  # FHIR service base clients reach rls at, when a proxy or load balancer stands in
  # front of the nodes: Bundle links, entry.fullUrl and Location are absolute URLs under
  # it. Empty: the scheme and host each request came to, with /fhir.
  public_base_url = ""
}

privacy {
  # L of the security fence. A consent directive, token revocation or rotation, or a
  # participant disabled is acknowledged only once every node has applied it, or, if a node
  # does not confirm, once this long has passed since it was applied on the leader. A
  # follower answers requests itself (consistency=stale) only while it holds a lease taken
  # from the leader's commit index within 90% of this interval, and only once it has applied
  # up to that index; otherwise it answers 503 with Retry-After. Must be at least twice
  # raft.heartbeat_timeout (raft's own leader lease is capped at it). Larger values make
  # acknowledgements slower when a node is down; smaller ones make followers refuse
  # sooner when the leader is slow.
  fence_interval = "2s"

  # Per-participant limit on one node: sustained requests per second and burst (429 with
  # Retry-After beyond). The admin is not limited. A negative rate_limit disables it.
  rate_limit = 200
  rate_burst = 400

  # Per-client-address limits on one node, applied before authentication (an IPv6 client
  # counts by its /64): requests per second and burst, and failed authentications per
  # second and burst. An address beyond its failed authentications is refused (429) until
  # its allowance refills, whatever credentials it then presents. Requests another node
  # forwards are exempt (the node they arrived at applied the limits). A negative rate
  # disables a limit.
  address_rate_limit = 500
  address_rate_burst = 1000
  auth_failure_rate  = 10
  auth_failure_burst = 100
}

# The web console for data stewards and operators, served at /ui/ (the admin and
# participants with the steward role sign in with their token or client certificate).
# Signing in opens a session: an HttpOnly, SameSite=Strict cookie, Secure outside -dev (so
# the console needs HTTPS, the tls block, outside -dev), sealed with a key every node
# derives from the cluster key, so any node accepts it. Rotating or revoking the
# participant's token ends its sessions on every node.
console {
  # A session nobody used for this long ends (it is renewed as it is used)...
  idle_timeout = "30m"
  # ...and any session ends this long after sign-in.
  session_lifetime = "12h"
}

# The HL7 v2 interface: an MLLP (release 2) listener taking ITI-8 ADT feeds, ITI-9 PIX and
# ITI-21 PDQ queries (README, "HL7 v2"). Off unless listen is set (flag -hl7-addr). Every
# node also delivers PIX update notifications (ITI-10) to the MLLP endpoints participants
# register, while it leads.
hl7 {
  # host:port of the MLLP listener, for example "0.0.0.0:2575". Empty: no listener.
  listen = ""

  # MLLP over TLS with the node certificate of the tls block; client certificates are asked
  # for as tls.client_auth says and name the sending participant, whose MSH-4 must agree.
  # Unset: on whenever tls.cert_file is set.
  tls = true

  # Identify a sender without a client certificate by MSH-4 (the participant whose id is
  # the namespace, or whose identifier system is the universal id). Only for a network on
  # which every sender is trusted; a -dev listener on loopback does it by itself. Without
  # TLS, the agent refuses to start unless this is set (flag -hl7-trust-network).
  trust_network = false

  # Purpose of use of the PIX and PDQ queries arriving here (HL7 v2 has no field for it):
  # TREAT, PAYMENT, OPERATIONS, PUBLICHEALTH or REQUEST, granted to the participant as on
  # the API.
  purpose_of_use = "TREAT"

  # Largest message accepted (refused with AR beyond; the connection stays usable), how
  # long a connection may sit between messages, how long one message may take to arrive,
  # and how many connections may be open at once.
  max_message_bytes = 1048576
  idle_timeout      = "5m"
  read_timeout      = "30s"
  max_connections   = 256

  # MSH-3 and MSH-4 of rls's answers and notifications.
  application = "RLS"
  facility    = "HIE"

  # How often the leader looks for cross-reference changes to notify.
  notify_interval = "250ms"
}

# Subscription notifications (FHIR Subscription, rest-hook): the leader delivers them.
notify {
  # Endpoints must be https, and may not be loopback, link-local (169.254.169.254, the
  # cloud metadata service), unspecified or multicast addresses; the address is checked
  # again on every connection, so a name re-pointed there is refused too. Both settings
  # default to false, and to true with -dev; never turn them on in production.
  allow_http            = false
  allow_local_endpoints = false

  # One attempt times out after `timeout`; `retries` more attempts follow, waiting a random
  # time between retry_min and retry_min·2^attempt (at most retry_max), or the receiver's
  # Retry-After.
  timeout   = "10s"
  retries   = 3
  retry_min = "200ms"
  retry_max = "5s"

  # A delivery that still fails puts the subscription in status error with the reason; it
  # is tried again, from the event that failed, after a wait that doubles from retry_max up
  # to error_backoff_max. Its owner turning it on again retries at once.
  error_backoff_max = "5m"
}
