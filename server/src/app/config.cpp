#include "app/config.hpp"

#include "api/client_ip.hpp"

#include <charconv>
#include <cmath>
#include <functional>
#include <map>
#include <string_view>

namespace chat::app {

namespace {

struct Option {
  const char* flag;
  const char* env;
  const char* help;
  std::function<bool(Config&, std::string_view)> apply;
};

template <class T>
bool parse_number(std::string_view text, T& out, T min, T max) {
  T value{};
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < min || value > max) return false;
  out = value;
  return true;
}

bool parse_double(std::string_view text, double& out) {
  try {
    std::size_t used = 0;
    const double v = std::stod(std::string(text), &used);
    if (used != text.size() || !std::isfinite(v) || v <= 0) return false;
    out = v;
    return true;
  } catch (...) {
    return false;
  }
}

// A whole number of `Duration` units in [min, max].
template <class Duration>
bool parse_duration(std::string_view text, Duration& out, long long min, long long max) {
  long long v = 0;
  if (!parse_number<long long>(text, v, min, max)) return false;
  out = Duration(v);
  return true;
}

bool parse_ms(std::string_view text, std::chrono::milliseconds& out) {
  return parse_duration(text, out, 1, 24LL * 3600 * 1000);
}

bool parse_s(std::string_view text, std::chrono::seconds& out) {
  return parse_duration(text, out, 1, 365LL * 24 * 3600);
}

const std::vector<Option>& options() {
  static const std::vector<Option> all = {
      {"--listen", "CHATD_LISTEN", "HOST:PORT to listen on (default 127.0.0.1:8080; port 0 picks one)",
       [](Config& c, std::string_view v) {
         const auto colon = v.rfind(':');
         if (colon == std::string_view::npos || colon == 0) return false;
         std::string host(v.substr(0, colon));
         if (host.size() > 2 && host.front() == '[' && host.back() == ']')
           host = host.substr(1, host.size() - 2);
         c.listen_host = host;
         return parse_number<unsigned short>(v.substr(colon + 1), c.listen_port, 0, 65535);
       }},
      {"--data-dir", "CHATD_DATA_DIR", "directory for the SQLite database (default ./data)",
       [](Config& c, std::string_view v) {
         c.data_dir = std::string(v);
         return !v.empty();
       }},
      {"--store", "CHATD_STORE", "sqlite (default: ./data/chatd.db) or postgres://user@host:port/database",
       [](Config& c, std::string_view v) {
         c.store = std::string(v);
         return v == "sqlite" || v.rfind("postgres://", 0) == 0 || v.rfind("postgresql://", 0) == 0;
       }},
      {"--bus", "CHATD_BUS", "local (default: one node) or redis://host:port (cluster fan-out)",
       [](Config& c, std::string_view v) {
         c.bus = std::string(v);
         return v == "local" || (v.rfind("redis://", 0) == 0 && v.size() > 8);
       }},
      {"--node-id", "CHATD_NODE_ID", "0..1023, unique per node of a cluster (default 0); part of message ids",
       [](Config& c, std::string_view v) { return parse_number(v, c.node_id, 0, 1023); }},
      {"--threads", "CHATD_THREADS", "I/O threads (default: one per core)",
       [](Config& c, std::string_view v) { return parse_number(v, c.threads, 1, 256); }},
      {"--ws-idle-timeout-ms", "CHATD_WS_IDLE_TIMEOUT_MS",
       "close a WebSocket silent this long (default 60000)",
       [](Config& c, std::string_view v) { return parse_ms(v, c.ws_idle_timeout); }},
      {"--ws-coalesce-ms", "CHATD_WS_COALESCE_MS",
       "under load, how long a big group's frames may wait to share one write with the next ones "
       "(default 20, at most 10000; 0 = off)",
       [](Config& c, std::string_view v) { return parse_duration(v, c.ws_coalesce, 0, 10000); }},
      {"--ws-coalesce-min-sends", "CHATD_WS_COALESCE_MIN_SENDS",
       "socket writes per second per I/O thread above which coalescing starts (default 20000; 0 = always)",
       [](Config& c, std::string_view v) {
         return parse_number<std::uint32_t>(v, c.ws_coalesce_min_sends, 0, 100'000'000);
       }},
      {"--ws-coalesce-min-busy", "CHATD_WS_COALESCE_MIN_BUSY",
       "and the percent of the time an I/O thread wants a CPU (runs or waits for one) above which it "
       "starts (default 70; 0 = the send rate alone decides)",
       [](Config& c, std::string_view v) {
         return parse_number<std::uint32_t>(v, c.ws_coalesce_min_busy, 0, 100);
       }},
      {"--auth-timeout-ms", "CHATD_AUTH_TIMEOUT_MS",
       "time a new WebSocket has to authenticate (default 10000)",
       [](Config& c, std::string_view v) { return parse_ms(v, c.auth_timeout); }},
      {"--presence-grace-ms", "CHATD_PRESENCE_GRACE_MS",
       "how long a user stays online after the last device disconnects (default 5000)",
       [](Config& c, std::string_view v) { return parse_ms(v, c.presence_grace); }},
      {"--presence-heartbeat-ms", "CHATD_PRESENCE_HEARTBEAT_MS",
       "cluster: how often a node renews its liveness and sweeps dead nodes in Redis (default 1000)",
       [](Config& c, std::string_view v) { return parse_ms(v, c.presence_heartbeat); }},
      {"--presence-node-ttl-ms", "CHATD_PRESENCE_NODE_TTL_MS",
       "cluster: a node silent this long is dead and its devices go offline; more than the heartbeat "
       "(default 5000)",
       [](Config& c, std::string_view v) { return parse_ms(v, c.presence_node_ttl); }},
      {"--presence-sweep-slack-ms", "CHATD_PRESENCE_SWEEP_SLACK_MS",
       "cluster: a grace period overdue this long is ended by any node's sweep (default 2000)",
       [](Config& c, std::string_view v) { return parse_ms(v, c.presence_sweep_slack); }},
      {"--presence-offline-ttl-ms", "CHATD_PRESENCE_OFFLINE_TTL_MS",
       "cluster: how long an offline user's presence stays in Redis before the store answers "
       "(default 600000)",
       [](Config& c, std::string_view v) { return parse_ms(v, c.presence_offline_ttl); }},
      {"--rate-auth-ip-per-min", "CHATD_RATE_AUTH_IP_PER_MIN",
       "logins+registrations per IP per minute (default 30)",
       [](Config& c, std::string_view v) { return parse_double(v, c.rate_auth_ip_per_min); }},
      {"--rate-auth-account-per-min", "CHATD_RATE_AUTH_ACCOUNT_PER_MIN",
       "logins per account per minute (default 10)",
       [](Config& c, std::string_view v) { return parse_double(v, c.rate_auth_account_per_min); }},
      {"--rate-send-per-sec", "CHATD_RATE_SEND_PER_SEC",
       "messages per WebSocket per second, burst 2x (default 50)",
       [](Config& c, std::string_view v) { return parse_double(v, c.rate_send_per_sec); }},
      {"--access-ttl-s", "CHATD_ACCESS_TTL_S", "access token lifetime in seconds (default 3600)",
       [](Config& c, std::string_view v) { return parse_s(v, c.access_ttl); }},
      {"--refresh-ttl-s", "CHATD_REFRESH_TTL_S", "refresh token lifetime in seconds (default 2592000)",
       [](Config& c, std::string_view v) { return parse_s(v, c.refresh_ttl); }},
      {"--allowed-origins", "CHATD_ALLOWED_ORIGINS",
       "comma-separated extra WebSocket origins (default: same host)",
       [](Config& c, std::string_view v) {
         c.allowed_origins.clear();
         while (!v.empty()) {
           const auto comma = v.find(',');
           auto item = v.substr(0, comma);
           if (!item.empty()) c.allowed_origins.emplace_back(item);
           if (comma == std::string_view::npos) break;
           v.remove_prefix(comma + 1);
         }
         return true;
       }},
      {"--trusted-proxy", "CHATD_TRUSTED_PROXY",
       "comma-separated addresses/CIDRs of reverse proxies whose X-Forwarded-For gives the client address "
       "(default: none; e.g. 127.0.0.1,10.0.0.0/8)",
       [](Config& c, std::string_view v) {
         c.trusted_proxies = std::string(v);
         return v.size() <= 16384 && api::TrustedProxies::parse(v).has_value();
       }},
      {"--auth-cache-ttl-ms", "CHATD_AUTH_CACHE_TTL_MS",
       "how long a node may reuse a verified access token without reading the store; revocations "
       "invalidate it at once (default 5000; 0: no cache)",
       [](Config& c, std::string_view v) { return parse_duration(v, c.auth_cache_ttl, 0, 60'000); }},
      {"--commit-window-us", "CHATD_COMMIT_WINDOW_US",
       "under load, the longest the store writer waits for more writes to share one commit "
       "(default 1000; 0: never wait)",
       [](Config& c, std::string_view v) { return parse_duration(v, c.commit_window, 0, 100'000); }},
      {"--commit-window-min-rate", "CHATD_COMMIT_WINDOW_MIN_RATE",
       "writes per second below which the store writer commits at once, without a window (default 2000)",
       [](Config& c, std::string_view v) { return parse_double(v, c.commit_window_min_rate); }},
      {"--publish-interval-ms", "CHATD_PUBLISH_INTERVAL_MS",
       "SQLite store: the longest sends acknowledged from the append log wait before they are "
       "committed to the database when no read needs them sooner (default 1000; 0: commit every batch, "
       "no append log)",
       [](Config& c, std::string_view v) { return parse_duration(v, c.publish_interval, 0, 10'000); }},
      {"--web-root", "CHATD_WEB_ROOT", "directory of the built web client to serve at / (default: none)",
       [](Config& c, std::string_view v) {
         c.web_root = std::string(v);
         return true;
       }},
      {"--log-level", "CHATD_LOG_LEVEL", "debug, info, warn or error (default info)",
       [](Config& c, std::string_view v) {
         c.log_level = std::string(v);
         return v == "debug" || v == "info" || v == "warn" || v == "error";
       }},
  };
  return all;
}

}  // namespace

std::string usage() {
  std::string out =
      "usage: chatd [options]\n\nEach option can also be set by the environment variable shown.\n\n";
  for (const auto& o : options()) {
    out += "  ";
    out += o.flag;
    out += " VALUE  (";
    out += o.env;
    out += ")\n      ";
    out += o.help;
    out += "\n";
  }
  out += "  --help, --version\n";
  return out;
}

ParseResult parse_config(int argc, const char* const* argv, const char* (*env)(const char*)) {
  Config config;
  for (const auto& o : options()) {
    if (const char* v = env(o.env); v != nullptr && *v != '\0') {
      if (!o.apply(config, v))
        return {std::nullopt, 2, std::string("chatd: invalid value for ") + o.env + "\n"};
    }
  }
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") return {std::nullopt, 0, usage()};
    if (arg == "--version") return {std::nullopt, 0, "chatd " CHATD_VERSION "\n"};
    std::string_view value;
    bool have_value = false;
    if (const auto eq = arg.find('='); eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      have_value = true;
    }
    const Option* match = nullptr;
    for (const auto& o : options()) {
      if (arg == o.flag) match = &o;
    }
    if (match == nullptr)
      return {std::nullopt, 2, "chatd: unknown option " + std::string(arg) + "\n\n" + usage()};
    if (!have_value) {
      if (i + 1 >= argc) return {std::nullopt, 2, "chatd: " + std::string(arg) + " needs a value\n"};
      value = argv[++i];
    }
    if (!match->apply(config, value))
      return {std::nullopt, 2,
              "chatd: invalid value for " + std::string(arg) + ": " + std::string(value) + "\n"};
  }
  if (config.presence_node_ttl <= config.presence_heartbeat)
    return {std::nullopt, 2,
            "chatd: --presence-node-ttl-ms must be more than --presence-heartbeat-ms (a live node "
            "would look dead between two heartbeats)\n"};
  return {config, 0, {}};
}

}  // namespace chat::app
