#include "coordinator.hpp"

#include "http_client.hpp"
#include "worker.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <signal.h>
#include <sstream>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace bench {

namespace http = beast::http;

namespace {

constexpr int setup_retries_max = 200;
constexpr auto setup_retry_delay = std::chrono::milliseconds(100);

std::string random_tag() {
  std::random_device rd;
  static constexpr char hex[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 6; ++i) s += hex[rd() % 16];
  return s;
}

void log(const std::string& s) {
  using namespace std::chrono;
  const auto t = system_clock::to_time_t(system_clock::now());
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", std::gmtime(&t));
  std::cerr << "[chat-bench " << buf << "] " << s << std::endl;
}

// Runs `task(i)` for i in [0, n) with `concurrency` coroutines on a private io_context, each with its
// own keep-alive HTTP connection. Throws if any task threw.
using HttpTask = std::function<net::awaitable<void>(HttpClient&, int)>;

struct PoolState {
  int next = 0;
  int n = 0;
  std::string error;
  const HttpTask* task = nullptr;
};

net::awaitable<void> pool_runner(PoolState* st, tcp::endpoint server) {
  auto ex = co_await net::this_coro::executor;
  HttpClient http(ex, server, net::ip::make_address("127.0.0.1"));
  while (st->next < st->n && st->error.empty()) {
    const int i = st->next++;
    try {
      co_await (*st->task)(http, i);
    } catch (const std::exception& e) {
      st->error = e.what();
    }
  }
}

void run_pool(const tcp::endpoint& server, int n, int concurrency, const HttpTask& task) {
  net::io_context ioc;
  PoolState st;
  st.n = n;
  st.task = &task;
  for (int c = 0; c < std::max(1, std::min(concurrency, n)); ++c) {
    net::co_spawn(ioc, pool_runner(&st, server), net::detached);
  }
  ioc.run();
  if (!st.error.empty()) throw std::runtime_error(st.error);
}

// A request retried while chatd says "later" (429 rate_limited, 503 unavailable / hasher busy).
net::awaitable<HttpResult> request_retry(HttpClient& http,
                                         http::verb verb,
                                         std::string_view target,
                                         const std::string* body,
                                         const std::string* token) {
  HttpResult r;
  for (int attempt = 0; attempt < setup_retries_max; ++attempt) {
    r = co_await http.request(verb, target, body, token);
    if (r.status != 0 && r.status != 429 && r.status != 503) co_return r;
    net::steady_timer t(co_await net::this_coro::executor);
    t.expires_after(setup_retry_delay);
    co_await t.async_wait(net::use_awaitable);
  }
  co_return r;
}

std::string str_at(const json::value& v, std::initializer_list<std::string_view> path) {
  const json::value* cur = &v;
  for (auto k : path) {
    const auto* o = cur->if_object();
    if (o == nullptr) return {};
    cur = o->if_contains(k);
    if (cur == nullptr) return {};
  }
  if (cur->is_string()) return std::string(cur->get_string());
  if (cur->is_int64()) return std::to_string(cur->get_int64());
  return {};
}

void write_line(int fd, const std::string& line) {
  std::size_t off = 0;
  while (off < line.size()) {
    const auto n = ::write(fd, line.data() + off, line.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("worker pipe write failed");
    }
    off += static_cast<std::size_t>(n);
  }
}

std::string read_line(WorkerHandle& w) {
  for (;;) {
    const auto nl = w.pending.find('\n');
    if (nl != std::string::npos) {
      std::string line = w.pending.substr(0, nl);
      w.pending.erase(0, nl + 1);
      return line;
    }
    char buf[65536];
    const auto n = ::read(w.fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("worker " + std::to_string(w.pid) + " died");
    w.pending.append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace

std::vector<double> parse_list(const std::string& s) {
  std::vector<double> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(std::stod(item));
  }
  return out;
}

Coordinator::Coordinator(Options opt) : opt_(std::move(opt)), run_(random_tag()) {}

Coordinator::~Coordinator() {
  stop_workers();
}

void Coordinator::fail(const std::string& why) {
  log("FAIL: " + why);
  failures_.emplace_back(why);
}

// ---------- setup over REST ----------

std::vector<User> Coordinator::register_users(int count) {
  std::vector<User> users(static_cast<std::size_t>(count));
  const auto t0 = mono_ns();
  HttpTask task = [this, &users](HttpClient& http, int i) -> net::awaitable<void> {
    auto& u = users[static_cast<std::size_t>(i)];
    u.index = i;
    const std::string name = opt_.user_prefix + std::to_string(i);
    const json::object reg{{"username", name},
                           {"email", name + "@bench.invalid"},
                           {"password", opt_.password},
                           {"device", json::object{{"type", "web"}, {"name", "chat-bench"}}}};
    const std::string body = json::serialize(reg);
    HttpResult r = co_await request_retry(http, http::verb::post, "/api/v1/auth/register", &body, nullptr);
    if (r.status == 409) {  // already registered (a reused server): log in instead
      const json::object login{{"login", name}, {"password", opt_.password}};
      const std::string lbody = json::serialize(login);
      r = co_await request_retry(http, http::verb::post, "/api/v1/auth/login", &lbody, nullptr);
    }
    if (r.status != 200 && r.status != 201) {
      throw std::runtime_error("register " + name + ": HTTP " + std::to_string(r.status) + " " + r.error +
                               " " + r.body.substr(0, 200));
    }
    const auto v = json::parse(r.body);
    u.id = str_at(v, {"user", "id"});
    u.token = str_at(v, {"session", "access_token"});
    if (u.id.empty() || u.token.empty()) throw std::runtime_error("register " + name + ": no id/token");
  };
  run_pool(opt_.server, count, opt_.setup_concurrency, task);
  const double s = static_cast<double>(mono_ns() - t0) / 1e9;
  log("registered " + std::to_string(count) + " users in " + std::to_string(s) + " s");
  return users;
}

std::vector<std::string> Coordinator::create_direct(const std::vector<std::pair<int, int>>& pairs) {
  std::vector<std::string> ids(pairs.size());
  HttpTask task = [this, &pairs, &ids](HttpClient& http, int i) -> net::awaitable<void> {
    const auto [a, b] = pairs[static_cast<std::size_t>(i)];
    const json::object req{{"type", "direct"}, {"user_id", users_[static_cast<std::size_t>(b)].id}};
    const std::string body = json::serialize(req);
    const std::string* token = &users_[static_cast<std::size_t>(a)].token;
    HttpResult r = co_await request_retry(http, http::verb::post, "/api/v1/conversations", &body, token);
    if (r.status != 200 && r.status != 201) {
      throw std::runtime_error("create direct: HTTP " + std::to_string(r.status) + " " +
                               r.body.substr(0, 200));
    }
    ids[static_cast<std::size_t>(i)] = str_at(json::parse(r.body), {"id"});
  };
  run_pool(opt_.server, static_cast<int>(pairs.size()), 16, task);
  return ids;
}

std::vector<std::string> Coordinator::create_groups(int groups, int group_size) {
  std::vector<std::string> ids(static_cast<std::size_t>(groups));
  HttpTask task = [this, &ids, group_size](HttpClient& http, int g) -> net::awaitable<void> {
    json::array members;
    for (int m = 1; m < group_size; ++m)
      members.emplace_back(users_[static_cast<std::size_t>(g * group_size + m)].id);
    const json::object req{
        {"type", "group"}, {"name", "bench g" + std::to_string(g)}, {"member_ids", members}};
    const std::string body = json::serialize(req);
    const std::string* token = &users_[static_cast<std::size_t>(g * group_size)].token;
    HttpResult r = co_await request_retry(http, http::verb::post, "/api/v1/conversations", &body, token);
    if (r.status != 201) {
      throw std::runtime_error("create group: HTTP " + std::to_string(r.status) + " " +
                               r.body.substr(0, 200));
    }
    ids[static_cast<std::size_t>(g)] = str_at(json::parse(r.body), {"id"});
  };
  run_pool(opt_.server, groups, 8, task);
  return ids;
}

std::vector<std::string> Coordinator::setup(const std::string& key,
                                            const std::function<std::vector<std::string>()>& make) {
  // Tokens belong to the data directory, not to the address chatd listens on.
  const std::string full_key = key + "|" + opt_.user_prefix;
  if (!opt_.setup_cache.empty()) {
    const auto text = read_small_file(opt_.setup_cache);
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    if (!ec && v.is_object() && str_at(v, {"key"}) == full_key) {
      const auto& o = v.as_object();
      users_.clear();
      int i = 0;
      for (const auto& u : o.at("users").as_array()) {
        const auto& a = u.as_array();
        users_.push_back(User{i++, std::string(a.at(0).as_string()), std::string(a.at(1).as_string())});
      }
      std::vector<std::string> convs;
      for (const auto& c : o.at("convs").as_array()) convs.emplace_back(c.as_string());
      log("setup: " + std::to_string(users_.size()) + " users and " + std::to_string(convs.size()) +
          " conversations from " + opt_.setup_cache);
      return convs;
    }
  }
  auto convs = make();
  if (!opt_.setup_cache.empty()) {
    json::array users;
    for (const auto& u : users_) users.push_back(json::array{json::string(u.id), json::string(u.token)});
    json::array cs;
    for (const auto& c : convs) cs.emplace_back(c);
    const json::object o{{"key", full_key}, {"users", users}, {"convs", cs}};
    std::ofstream f(opt_.setup_cache);
    f << json::serialize(o) << "\n";
    log("setup written to " + opt_.setup_cache);
  }
  return convs;
}

// ---------- workers ----------

void Coordinator::start_workers(int count, const std::vector<ConnSpec>& specs) {
  std::fflush(nullptr);
  for (int k = 0; k < count; ++k) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw std::runtime_error("socketpair");
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork");
    if (pid == 0) {
      ::close(sv[0]);
      for (auto& w : workers_) ::close(w.fd);
      WorkerSetup setup;
      setup.index = k;
      setup.server = opt_.server;
      setup.local = net::ip::make_address_v4("127.0.0." + std::to_string(2 + k));
      setup.run = run_;
      for (std::size_t i = static_cast<std::size_t>(k); i < specs.size();
           i += static_cast<std::size_t>(count)) {
        setup.conns.push_back(specs[i]);
      }
      run_worker_process(std::move(setup), sv[1]);
    }
    ::close(sv[1]);
    workers_.push_back(WorkerHandle{pid, sv[0], {}});
  }
}

std::vector<json::object> Coordinator::call_all(const std::function<json::object(int)>& make_cmd) {
  for (std::size_t k = 0; k < workers_.size(); ++k) {
    write_line(workers_[k].fd, json::serialize(make_cmd(static_cast<int>(k))) + "\n");
  }
  std::vector<json::object> out;
  for (auto& w : workers_) {
    auto v = json::parse(read_line(w));
    auto& o = v.as_object();
    if (const auto* e = o.if_contains("error")) throw std::runtime_error("worker: " + json::serialize(*e));
    out.push_back(std::move(o));
  }
  return out;
}

void Coordinator::stop_workers() {
  for (auto& w : workers_) {
    if (w.fd >= 0) {
      try {
        write_line(w.fd, "{\"cmd\":\"exit\"}\n");
        read_line(w);
      } catch (const std::exception&) {
        // already gone: waitpid below reaps it
      }
      ::close(w.fd);
      w.fd = -1;
    }
  }
  for (auto& w : workers_) {
    int status = 0;
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(w.pid, &status, WNOHANG) != 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (i == 99) {
        ::kill(w.pid, SIGKILL);
        ::waitpid(w.pid, &status, 0);
      }
    }
  }
  workers_.clear();
}

json::object Coordinator::connect_all(int concurrency) {
  const int per = std::max(1, concurrency / static_cast<int>(workers_.size()));
  const auto rs = call_all([per](int) {
    return json::object{{"cmd", "connect"}, {"concurrency", per}, {"timeout_ms", 300000}};
  });
  std::uint64_t ok = 0;
  std::uint64_t failed = 0;
  std::uint64_t target = 0;
  std::int64_t t_start = INT64_MAX;
  std::int64_t t_last = 0;
  Histogram lat;
  json::object errors;
  json::object failed_by_group;
  for (const auto& r : rs) {
    ok += r.at("ok").to_number<std::uint64_t>();
    failed += r.at("failed").to_number<std::uint64_t>() + r.at("pending").to_number<std::uint64_t>();
    target += r.at("target").to_number<std::uint64_t>();
    t_start = std::min(t_start, r.at("t_start_ns").to_number<std::int64_t>());
    t_last = std::max(t_last, r.at("t_last_ok_ns").to_number<std::int64_t>());
    lat.merge(Histogram::decode(r.at("latency").as_string()));
    for (const auto& [k, v] : r.at("errors").as_object()) {
      errors[k] =
          (errors.contains(k) ? errors[k].to_number<std::uint64_t>() : 0) + v.to_number<std::uint64_t>();
    }
    for (const auto& [k, v] : r.at("failed_by_group").as_object()) {
      failed_by_group[k] = (failed_by_group.contains(k) ? failed_by_group[k].to_number<std::uint64_t>() : 0) +
                           v.to_number<std::uint64_t>();
    }
  }
  const double span_s = static_cast<double>(t_last - t_start) / 1e9;
  json::object out{{"target", target},
                   {"ok", ok},
                   {"failed", failed},
                   {"errors", errors},
                   {"failed_by_group", failed_by_group},
                   {"to_last_ok_s", span_s},
                   {"rate_per_s", span_s > 0 ? static_cast<double>(ok) / span_s : 0.0},
                   {"concurrency", per * static_cast<int>(workers_.size())},
                   {"latency", lat.summary_ms()}};
  log("connected " + std::to_string(ok) + "/" + std::to_string(target) + " in " + std::to_string(span_s) +
      " s" +
      (failed ? " (" + std::to_string(failed) + " failed: " + json::serialize(errors) + ")" : std::string()));
  if (failed)
    fail("connect: " + std::to_string(failed) + " of " + std::to_string(target) + " connections failed");
  return out;
}

json::object Coordinator::worker_stats() {
  const auto rs = call_all([](int) { return json::object{{"cmd", "stats"}}; });
  std::uint64_t connected = 0;
  json::object counters;
  json::object reasons;
  json::array rss;
  auto add = [](json::object& into, const json::object& from) {
    for (const auto& [k, v] : from) {
      into[k] = (into.contains(k) ? into[k].to_number<std::uint64_t>() : 0) + v.to_number<std::uint64_t>();
    }
  };
  for (const auto& r : rs) {
    connected += r.at("connected").to_number<std::uint64_t>();
    add(counters, r.at("counters").as_object());
    add(reasons, r.at("close_reasons").as_object());
    rss.push_back(r.at("rss_kb"));
  }
  return json::object{
      {"connected", connected}, {"counters", counters}, {"close_reasons", reasons}, {"worker_rss_kb", rss}};
}

// ---------- sampling ----------

Coordinator::Snap Coordinator::snap() const {
  Snap s;
  s.t_ns = mono_ns();
  s.server = sample_processes(opt_.server_pids);
  s.machine_busy_s = machine_busy_s();
  std::vector<int> pids{static_cast<int>(::getpid())};
  for (const auto& w : workers_) pids.push_back(w.pid);
  s.driver_cpu_s = cpu_of(pids);
  return s;
}

json::object Coordinator::window(const Snap& a, const Snap& b) const {
  const double wall = static_cast<double>(b.t_ns - a.t_ns) / 1e9;
  const double server = b.server.cpu_s - a.server.cpu_s;
  const double driver = b.driver_cpu_s - a.driver_cpu_s;
  const double other = std::max(0.0, (b.machine_busy_s - a.machine_busy_s) - server - driver);
  return json::object{{"wall_s", wall},
                      {"server_cpu_s", server},
                      {"server_cpu_util", wall > 0 ? server / wall : 0.0},
                      {"driver_cpu_s", driver},
                      {"other_cpu_s", other}};
}

// ---------- main ----------

int Coordinator::run() {
  json::object result;
  result["tool"] = "chat-bench";
  result["label"] = opt_.label;
  result["proto"] = opt_.proto == Proto::chatd ? "chatd" : opt_.proto == Proto::nats ? "nats" : "socketio";
  result["workload"] = opt_.workload;
  result["run"] = run_;
  {
    using namespace std::chrono;
    const auto t = system_clock::to_time_t(system_clock::now());
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    result["started_at"] = buf;
  }
  double load[3] = {0, 0, 0};
  if (::getloadavg(load, 3) < 0) load[0] = -1;
  std::string cpu_model;
  {
    const auto info = read_small_file("/proc/cpuinfo");
    const auto p = info.find("model name");
    if (p != std::string::npos) {
      const auto colon = info.find(':', p);
      cpu_model = info.substr(colon + 2, info.find('\n', colon) - colon - 2);
    }
  }
  std::string kernel = read_small_file("/proc/sys/kernel/osrelease");
  if (!kernel.empty() && kernel.back() == '\n') kernel.pop_back();
  result["machine"] = json::object{{"nproc", std::thread::hardware_concurrency()},
                                   {"cpu_model", cpu_model},
                                   {"kernel", kernel},
                                   {"loadavg_before", load[0]}};
  result["server"] =
      json::object{{"endpoint", opt_.server.address().to_string() + ":" + std::to_string(opt_.server.port())},
                   {"pids", json::array(opt_.server_pids.begin(), opt_.server_pids.end())},
                   {"alive_at_start", sample_processes(opt_.server_pids).alive}};
  int code = 0;
  try {
    json::object r;
    if (opt_.workload == "w1")
      r = w1();
    else if (opt_.workload == "w2")
      r = w2_or_w3(false);
    else if (opt_.workload == "w3")
      r = w2_or_w3(true);
    else if (opt_.workload == "w4")
      r = w4();
    else if (opt_.workload == "w5")
      r = w5();
    else
      throw std::runtime_error("unknown workload " + opt_.workload);
    for (auto& [k, v] : r) result[k] = v;
    if (opt_.setup_only) {
      std::cerr << "setup done\n";
      return 0;
    }
  } catch (const std::exception& e) {
    log(std::string("error: ") + e.what());
    result["error"] = e.what();
    code = 2;
  }
  stop_workers();
  if (!opt_.server_pids.empty() && !sample_processes(opt_.server_pids).alive)
    fail("a chatd process (--server-pid) is not running at the end");
  result["failures"] = failures_;
  result["ok"] = code == 0 && failures_.empty();
  if (code == 0 && !failures_.empty()) code = 1;
  const std::string text = json::serialize(result);
  if (!opt_.out.empty()) {
    std::ofstream f(opt_.out);
    f << text << "\n";
    log("wrote " + opt_.out);
  } else {
    std::cout << text << "\n";
  }
  return code;
}

}  // namespace bench
