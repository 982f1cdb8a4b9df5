#pragma once

#include "histogram.hpp"
#include "net.hpp"
#include "proc_stats.hpp"
#include "ws_conn.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace bench {

struct Options {
  std::string workload;  // w1 .. w5
  tcp::endpoint server{net::ip::make_address("127.0.0.1"), 8080};
  // chatd processes for /proc sampling (empty: no server figures). Several for a cluster: their
  // CPU and RSS are summed.
  std::vector<int> server_pids;
  int workers = 0;    // worker processes; 0 = automatic
  std::string out;    // JSON result file ("" = stdout only)
  std::string label;  // "" = the protocol's name
  // The server's protocol: chatd, or a peer of ../shared/peers (nats, socketio; W2 and W3 only,
  // no REST setup: the peers need no registration). peer_auth: NATS's shared token, or the HMAC
  // secret of the Socket.IO server's login tokens.
  Proto proto = Proto::chatd;
  std::string peer_auth;
  std::string user_prefix = "cb_u";  // usernames <prefix><index>
  std::string password = "bench-password-1";
  std::size_t size = 100;     // message body bytes
  int setup_concurrency = 8;  // REST requests in flight during setup (argon2 bound)
  bool strict = false;        // exit 1 on any loss, duplicate or error (smoke)
  std::string setup_cache;    // JSON file of users/tokens/conversations (reuse a template)
  bool setup_only = false;    // register + create conversations, write the cache, exit
  // W1
  int conns = 1000;
  int users = 0;  // W1: distinct users (0: min(conns, 1000)); W2: users
  double hold_s = 30;
  int connect_concurrency = 200;
  // W2 / W3 ladders
  std::vector<double> rates;
  double step_s = 10;
  double drain_s = 2;
  double p99_limit_ms = 100;
  int refine = 0;
  bool stop_on_fail = true;
  int groups = 20;
  int group_size = 100;
  // W4
  int messages = 100000;
  int requests = 1000;
  int page = 50;
  // W4 / W5 pipelining
  int senders = 32;
  int window = 32;
  double duration_s = 10;
};

struct User {
  int index = 0;
  std::string id;
  std::string token;
};

struct WorkerHandle {
  int pid = 0;
  int fd = -1;
  std::string pending;  // bytes read past the last line
};

// Runs one workload: REST setup in this process, then fork()s worker processes that hold the
// WebSocket connections (each on its own source address 127.0.0.<2+k>, so one process stays under
// the open-file limit and each gets its own ephemeral port range), drives them over a socketpair
// with one JSON line per command, samples chatd from /proc and writes the report.
// Single-threaded; the setup io_context is gone before fork() so the children start clean.
class Coordinator {
 public:
  explicit Coordinator(Options opt);
  ~Coordinator();
  int run();  // exit code: 0 ok, 1 failed checks, 2 could not run

 private:
  // setup (REST)
  std::vector<User> register_users(int count);
  std::vector<std::string> create_direct(const std::vector<std::pair<int, int>>& pairs);
  std::vector<std::string> create_groups(int groups, int group_size);
  // Users and conversations from --setup-cache when its key matches, else made by `make` (which
  // fills users_) and written to the cache. Returns the conversation ids.
  std::vector<std::string> setup(const std::string& key,
                                 const std::function<std::vector<std::string>()>& make);
  // workers
  void start_workers(int count, const std::vector<ConnSpec>& specs);
  std::vector<json::object> call_all(const std::function<json::object(int k)>& make_cmd);
  void stop_workers();
  json::object connect_all(int concurrency);
  json::object worker_stats();
  // sampling
  struct Snap {
    std::int64_t t_ns = 0;
    ProcSample server;
    double machine_busy_s = 0;
    double driver_cpu_s = 0;
  };
  Snap snap() const;
  json::object window(const Snap& a, const Snap& b) const;
  // workloads
  json::object w1();
  json::object w2_or_w3(bool groups);
  json::object w4();
  json::object w5();
  json::object run_step(int step, double rate, bool groups, const json::object& connect, int group_size);
  void fail(const std::string& why);

  Options opt_;
  std::string run_;
  std::vector<User> users_;
  std::vector<WorkerHandle> workers_;
  std::vector<int> group_sizes_;  // members per group (pair) index
  json::array failures_;
  int next_step_ = 0;
};

// "1,2,3" -> {1,2,3}
std::vector<double> parse_list(const std::string& s);

}  // namespace bench
