#include "presence/presence_tracker.hpp"

#include "bus/bus.hpp"
#include "gateway/protocol.hpp"
#include "net/run_thread.hpp"
#include "obs/log.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/steady_timer.hpp>

#include <future>
#include <memory>

namespace chat::presence {

PresenceTracker::PresenceTracker(
    net::io_context& timers, bus::Bus& bus, std::chrono::milliseconds grace, ClockMs clock, LastSeenSink sink)
    : timers_(timers),
      bus_(bus),
      owned_(std::make_unique<LocalPresenceDirectory>()),
      directory_(*owned_),
      options_{},
      clock_(std::move(clock)),
      sink_(std::move(sink)) {
  options_.grace = grace;
}

PresenceTracker::PresenceTracker(net::io_context& timers,
                                 bus::Bus& bus,
                                 PresenceDirectory& directory,
                                 Options options,
                                 ClockMs clock,
                                 LastSeenSink sink)
    : timers_(timers),
      bus_(bus),
      directory_(directory),
      options_(options),
      clock_(std::move(clock)),
      sink_(std::move(sink)) {}

PresenceTracker::~PresenceTracker() {
  stop();
}

void PresenceTracker::start() {
  if (!options_.remote || started_) return;
  started_ = true;
  tick_timer_ = std::make_unique<net::steady_timer>(io_);
  net::post(io_, [this] {
    try {
      directory_.reset_node(options_.node_id, clock_(), options_.grace);
    } catch (const std::exception& e) {
      redis_failed(e);
    }
    tick();
  });
  thread_ = std::thread([this] {
    auto guard = net::make_work_guard(io_);
    transport::run_io_thread(io_, "chatd-presence");
  });
}

void PresenceTracker::stop() {
  if (!started_) return;
  started_ = false;
  std::promise<void> done;
  net::post(io_, [this, &done] {
    tick_timer_->cancel();
    done.set_value();
  });
  done.get_future().wait();
  io_.stop();
  thread_.join();
}

void PresenceTracker::publish(domain::UserId user, const Status& status) {
  bus_.publish_to_watchers(user, std::make_shared<const std::string>(
                                     gateway::frames::presence(user, status.online, status.last_seen)));
}

void PresenceTracker::redis_failed(const std::exception& e) {
  if (!degraded_)
    obs::log_warn(std::string("presence: directory unavailable, serving local state: ") + e.what());
  degraded_ = true;
}

void PresenceTracker::went_offline(domain::UserId user, domain::TimeMs when) {
  publish(user, Status{false, when});
  if (sink_) sink_(user, when);
}

void PresenceTracker::report(domain::UserId user) {
  int count = 0;
  {
    std::lock_guard lock(mutex_);
    auto it = local_.find(user);
    if (it != local_.end()) {
      count = it->second;
      if (count == 0) local_.erase(it);
    }
  }
  PresenceDirectory::Update u;
  try {
    u = directory_.set_count(user, options_.node_id, count, clock_(), options_.grace);
  } catch (const std::exception& e) {
    redis_failed(e);
    dirty_.insert(user);
    return;
  }
  if (u.went_online) publish(user, Status{true, u.last_seen});
  if (u.pending != 0) schedule_expire(user, u.pending);
}

void PresenceTracker::schedule_expire(domain::UserId user, std::uint64_t generation) {
  auto& io = options_.remote ? io_ : timers_;
  auto timer = std::make_shared<net::steady_timer>(io, options_.grace);
  timer->async_wait([this, timer, user, generation](const boost::system::error_code& ec) {
    if (ec) return;  // shutting down
    std::optional<domain::TimeMs> when;
    try {
      when = directory_.expire(user, generation, clock_());
    } catch (const std::exception& e) {
      redis_failed(e);  // the sweep of whichever node sees it overdue ends it
      return;
    }
    if (when) went_offline(user, *when);
  });
}

void PresenceTracker::tick() {
  try {
    const bool rejoined = directory_.heartbeat(options_.node_id, clock_(), options_.node_ttl);
    if (rejoined && registered_ && !degraded_) {
      // Other nodes' sweeps declared this node dead (it missed heartbeats for the node TTL: a
      // stall) and forgot its devices: report them again, like after a Redis outage.
      obs::log_warn("presence: this node was declared dead (missed heartbeats); re-reporting its users");
      degraded_ = true;
    }
    registered_ = true;
    if (degraded_) {
      // Back: re-report every user this node holds or changed while Redis was away.
      std::vector<domain::UserId> users(dirty_.begin(), dirty_.end());
      {
        std::lock_guard lock(mutex_);
        for (const auto& [user, n] : local_) users.push_back(user);
      }
      degraded_ = false;
      dirty_.clear();
      obs::log_info("presence: directory reachable again; re-reporting " + std::to_string(users.size()) +
                    " users");
      for (auto user : users) report(user);
    }
    if (!degraded_) {
      for (const auto& off : directory_.sweep(clock_(), options_.sweep_slack))
        went_offline(off.user, off.last_seen);
    }
  } catch (const std::exception& e) {
    redis_failed(e);
  }
  tick_timer_->expires_after(options_.heartbeat);
  tick_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (!ec) tick();
  });
}

