#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace chat::app {

// Everything an operator can set. Each flag has an environment variable (CHATD_ + the flag in
// upper case); a flag wins over the variable, the variable over the default.
struct Config {
  std::string listen_host = "127.0.0.1";
  unsigned short listen_port = 8080;
  std::string data_dir = "./data";
  // "sqlite" (the embedded default: data_dir/chatd.db) or a PostgreSQL URI
  // (postgres://user@host:port/db or postgresql://...).
  std::string store = "sqlite";
  // "local" (in-process fan-out, one node) or redis://host:port (cluster fan-out between nodes).
  std::string bus = "local";
  // 0..1023; part of every message id, so every node of a cluster needs its own.
  int node_id = 0;
  int threads = 0;  // 0: one per core
  std::chrono::milliseconds ws_idle_timeout{60'000};
  std::chrono::milliseconds ws_coalesce{20};
  std::uint32_t ws_coalesce_min_sends = 20'000;
  std::uint32_t ws_coalesce_min_busy = 70;
  std::chrono::milliseconds auth_timeout{10'000};
  double rate_auth_ip_per_min = 30;
  double rate_auth_account_per_min = 10;
  double rate_send_per_sec = 50;
  std::chrono::seconds access_ttl{3600};
  std::chrono::seconds refresh_ttl{30LL * 24 * 3600};
  std::vector<std::string> allowed_origins;
  std::string log_level = "info";
  std::string web_root;  // empty: do not serve the web client
  std::chrono::milliseconds presence_grace{5'000};
  // Cluster presence (--bus redis://): heartbeat period, how long a silent node stays alive, how
  // late an unexpired grace period may be before any node's sweep ends it, and how long an
  // offline user's presence hash stays in Redis.
  std::chrono::milliseconds presence_heartbeat{1'000};
  std::chrono::milliseconds presence_node_ttl{5'000};
  std::chrono::milliseconds presence_sweep_slack{2'000};
  std::chrono::milliseconds presence_offline_ttl{600'000};
  // Peers whose X-Forwarded-For is believed for the client address (addresses and CIDRs).
  std::string trusted_proxies;
  // Access-token cache lifetime (0: no cache; every request reads the store).
  std::chrono::milliseconds auth_cache_ttl{5'000};
  // Store commit window (StoreService::Options): the longest the writer waits for more writes
  // before a commit (0: never), and the arrival rate (writes/s) below which it never waits.
  std::chrono::microseconds commit_window{1000};
  double commit_window_min_rate = 2000;
  std::chrono::milliseconds publish_interval{1000};
  int hash_threads = 2;
  int hash_queue_max = 64;
};

struct ParseResult {
  std::optional<Config> config;  // nullopt: exit with `exit_code` after printing `output`
  int exit_code = 0;
  std::string output;
};

// `env` looks up an environment variable (injected for tests).
ParseResult parse_config(int argc, const char* const* argv, const char* (*env)(const char*));

std::string usage();

}  // namespace chat::app
