#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace chat::api {
class Router;
}
namespace chat::gateway {
class Hub;
}
namespace chat::obs {
class Metrics;
}
namespace chat::presence {
class PresenceTracker;
}
namespace chat::service {
class ChatService;
}

namespace chat::transport {

class StaticFiles;

// What every HTTP and WebSocket session needs, owned by app/ and outliving all sessions.
struct ServerContext {
  struct Options {
    std::chrono::milliseconds ws_idle_timeout{60'000};
    std::chrono::milliseconds ws_coalesce{0};  // see WsShard
    std::uint32_t ws_coalesce_min_sends = 20'000;
    std::uint32_t ws_coalesce_min_busy = 70;  // percent of an I/O thread's time
    std::chrono::milliseconds auth_timeout{10'000};
    std::chrono::milliseconds http_idle_timeout{30'000};
    double send_rate_per_s = 50;
    std::vector<std::string> allowed_origins;  // full origins, e.g. "https://chat.example.org"
  };

  Options options;
  api::Router& router;
  service::ChatService& service;
  gateway::Hub& hub;
  obs::Metrics& metrics;
  presence::PresenceTracker& presence;
  const StaticFiles* web = nullptr;  // the web client, when --web-root is set
  // Requests being handled and WebSockets open: graceful shutdown waits for both to drain.
  std::atomic<std::int64_t> in_flight{0};
  std::atomic<std::int64_t> websockets{0};
  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> next_connection_id{1};
};

}  // namespace chat::transport
