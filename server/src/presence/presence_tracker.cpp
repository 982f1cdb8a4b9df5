#include "presence/presence_tracker.hpp"

#include "bus/bus.hpp"
#include "gateway/protocol.hpp"

#include <boost/asio/steady_timer.hpp>

#include <memory>

namespace chat::presence {

PresenceTracker::PresenceTracker(
    net::io_context& timers, bus::Bus& bus, std::chrono::milliseconds grace, ClockMs clock, LastSeenSink sink)
    : timers_(timers), bus_(bus), grace_(grace), clock_(std::move(clock)), sink_(std::move(sink)) {}

void PresenceTracker::publish(domain::UserId user, const Status& status) {
  bus_.publish_to_watchers(user, std::make_shared<const std::string>(
                                     gateway::frames::presence(user, status.online, status.last_seen)));
}

void PresenceTracker::connected(domain::UserId user) {
  std::optional<Status> changed;
  {
    std::lock_guard lock(mutex_);
    auto& e = users_[user];
    ++e.connections;
    ++e.generation;
    if (!e.online) {
      e.online = true;
      changed = Status{true, e.last_seen};
    }
  }
  if (changed) publish(user, *changed);
}

void PresenceTracker::disconnected(domain::UserId user) {
  std::uint64_t generation = 0;
  {
    std::lock_guard lock(mutex_);
    auto& e = users_[user];
    if (e.connections > 0) --e.connections;
    if (e.connections > 0) return;
    generation = ++e.generation;
  }
  auto timer = std::make_shared<net::steady_timer>(timers_, grace_);
  timer->async_wait([this, timer, user, generation](const boost::system::error_code& ec) {
    if (ec) return;  // shutting down
    std::optional<Status> changed;
    {
      std::lock_guard lock(mutex_);
      auto& e = users_[user];
      if (e.generation != generation || e.connections > 0 || !e.online) return;
      e.online = false;
      e.last_seen = clock_();
      changed = Status{false, e.last_seen};
    }
    publish(user, *changed);
    if (sink_) sink_(user, *changed->last_seen);
  });
}

std::optional<PresenceTracker::Status> PresenceTracker::status(domain::UserId user) const {
  std::lock_guard lock(mutex_);
  auto it = users_.find(user);
  if (it == users_.end()) return std::nullopt;
  return Status{it->second.online, it->second.last_seen};
}

}  // namespace chat::presence
