#pragma once

#include "net/asio.hpp"

#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <sys/uio.h>
#include <vector>

namespace chat::transport {

class WsSession;

// What the WebSocket sessions of one I/O thread share, so that an idle session owns no timer, no
// coroutine and no buffer:
// - one read buffer: a readable socket is read into it and its complete frames are handled in
//   place; only the bytes of an unfinished frame are copied into the session;
// - the flush task: deliver() queues a frame and marks the session dirty; the first dirty session
//   posts one flush, which then writes every dirty session's queue with one sendmsg each;
// - one coarse periodic sweep for heartbeats, idle timeouts, auth deadlines and close deadlines;
// - write coalescing under load: while this thread makes more than `coalesce_min_sends_per_s`
//   sendmsg calls a second and wants a CPU (runs, or waits in a run queue) at least
//   `coalesce_min_busy_percent` of the time, sessions with only batchable frames queued (a big group's
//   fan-out, see gateway::Urgency) are written by one timer `coalesce_window` after the first such frame
//   instead of by the next flush, so a busy recipient's frames share one sendmsg. Below either,
//   or with a window of 0, every frame leaves with the next flush: a thread with CPU to spare
//   gains nothing by holding frames back.
// Touched by its own thread only.
class WsShard {
 public:
  struct Timing {
    std::chrono::milliseconds idle_timeout;
    std::chrono::milliseconds auth_timeout;
    std::chrono::milliseconds coalesce_window{0};
    std::uint32_t coalesce_min_sends_per_s = 20'000;  // 0: coalesce always
    std::uint32_t coalesce_min_busy_percent = 70;     // 0: the send rate alone decides
  };

  WsShard(net::io_context& io, Timing timing);
  WsShard(const WsShard&) = delete;
  WsShard& operator=(const WsShard&) = delete;
  ~WsShard();

  net::io_context& io() noexcept { return io_; }
  const Timing& timing() const noexcept { return timing_; }
  std::span<char> read_buffer() noexcept { return {read_buffer_.get(), kReadBufferBytes}; }
  // The time of the last sweep: a cheap clock for "last heard from" stamps.
  std::chrono::steady_clock::time_point coarse_now() const noexcept { return now_; }

  // Scratch for building one sendmsg: iovecs and the frame headers they point at.
  static constexpr std::size_t kIovMax = 512;  // <= IOV_MAX (1024); two iovecs per frame
  std::span<iovec> iov() noexcept { return iov_; }
  std::span<std::array<std::uint8_t, 10>> headers() noexcept { return headers_; }

  void add(WsSession* session);
  // A session with a deadline to watch closely (not yet authenticated, or closing): checked on
  // every sweep tick. The others only need the heartbeat check, done on every full sweep.
  void watch_deadline(const std::shared_ptr<WsSession>& session);
  void remove(WsSession* session);
  std::size_t size() const noexcept { return sessions_.size(); }

  void mark_dirty(std::shared_ptr<WsSession> session);
  // Whether batchable frames wait for the coalescing timer right now (see above).
  bool coalescing() const noexcept { return coalescing_; }
  void mark_coalesced(std::shared_ptr<WsSession> session);
  // One sendmsg made by a session of this shard (the load measure for coalescing).
  void count_send() noexcept { ++sends_in_window_; }

 private:
  static constexpr std::size_t kReadBufferBytes = 64 * 1024;

  void flush();
  void flush_coalesced();
  void update_rate();
  std::chrono::nanoseconds demand_time() noexcept;
  void arm_sweep();
  void sweep();

  net::io_context& io_;
  Timing timing_;
  std::chrono::steady_clock::duration sweep_period_;
  std::chrono::steady_clock::time_point now_;
  net::steady_timer sweep_timer_;
  bool sweeping_ = false;
  std::unique_ptr<char[]> read_buffer_;
  std::array<iovec, kIovMax> iov_{};
  std::array<std::array<std::uint8_t, 10>, kIovMax / 2> headers_{};
  std::vector<WsSession*> sessions_;
  std::vector<std::shared_ptr<WsSession>> dirty_;
  std::vector<std::shared_ptr<WsSession>> flushing_;
  std::vector<std::shared_ptr<WsSession>> coalesced_;  // waiting for coalesce_timer_
  net::steady_timer coalesce_timer_;
  std::chrono::steady_clock::time_point rate_window_start_;
  std::uint64_t sends_in_window_ = 0;
  std::chrono::nanoseconds demand_at_window_start_{0};
  static constexpr int kSchedstatUnopened = -2;
  int schedstat_fd_ = kSchedstatUnopened;  // this thread's /proc/thread-self/schedstat (-1: none)
  std::vector<std::shared_ptr<WsSession>> due_;
  std::vector<std::weak_ptr<WsSession>> deadlines_;  // see watch_deadline()
  std::uint32_t tick_ = 0;
  std::uint32_t full_every_ = 1;  // ticks between full sweeps
  bool flush_posted_ = false;
  bool coalescing_ = false;
  bool coalesce_armed_ = false;
};

}  // namespace chat::transport
