#pragma once

#include "histogram.hpp"
#include "net.hpp"
#include "ws_conn.hpp"

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/json/object.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace bench {

// Everything a worker process needs, inherited from the coordinator through fork().
struct WorkerSetup {
  int index = 0;
  tcp::endpoint server;
  net::ip::address local;  // source address of all its sockets: 127.0.0.<2 + index>
  std::string run;         // run tag in every body: messages of other runs are ignored
  std::vector<ConnSpec> conns;
};

// The fields every bench message carries, in the body ("M|run|step|sender|seq|t_ns|xxx") and in the
// client_msg_id ("run-step-sender-seq-t_ns").
struct Mark {
  std::string_view run;
  std::int64_t step = 0;
  std::int64_t sender = 0;
  std::int64_t seq = 0;
  std::int64_t t_ns = 0;
};

// Counters of one traffic step (a step number is carried in each body and client_msg_id, so late
// acks and deliveries are attributed to the step that sent them).
struct StepStats {
  Histogram ack;      // send -> ack
  Histogram deliver;  // send -> message frame at a recipient
  std::uint64_t acked = 0;
  std::uint64_t delivered = 0;
  std::uint64_t duplicates = 0;  // a (conversation, seq) a connection already had
  std::uint64_t reordered = 0;   // arrived after a higher seq of its conversation (cluster mode)
  std::uint64_t send_errors = 0;
  std::map<std::string, std::uint64_t> error_codes;
};

// A worker process: holds a share of the connections on one single-threaded io_context and runs
// the commands the coordinator writes to its control socket, one JSON object per line, answering
// each with one line. Everything here runs on that one thread.
class Worker final : public ConnListener {
 public:
  Worker(WorkerSetup setup, int control_fd);
  int run();

  void on_frame(WsConn& conn, std::string_view frame) override;
  void on_closed(WsConn& conn, std::string_view reason) override;

 private:
  net::awaitable<void> control_loop();
  net::awaitable<void> pinger();
  net::awaitable<json::object> dispatch(const json::object& cmd);
  net::awaitable<json::object> cmd_connect(const json::object& cmd);
  net::awaitable<json::object> cmd_rate(const json::object& cmd);
  net::awaitable<json::object> cmd_pipeline(const json::object& cmd);
  json::object cmd_collect(const json::object& cmd);
  json::object cmd_stats();
  void cmd_close();

  void send_message(WsConn& conn, int step, std::size_t size);
  void on_send_done(WsConn& conn);
  void handle_other_frame(WsConn& conn, std::string_view frame);
  // A bench body ("run|step|sender|seq|t_ns|..." after "M|") of this run, not our own echo, of a
  // step not yet collected: its stats. Else counted and null.
  StepStats* accept_delivery(WsConn& conn, std::string_view mark_text, Mark& m);
  void on_peer_delivery(WsConn& conn, std::string_view mark_text, std::int64_t now);
  void on_nats_data(WsConn& conn, std::string_view data, std::int64_t now);
  void on_socketio_frame(WsConn& conn, std::string_view frame, std::int64_t now);
  StepStats& step_stats(int step);
  net::awaitable<void> sleep_for_ms(std::int64_t ms);

  WorkerSetup setup_;
  net::io_context ioc_;
  net::local::stream_protocol::socket control_;
  net::steady_timer timer_;
  std::vector<std::shared_ptr<WsConn>> conns_;  // by slot; null until connect
  std::unordered_map<int, StepStats> steps_;
  std::set<int> collected_;
  std::map<std::string, std::uint64_t> close_reasons_;
  std::map<std::string, std::uint64_t> counters_;
  std::uint64_t seq_ = 0;
  struct PendingAck {
    int step = 0;
    std::int64_t t_ns = 0;
  };
  std::unordered_map<std::uint64_t, PendingAck> pending_acks_;  // Socket.IO: ack id (= seq) -> send
  std::mt19937_64 rng_;
  bool stop_ = false;
  // Pipeline mode (W4, W5): each connection keeps `window` sends in flight until the budget or
  // the deadline runs out.
  struct Pipeline {
    bool active = false;
    int step = 0;
    int window = 0;
    std::size_t size = 100;
    std::int64_t budget = 0;  // sends left; < 0 = unlimited (until the deadline)
    std::int64_t deadline_ns = 0;
    std::uint64_t sent = 0;
    std::int64_t inflight = 0;
    std::int64_t last_ack_ns = 0;
  } pipe_;
};

// Entry point of a forked worker: never returns to the caller's stack frames.
[[noreturn]] void run_worker_process(WorkerSetup setup, int control_fd);

}  // namespace bench
