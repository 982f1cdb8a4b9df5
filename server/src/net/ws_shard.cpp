#include "net/ws_shard.hpp"

#include "net/ws_session.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <ctime>
#include <fcntl.h>
#include <unistd.h>

namespace chat::transport {

WsShard::WsShard(net::io_context& io, Timing timing)
    : io_(io),
      timing_(timing),
      now_(std::chrono::steady_clock::now()),
      sweep_timer_(io),
      read_buffer_(new char[kReadBufferBytes]),
      coalesce_timer_(io),
      rate_window_start_(now_) {
  // Deadlines are checked at this granularity: a quarter of the shortest timeout, between 25 ms
  // and 1 s. With the defaults (60 s idle, 10 s auth) that is one tick per second.
  const auto shortest = std::min(timing_.idle_timeout, timing_.auth_timeout);
  sweep_period_ = std::clamp<std::chrono::steady_clock::duration>(shortest / 4, std::chrono::milliseconds(25),
                                                                  std::chrono::seconds(1));
  // The heartbeat (ping at half the idle timeout, drop at the whole) needs an eighth of the idle
  // timeout of precision: the full pass over every session runs that often, not every tick. With
  // the defaults: every 7 s. Sessions with a closer deadline (auth, close) are on deadlines_.
  const auto heartbeat_step =
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(timing_.idle_timeout) / 8;
  full_every_ = static_cast<std::uint32_t>(std::max<std::int64_t>(1, heartbeat_step / sweep_period_));
  coalescing_ = timing_.coalesce_window.count() > 0 && timing_.coalesce_min_sends_per_s == 0;
}

void WsShard::watch_deadline(const std::shared_ptr<WsSession>& session) {
  deadlines_.push_back(session);
}

WsShard::~WsShard() {
  if (schedstat_fd_ >= 0) ::close(schedstat_fd_);
  // Sessions still held by handlers of the (stopped) io_context are destroyed after this shard.
  for (auto* s : sessions_) s->slot = WsSession::kNoSlot;
  sessions_.clear();
}

void WsShard::add(WsSession* session) {
  session->slot = static_cast<std::uint32_t>(sessions_.size());
  sessions_.push_back(session);
  now_ = std::chrono::steady_clock::now();
  if (!sweeping_) arm_sweep();
}

void WsShard::remove(WsSession* session) {
  const auto i = session->slot;
  if (i >= sessions_.size() || sessions_[i] != session) return;
  session->slot = WsSession::kNoSlot;
  if (i + 1 != sessions_.size()) {
    sessions_[i] = sessions_.back();
    sessions_[i]->slot = i;
  }
  sessions_.pop_back();
}

void WsShard::mark_dirty(std::shared_ptr<WsSession> session) {
  dirty_.push_back(std::move(session));
  if (flush_posted_) return;
  flush_posted_ = true;
  // Posted behind whatever is already queued on this thread (e.g. more publish jobs), so frames
  // queued meanwhile go out in the same sendmsg.
  net::post(io_, [this] { flush(); });
}

void WsShard::flush() {
  flush_posted_ = false;
  flushing_.swap(dirty_);
  for (auto& s : flushing_) s->flush();
  update_rate();
  flushing_.clear();
  if (flushing_.capacity() > 4096) flushing_.shrink_to_fit();
}

void WsShard::mark_coalesced(std::shared_ptr<WsSession> session) {
  coalesced_.push_back(std::move(session));
  if (coalesce_armed_) return;
  coalesce_armed_ = true;
  coalesce_timer_.expires_after(timing_.coalesce_window);
  coalesce_timer_.async_wait([this](const boost::system::error_code& ec) {
    coalesce_armed_ = false;
    if (!ec) flush_coalesced();
  });
}

// A session may have been written meanwhile by a prompt frame's flush: then its queue is empty
// (or holds only newer frames) and this costs nothing, or one sendmsg for the newer frames.
void WsShard::flush_coalesced() {
  flushing_.swap(coalesced_);
  for (auto& s : flushing_) s->flush_coalesced();
  update_rate();
  flushing_.clear();
  if (flushing_.capacity() > 4096) flushing_.shrink_to_fit();
}

// How long the calling thread has run on a CPU or waited in a run queue for one (Linux's
// schedstat: the time it wanted a CPU; on a box whose cores are all taken, CPU time alone stays low
// however far behind the thread is). Only its CPU time where schedstat is missing.
std::chrono::nanoseconds WsShard::demand_time() noexcept {
  if (schedstat_fd_ == kSchedstatUnopened) {
    schedstat_fd_ = ::open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
  }
  if (schedstat_fd_ >= 0) {
    std::array<char, 96> text{};
    const auto n = ::pread(schedstat_fd_, text.data(), text.size() - 1, 0);
    unsigned long long run = 0;
    unsigned long long waited = 0;
    if (n > 0 && std::sscanf(text.data(), "%llu %llu", &run, &waited) == 2)
      return std::chrono::nanoseconds(run + waited);
  }
  timespec ts{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return {};
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

// Over windows of at least 50 ms, the sendmsg rate and the share of the window this thread wanted a
// CPU (demand_time) switch coalescing on when both reach their thresholds, and off when either
// falls below half of it: coalescing itself lowers both, and the gap keeps it from flapping.
void WsShard::update_rate() {
  if (timing_.coalesce_window.count() <= 0 || timing_.coalesce_min_sends_per_s == 0) return;
  const auto now = std::chrono::steady_clock::now();
  const auto elapsed = now - rate_window_start_;
  if (elapsed < std::chrono::milliseconds(50)) return;
  const double seconds = std::chrono::duration<double>(elapsed).count();
  const double per_s = static_cast<double>(sends_in_window_) / seconds;
  const auto demand = demand_time();
  const double busy_percent =
      100.0 * std::chrono::duration<double>(demand - demand_at_window_start_).count() / seconds;
  const double sends_on = timing_.coalesce_min_sends_per_s;
  const double busy_on = timing_.coalesce_min_busy_percent;
  coalescing_ = coalescing_ ? per_s >= sends_on / 2 && busy_percent >= busy_on / 2
                            : per_s >= sends_on && busy_percent >= busy_on;
  sends_in_window_ = 0;
  demand_at_window_start_ = demand;
  rate_window_start_ = now;
}

void WsShard::arm_sweep() {
  sweeping_ = true;
  sweep_timer_.expires_after(sweep_period_);
  sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) {
      sweeping_ = false;
      return;
    }
    sweep();
  });
}

void WsShard::sweep() {
  now_ = std::chrono::steady_clock::now();
  update_rate();  // also when nothing is flushed: coalescing ends when the traffic does
  // Collect first: acting may remove sessions from the lists.
  std::erase_if(deadlines_, [this](const std::weak_ptr<WsSession>& w) {
    auto s = w.lock();
    if (!s || !s->has_deadline()) return true;
    if (s->due(now_)) due_.push_back(std::move(s));
    return false;
  });
  if (deadlines_.empty() && deadlines_.capacity() > 1024)
    deadlines_.shrink_to_fit();  // after a connect storm
  if (++tick_ % full_every_ == 0) {
    // Duplicates with the list above are harmless: acting on a deadline twice does nothing more.
    for (auto* s : sessions_) {
      if (s->due(now_)) due_.push_back(s->shared_from_this());
    }
  }
  for (auto& s : due_) s->on_due(now_);
  due_.clear();
  if (sessions_.empty()) {
    sweeping_ = false;
    deadlines_.clear();
    return;
  }
  arm_sweep();
}

}  // namespace chat::transport
