#pragma once

#include "bus/bus.hpp"
#include "gateway/hub.hpp"
#include "net/asio.hpp"

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace chat::bus::redis {

// Cluster fan-out over Redis pub/sub (hiredis async, driven by Asio on one bus thread).
//
// Every node publishes every event to one shared channel and subscribes to it: one publisher and
// one subscriber connection per node. An event is always delivered locally first, through the
// Hub, whatever the state of Redis; a node skips the copies of its own events that come back from
// the channel. While Redis is unreachable, events are not forwarded (not queued): the other nodes'
// clients catch up with sync. Both connections reconnect with backoff (100 ms doubling to 5 s)
// and the subscriber subscribes again after each reconnect.
class RedisBus final : public Bus {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 6379;
    std::uint32_t node_id = 0;
    std::string channel = "chatd:events";
  };

  RedisBus(gateway::Hub& hub, Options options);
  ~RedisBus() override;
  RedisBus(const RedisBus&) = delete;
  RedisBus& operator=(const RedisBus&) = delete;

  // Starts the bus thread and connects. stop() closes both connections and joins the thread.
  void start();
  void stop();

  void publish(std::vector<domain::UserId> recipients,
               gateway::SharedFrame frame,
               std::uint64_t except_connection = 0) override;
  void revoke_session(domain::UserId user, domain::SessionId session) override;
  void publish_to_watchers(domain::UserId subject, gateway::SharedFrame frame) override;

  // True while both connections are up (for tests and logs).
  bool connected() const noexcept;

  // Token-cache invalidation (auth::TokenCache): tells every other node to drop `session`'s cached
  // tokens. Unlike events, invalidations are not dropped while the publisher is down: up to
  // kMaxPendingInvalidations wait and go out when it reconnects.
  void invalidate_tokens(domain::SessionId session);
  // Set before start(). Called on the bus thread: an invalidation from another node, and the
  // subscription going up (SUBSCRIBE confirmed: from now on no invalidation is missed) or down.
  std::function<void(domain::SessionId)> on_invalidate;
  std::function<void(bool)> on_subscription;

  class Link;  // one hiredis connection with reconnect (redis_bus.cpp)

 private:
  void forward(std::string payload);
  void flush_invalidations();  // bus thread
  void on_message(const char* data, std::size_t size);

  gateway::Hub& hub_;
  Options options_;
  net::io_context io_{1};
  std::unique_ptr<Link> publisher_;
  std::unique_ptr<Link> subscriber_;
  std::thread thread_;
  std::atomic<bool> publisher_up_{false};
  std::atomic<bool> subscriber_up_{false};
  bool started_ = false;
  std::deque<std::string> pending_invalidations_;  // bus thread
};

// Parses "redis://host:port" (port defaults to 6379). False if malformed.
bool parse_redis_url(std::string_view url, std::string& host, int& port);

}  // namespace chat::bus::redis