void PresenceTracker::connected(domain::UserId user) {
  {
    std::lock_guard lock(mutex_);
    ++local_[user];
  }
  if (options_.remote) {
    net::post(io_, [this, user] { report(user); });
  } else {
    std::lock_guard lock(report_mutex_);
    report(user);
  }
}

void PresenceTracker::disconnected(domain::UserId user) {
  {
    std::lock_guard lock(mutex_);
    auto it = local_.find(user);
    if (it == local_.end() || it->second == 0) return;
    --it->second;
  }
  if (options_.remote) {
    net::post(io_, [this, user] { report(user); });
  } else {
    std::lock_guard lock(report_mutex_);
    report(user);
  }
}

std::vector<std::optional<PresenceTracker::Status>> PresenceTracker::lookup(
    const std::vector<domain::UserId>& users) const {
  try {
    return directory_.statuses(users);
  } catch (const std::exception&) {
    // Redis away: this node's own devices are all it knows.
    std::vector<std::optional<Status>> out(users.size());
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < users.size(); ++i) {
      auto it = local_.find(users[i]);
      if (it != local_.end() && it->second > 0) out[i] = Status{true, std::nullopt};
    }
    return out;
  }
}

// Only a pointer crosses async_initiate (see StoreService::write for the GCC 12 reason).
net::awaitable<std::vector<std::optional<PresenceTracker::Status>>> PresenceTracker::statuses(
    std::vector<domain::UserId> users) {
  using Result = std::vector<std::optional<Status>>;
  if (users.size() > PresenceDirectory::kMaxStatusBatch) users.resize(PresenceDirectory::kMaxStatusBatch);
  if (!options_.remote || !started_) co_return lookup(users);
  auto* owned = new std::vector<domain::UserId>(std::move(users));
  auto op = net::async_initiate<const net::use_awaitable_t<>&, void(std::exception_ptr, Result)>(
      [this, owned](auto handler) {
        auto work = net::make_work_guard(net::get_associated_executor(handler));
        net::post(io_, [this, list = std::unique_ptr<std::vector<domain::UserId>>(owned),
                        handler = std::move(handler), work = std::move(work)]() mutable {
          std::exception_ptr error;
          Result result;
          try {
            result = lookup(*list);
          } catch (...) {
            error = std::current_exception();
          }
          list.reset();
          auto ex = work.get_executor();
          net::post(ex, [handler = std::move(handler), error, result = std::move(result)]() mutable {
            std::move(handler)(error, std::move(result));
          });
        });
      },
      net::use_awaitable);
  auto result = co_await std::move(op);
  co_return result;
}

std::optional<PresenceTracker::Status> PresenceTracker::status(domain::UserId user) const {
  try {
    return directory_.status(user);
  } catch (const std::exception&) {
    std::lock_guard lock(mutex_);
    auto it = local_.find(user);
    if (it != local_.end() && it->second > 0) return Status{true, std::nullopt};
    return std::nullopt;
  }
}

}  // namespace chat::presence
