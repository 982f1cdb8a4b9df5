// chat-bench: load generator for chatd. See bench/README.md, or run `chat-bench --help`.
#include "coordinator.hpp"

#include <iostream>
#include <signal.h>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::string_view usage =
    R"(usage: chat-bench --workload w1|w2|w3|w4|w5 --server HOST:PORT --server-pid PID[,PID..] [options]

Drives chatd only through its public protocol (REST setup, WebSocket traffic). chatd must run with
--rate-auth-ip-per-min 10000000 --rate-auth-account-per-min 10000000 --rate-send-per-sec 100000.
Workers are forked after the setup; worker k binds its sockets to 127.0.0.<2+k>.

common:   --proto chatd|nats|socketio (chatd; the peers of ../shared/peers: W2 and W3 only, see README)
          --peer-auth S (nats: token, bench-token; socketio: HMAC secret, bench-secret)
          --workers K (auto)  --out FILE.json  --label NAME  --size BYTES (100)  --strict
          --setup-cache FILE (reuse users/tokens/conversations of a copied data dir)  --setup-only
          --user-prefix P (cb_u)  --password PW  --setup-concurrency N (8)  --connect-concurrency N (200)
W1 idle:  --conns N (1000)  --users U (min(N,1000); connections share the users' sessions)  --hold S (30)
W2 1:1:   --users U (1000)  --rates 500,1000,2000,4000,8000,16000  --step S (10)  --drain S (2)
W3 group: --groups G (20)  --group-size M (100)  --rates 250,500,1000,2000,3000,4000,6000  --step S  --drain S
          --p99-limit-ms MS (100)  --refine N (0)   (W2/W3 stop at the first failing step; --no-stop runs all)
W4 hist:  --messages M (100000; --big = 1000000)  --requests R (1000)  --page N (50)  --window W (32)
W5 ingest:--senders S (32)  --window W (32 sends in flight per sender)  --duration S (10)
Exit status: 0 all checks passed, 1 a check failed (loss, duplicates, errors, ...), 2 could not run.
)";

bench::tcp::endpoint parse_endpoint(const std::string& s) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument("--server wants HOST:PORT");
  return {bench::net::ip::make_address(s.substr(0, colon)),
          static_cast<unsigned short>(std::stoi(s.substr(colon + 1)))};
}

// "123" or "11,12,13" (a cluster's nodes).
std::vector<int> parse_pids(const std::string& s) {
  std::vector<int> pids;
  std::size_t start = 0;
  while (start <= s.size()) {
    const auto comma = s.find(',', start);
    const auto part = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const int pid = std::stoi(part);
    if (pid <= 0) throw std::invalid_argument("--server-pid wants positive PIDs");
    pids.push_back(pid);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return pids;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  bench::Options o;
  bool big = false;
  bool messages_set = false;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return argv[++i];
      };
      if (a == "--help" || a == "-h") {
        std::cout << usage;
        return 0;
      }
      if (a == "--workload")
        o.workload = next();
      else if (a == "--server")
        o.server = parse_endpoint(next());
      else if (a == "--server-pid")
        o.server_pids = parse_pids(next());
      else if (a == "--workers")
        o.workers = std::stoi(next());
      else if (a == "--out")
        o.out = next();
      else if (a == "--proto") {
        const auto p = next();
        if (p == "chatd")
          o.proto = bench::Proto::chatd;
        else if (p == "nats")
          o.proto = bench::Proto::nats;
        else if (p == "socketio")
          o.proto = bench::Proto::socketio;
        else
          throw std::invalid_argument("--proto wants chatd, nats or socketio");
      } else if (a == "--peer-auth")
        o.peer_auth = next();
      else if (a == "--label")
        o.label = next();
      else if (a == "--size")
        o.size = std::stoul(next());
      else if (a == "--strict")
        o.strict = true;
      else if (a == "--setup-cache")
        o.setup_cache = next();
      else if (a == "--setup-only")
        o.setup_only = true;
      else if (a == "--user-prefix")
        o.user_prefix = next();
      else if (a == "--password")
        o.password = next();
      else if (a == "--setup-concurrency")
        o.setup_concurrency = std::stoi(next());
      else if (a == "--connect-concurrency")
        o.connect_concurrency = std::stoi(next());
      else if (a == "--conns")
        o.conns = std::stoi(next());
      else if (a == "--users")
        o.users = std::stoi(next());
      else if (a == "--hold")
        o.hold_s = std::stod(next());
      else if (a == "--rates")
        o.rates = bench::parse_list(next());
      else if (a == "--step")
        o.step_s = std::stod(next());
      else if (a == "--drain")
        o.drain_s = std::stod(next());
      else if (a == "--p99-limit-ms")
        o.p99_limit_ms = std::stod(next());
      else if (a == "--refine")
        o.refine = std::stoi(next());
      else if (a == "--no-stop")
        o.stop_on_fail = false;
      else if (a == "--groups")
        o.groups = std::stoi(next());
      else if (a == "--group-size")
        o.group_size = std::stoi(next());
      else if (a == "--messages") {
        o.messages = std::stoi(next());
        messages_set = true;
      } else if (a == "--big")
        big = true;
      else if (a == "--requests")
        o.requests = std::stoi(next());
      else if (a == "--page")
        o.page = std::stoi(next());
      else if (a == "--senders")
        o.senders = std::stoi(next());
      else if (a == "--window")
        o.window = std::stoi(next());
      else if (a == "--duration")
        o.duration_s = std::stod(next());
      else
        throw std::invalid_argument("unknown option " + a);
    }
    if (big && !messages_set) o.messages = 1000000;
    if (o.workload.empty()) throw std::invalid_argument("--workload is required");
    if (o.proto != bench::Proto::chatd && o.workload != "w2" && o.workload != "w3")
      throw std::invalid_argument("--proto " +
                                  std::string(o.proto == bench::Proto::nats ? "nats" : "socketio") +
                                  " runs w2 and w3 only");
    if (o.label.empty())
      o.label = o.proto == bench::Proto::nats       ? "nats"
                : o.proto == bench::Proto::socketio ? "socketio"
                                                    : "chatd";
    if (o.peer_auth.empty()) o.peer_auth = o.proto == bench::Proto::nats ? "bench-token" : "bench-secret";
  } catch (const std::exception& e) {
    std::cerr << "chat-bench: " << e.what() << "\n\n" << usage;
    return 2;
  }
  bench::Coordinator c(std::move(o));
  return c.run();
}
