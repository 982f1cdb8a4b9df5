// The five workloads of chat-bench (see bench/README.md for what each measures and why).
#include "coordinator.hpp"
#include "http_client.hpp"

#include <boost/beast/http/verb.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_from.hpp>

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <thread>
#include <unistd.h>

namespace bench {

namespace http = beast::http;

namespace {

void log(const std::string& s) {
  std::cerr << "[chat-bench] " << s << std::endl;
}

// The Socket.IO peer's login token: "<user>.<first 32 hex digits of HMAC-SHA256(secret, user)>".
std::string socketio_token(int user, const std::string& secret) {
  const std::string u = std::to_string(user);
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>(secret.data()), secret.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(u.data()), u.size());
  crypto_auth_hmacsha256_final(&st, mac);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = u + ".";
  for (int i = 0; i < 16; ++i) {
    out += hex[mac[i] >> 4];
    out += hex[mac[i] & 15];
  }
  return out;
}

void sleep_s(double s) {
  std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

double num(const json::value& v) {
  return v.is_null() ? 0.0 : v.to_number<double>();
}

std::string fmt(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string ms(const json::object& lat, const char* key) {
  const auto& v = lat.at(key);
  return v.is_null() ? "-" : fmt(v.to_number<double>(), 3);
}

// A human table on stdout: one header row and rows of cells, columns padded to the widest cell.
void print_table(const std::string& title, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> w;
  for (const auto& r : rows) {
    w.resize(std::max(w.size(), r.size()));
    for (std::size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
  }
  std::cout << "\n" << title << "\n";
  for (std::size_t ri = 0; ri < rows.size(); ++ri) {
    for (std::size_t i = 0; i < rows[ri].size(); ++i) {
      std::cout << (i ? "  " : "") << std::string(w[i] - rows[ri][i].size(), ' ') << rows[ri][i];
    }
    std::cout << "\n";
    if (ri == 0) {
      std::size_t total = 0;
      for (auto x : w) total += x + 2;
      std::cout << std::string(total, '-') << "\n";
    }
  }
  std::cout.flush();
}

std::uint64_t counter(const json::object& stats, const char* name) {
  const auto& c = stats.at("counters").as_object();
  return c.contains(name) ? c.at(name).to_number<std::uint64_t>() : 0;
}

}  // namespace

// ---------- W1: idle connections ----------

json::object Coordinator::w1() {
  const int n = opt_.conns;
  const int u = opt_.users > 0 ? std::min(opt_.users, n) : std::min(n, 1000);
  const int k = opt_.workers > 0 ? opt_.workers : std::max(2, (n + 8999) / 9000);
  setup("w1:" + std::to_string(u), [&] {
    users_ = register_users(u);
    return std::vector<std::string>{};
  });
  if (opt_.setup_only) return {};
  std::vector<ConnSpec> specs;
  for (int i = 0; i < n; ++i)
    specs.push_back(ConnSpec{i % u, users_[static_cast<std::size_t>(i % u)].token, "", -1});
  start_workers(k, specs);
  sleep_s(1.0);
  const auto before = snap();
  const auto sock_before = tcp_socket_mem_bytes();
  log("W1: " + std::to_string(n) + " connections of " + std::to_string(u) + " users over " +
      std::to_string(k) + " workers; chatd RSS before " + std::to_string(before.server.rss_kb) + " kB");
  const auto conn = connect_all(opt_.connect_concurrency);
  const auto after_connect = snap();
  long peak_kb = after_connect.server.rss_kb;
  const auto hold_end = mono_ns() + static_cast<std::int64_t>(opt_.hold_s * 1e9);
  while (mono_ns() < hold_end) {
    sleep_s(std::min(1.0, static_cast<double>(hold_end - mono_ns()) / 1e9));
    peak_kb = std::max(peak_kb, sample_processes(opt_.server_pids).rss_kb);
  }
  const auto end = snap();
  const auto sock_after = tcp_socket_mem_bytes();
  const auto ds = worker_stats();
  const auto held = ds.at("connected").to_number<std::uint64_t>();
  const double held_d = static_cast<double>(std::max<std::uint64_t>(1, held));
  const double rss_per_conn_kb = static_cast<double>(end.server.rss_kb - before.server.rss_kb) / held_d;
  const double hold_wall = static_cast<double>(end.t_ns - after_connect.t_ns) / 1e9;
  const double idle_cpu_pct = 100.0 * (end.server.cpu_s - after_connect.server.cpu_s) / hold_wall;
  const double sock_per_conn_kb = static_cast<double>(sock_after - sock_before) / 1024.0 / held_d;
  if (held != static_cast<std::uint64_t>(n)) {
    fail("W1: " + std::to_string(held) + " of " + std::to_string(n) +
         " connections held at the end of the hold");
  }
  json::object summary{{"conns_target", n},
                       {"users", u},
                       {"workers", k},
                       {"conns_ok", conn.at("ok")},
                       {"conns_held_at_end", held},
                       {"connect_rate_per_s", conn.at("rate_per_s")},
                       {"connect_to_last_ok_s", conn.at("to_last_ok_s")},
                       {"connect_p50_ms", conn.at("latency").as_object().at("p50_ms")},
                       {"connect_p99_ms", conn.at("latency").as_object().at("p99_ms")},
                       {"rss_before_kb", before.server.rss_kb},
                       {"rss_after_connect_kb", after_connect.server.rss_kb},
                       {"rss_held_kb", end.server.rss_kb},
                       {"rss_peak_hold_kb", peak_kb},
                       {"rss_per_conn_kb", rss_per_conn_kb},
                       {"kernel_tcp_mem_before_bytes", sock_before},
                       {"kernel_tcp_mem_after_bytes", sock_after},
                       {"kernel_tcp_mem_per_conn_kb", sock_per_conn_kb},
                       {"server_cpu_connect_s", after_connect.server.cpu_s - before.server.cpu_s},
                       {"server_cpu_hold_s", end.server.cpu_s - after_connect.server.cpu_s},
                       {"hold_s", hold_wall},
                       {"idle_cpu_pct_of_core", idle_cpu_pct},
                       {"server_threads", end.server.threads}};
  print_table("W1 idle connections (" + opt_.label + ")",
              {{"conns", "held", "connect/s", "chatd RSS before->held MB", "RSS/conn KB",
                "kernel TCP mem/conn KB", "idle CPU % core", "chatd CPU s connect"},
               {std::to_string(n), std::to_string(held), fmt(num(conn.at("rate_per_s")), 0),
                fmt(static_cast<double>(before.server.rss_kb) / 1024) + "->" +
                    fmt(static_cast<double>(end.server.rss_kb) / 1024),
                fmt(rss_per_conn_kb, 2), fmt(sock_per_conn_kb, 2), fmt(idle_cpu_pct, 2),
                fmt(after_connect.server.cpu_s - before.server.cpu_s, 2)}});
  return json::object{{"params", json::object{{"conns", n},
                                              {"users", u},
                                              {"hold_s", opt_.hold_s},
                                              {"workers", k},
                                              {"connect_concurrency", opt_.connect_concurrency}}},
                      {"summary", summary},
                      {"connect", conn},
                      {"windows", json::object{{"connect", window(before, after_connect)},
                                               {"hold", window(after_connect, end)}}},
                      {"driver", ds}};
}

// ---------- W2 / W3: stepped open-loop traffic ----------

json::object Coordinator::run_step(
    int step, double rate, bool groups, const json::object& connect, int group_size) {
  const auto k = static_cast<double>(workers_.size());
  const auto closed_before = counter(worker_stats(), "closed_unexpected");
  const auto a = snap();
  const auto sends = call_all([&](int) {
    return json::object{{"cmd", "rate"},
                        {"step", step},
                        {"rate", rate / k},
                        {"duration_ms", static_cast<std::int64_t>(opt_.step_s * 1000)},
                        {"size", opt_.size}};
  });
  const auto b = snap();
  sleep_s(opt_.drain_s);
  const auto c = snap();
  const auto col = call_all([step](int) { return json::object{{"cmd", "collect"}, {"step", step}}; });
  const auto ds = worker_stats();
  const auto& failed_by_group = connect.at("failed_by_group").as_object();
  std::uint64_t sent = 0;
  double expected = 0;
  double max_lag_ms = 0;
  double send_wall_s = 0;
  for (const auto& s : sends) {
    sent += s.at("sent").to_number<std::uint64_t>();
    max_lag_ms = std::max(max_lag_ms, num(s.at("max_lag_ms")));
    send_wall_s = std::max(send_wall_s, num(s.at("elapsed_ns")) / 1e9);
    for (const auto& [g, nsent] : s.at("sent_by_group").as_object()) {
      const double failed = failed_by_group.contains(g) ? num(failed_by_group.at(g)) : 0.0;
      const double members = (groups ? group_size : 2) - failed;
      expected += num(nsent) * std::max(0.0, members - 1);
    }
  }
  std::uint64_t acked = 0;
  std::uint64_t delivered = 0;
  std::uint64_t dups = 0;
  std::uint64_t reordered = 0;
  std::uint64_t errors = 0;
  Histogram ack;
  Histogram deliver;
  json::object codes;
  for (const auto& r : col) {
    acked += r.at("acked").to_number<std::uint64_t>();
    delivered += r.at("delivered").to_number<std::uint64_t>();
    dups += r.at("duplicates").to_number<std::uint64_t>();
    reordered += r.at("reordered").to_number<std::uint64_t>();
    errors += r.at("send_errors").to_number<std::uint64_t>();
    ack.merge(Histogram::decode(r.at("ack").as_string()));
    deliver.merge(Histogram::decode(r.at("deliver").as_string()));
    for (const auto& [code, n] : r.at("error_codes").as_object())
      codes[code] = (codes.contains(code) ? num(codes[code]) : 0) + num(n);
  }
  const auto win = window(a, c);
  const double cpu = num(win.at("server_cpu_s"));
  const double lost = expected - static_cast<double>(delivered);
  const auto dl = deliver.summary_ms();
  const double p99 = deliver.count() ? static_cast<double>(deliver.percentile(99)) / 1e6 : 1e9;
  const double achieved = static_cast<double>(sent) / opt_.step_s;
  const auto closed = counter(ds, "closed_unexpected") - closed_before;
  const bool pass = lost <= 0 && dups == 0 && errors == 0 && closed == 0 && p99 < opt_.p99_limit_ms &&
                    achieved >= 0.95 * rate;
  json::object st{{"step", step},
                  {"rate", rate},
                  {"sent", sent},
                  {"send_rate_achieved", achieved},
                  {"send_wall_s", send_wall_s},
                  {"max_send_lag_ms", max_lag_ms},
                  {"acked", acked},
                  {"send_errors", errors},
                  {"error_codes", codes},
                  {"expected_deliveries", expected},
                  {"delivered", delivered},
                  {"lost", lost},
                  {"duplicates", dups},
                  {"reordered", reordered},
                  {"deliveries_per_s", static_cast<double>(delivered) / opt_.step_s},
                  {"ack_latency", ack.summary_ms()},
                  {"deliver_latency", dl},
                  {"server_cpu_s", cpu},
                  {"server_cpu_util_send",
                   (b.server.cpu_s - a.server.cpu_s) / (static_cast<double>(b.t_ns - a.t_ns) / 1e9)},
                  // NATS has no acks: its messages are the ones sent
                  {"messages_per_server_cpu_s",
                   cpu > 0 ? static_cast<double>(opt_.proto == Proto::nats ? sent : acked) / cpu : 0.0},
                  {"deliveries_per_server_cpu_s", cpu > 0 ? static_cast<double>(delivered) / cpu : 0.0},
                  {"server_rss_kb", c.server.rss_kb},
                  {"window", win},
                  {"dropped_connections", closed},
                  {"pass", pass},
                  {"noisy", num(win.at("other_cpu_s")) > 1.0}};
  log(std::string(groups ? "W3" : "W2") + " R=" + fmt(rate, 0) + ": sent " + std::to_string(sent) +
      " acked " + std::to_string(acked) + " delivered " + std::to_string(delivered) + "/" + fmt(expected, 0) +
      " dup " + std::to_string(dups) + " err " + std::to_string(errors) + " p50 " + ms(dl, "p50_ms") +
      " p99 " + ms(dl, "p99_ms") + " max " + ms(dl, "max_ms") + " ms, " + opt_.label + " " + fmt(cpu, 2) +
      " CPU-s -> " + (pass ? "PASS" : "FAIL"));
  return st;
}

json::object Coordinator::w2_or_w3(bool groups) {
  const int gs = groups ? opt_.group_size : 2;
  const int ngroups = groups ? opt_.groups : std::max(1, (opt_.users > 0 ? opt_.users : 1000) / 2);
  const int u = ngroups * gs;
  const int k = opt_.workers > 0 ? opt_.workers : std::max(2, (u + 8999) / 9000);
  std::vector<ConnSpec> specs;
  if (opt_.proto == Proto::chatd) {
    const auto conv =
        setup((groups ? "w3:" : "w2:") + std::to_string(ngroups) + "x" + std::to_string(gs), [&] {
          users_ = register_users(u);
          if (groups) return create_groups(ngroups, gs);
          std::vector<std::pair<int, int>> pairs;
          for (int p = 0; p < ngroups; ++p) pairs.emplace_back(2 * p, 2 * p + 1);
          return create_direct(pairs);
        });
    if (opt_.setup_only) return {};
    for (int i = 0; i < u; ++i) {
      const int g = i / gs;
      specs.push_back(
          ConnSpec{i, users_[static_cast<std::size_t>(i)].token, conv[static_cast<std::size_t>(g)], g});
    }
  } else {
    // Peers: users are numbers, groups g<k> (NATS subject g.<k>), a pair's partner is i ^ 1.
    for (int i = 0; i < u; ++i) {
      const int g = i / gs;
      ConnSpec c{i, opt_.peer_auth, "", g, opt_.proto, groups};
      if (opt_.proto == Proto::nats) {
        c.conv_id = groups ? "g." + std::to_string(g) : "u." + std::to_string(i ^ 1);
      } else {
        c.token = socketio_token(i, opt_.peer_auth);
        c.conv_id = groups ? "g" + std::to_string(g) : std::to_string(i ^ 1);
      }
      specs.push_back(std::move(c));
    }
  }
  start_workers(k, specs);
  const auto conn = connect_all(opt_.connect_concurrency);
  sleep_s(1.0);
  std::vector<double> rates = opt_.rates;
  if (rates.empty())
    rates = groups ? std::vector<double>{250, 500, 1000, 2000, 3000, 4000, 6000}
                   : std::vector<double>{500, 1000, 2000, 4000, 8000, 16000};
  json::array steps;
  json::object best;
  json::object first_fail;
  for (double r : rates) {
    auto st = run_step(++next_step_, r, groups, conn, gs);
    const bool pass = st.at("pass").as_bool();
    if (st.at("duplicates").to_number<std::uint64_t>() > 0) fail("duplicates at R=" + fmt(r, 0));
    steps.push_back(st);
    if (pass) {
      best = st;
    } else {
      if (first_fail.empty()) first_fail = st;
      if (opt_.stop_on_fail) break;
    }
  }
  // Bisection between the last passing and the first failing rate.
  double lo = best.empty() ? 0 : num(best.at("rate"));
  double hi = first_fail.empty() ? 0 : num(first_fail.at("rate"));
  for (int i = 0; i < opt_.refine && hi > 0 && lo > 0; ++i) {
    const double mid = std::round((lo + hi) / 2 / 50) * 50;
    if (mid <= lo || mid >= hi) break;
    sleep_s(3.0);  // let the failed step's backlog drain
    auto st = run_step(++next_step_, mid, groups, conn, gs);
    st["refine"] = true;
    steps.push_back(st);
    if (st.at("pass").as_bool()) {
      best = st;
      lo = mid;
    } else {
      hi = mid;
    }
  }
  const auto ds = worker_stats();
  if (best.empty()) fail("no step passed (p99 < " + fmt(opt_.p99_limit_ms, 0) + " ms, no loss)");
  if (!steps.empty() && !steps.at(0).as_object().at("pass").as_bool()) {
    const auto& s0 = steps.at(0).as_object();
    fail("first step R=" + fmt(num(s0.at("rate")), 0) + " failed: lost " + fmt(num(s0.at("lost")), 0) +
         ", errors " + std::to_string(s0.at("send_errors").to_number<std::uint64_t>()));
  }
  if (opt_.strict) {
    for (const auto& sv : steps) {
      const auto& s = sv.as_object();
      if (num(s.at("lost")) > 0 || num(s.at("send_errors")) > 0) {
        fail("strict: R=" + fmt(num(s.at("rate")), 0) + " lost " + fmt(num(s.at("lost")), 0) + " errors " +
             fmt(num(s.at("send_errors")), 0));
      }
    }
  }
  // Table: one row per step.
  std::vector<std::vector<std::string>> rows{{"R msg/s", "sent", "ack p50", "ack p99", "dlv p50", "dlv p90",
                                              "dlv p99", "dlv p99.9", "dlv max", "lost", "dup", "err",
                                              "server CPU-s", groups ? "dlv/CPU-s" : "msg/CPU-s", "pass"}};
  for (const auto& sv : steps) {
    const auto& s = sv.as_object();
    const auto& a = s.at("ack_latency").as_object();
    const auto& d = s.at("deliver_latency").as_object();
    rows.push_back({fmt(num(s.at("rate")), 0), std::to_string(s.at("sent").to_number<std::uint64_t>()),
                    ms(a, "p50_ms"), ms(a, "p99_ms"), ms(d, "p50_ms"), ms(d, "p90_ms"), ms(d, "p99_ms"),
                    ms(d, "p999_ms"), ms(d, "max_ms"), fmt(num(s.at("lost")), 0),
                    fmt(num(s.at("duplicates")), 0), fmt(num(s.at("send_errors")), 0),
                    fmt(num(s.at("server_cpu_s")), 2),
                    fmt(num(s.at(groups ? "deliveries_per_server_cpu_s" : "messages_per_server_cpu_s")), 0),
                    s.at("pass").as_bool() ? "yes" : "NO"});
  }
  print_table(std::string(groups ? "W3 group fan-out (" : "W2 one-to-one (") + opt_.label + "), latency ms",
              rows);
  json::object summary{{"users", u}, {"connected", conn.at("ok")}, {"workers", k}};
  if (!best.empty()) {
    const double r = num(best.at("rate"));
    summary["max_rate_pass"] = r;
    summary["at_max"] = best;
    if (groups) {
      summary["max_deliveries_per_s_pass"] = r * (gs - 1);
      summary["deliveries_per_server_cpu_s_at_max"] = best.at("deliveries_per_server_cpu_s");
      summary["p99_ms_at_max"] = best.at("deliver_latency").as_object().at("p99_ms");
    } else {
      // the step closest to half the peak rate
      json::object half;
      for (const auto& sv : steps) {
        const auto& s = sv.as_object();
        if (num(s.at("rate")) <= r / 2 && (half.empty() || num(s.at("rate")) > num(half.at("rate"))))
          half = s;
      }
      if (!half.empty()) {
        summary["half_peak_rate"] = half.at("rate");
        summary["p99_ms_at_half_peak"] = half.at("deliver_latency").as_object().at("p99_ms");
      }
    }
  }
  return json::object{{"params", json::object{{"users", u},
                                              {"groups", ngroups},
                                              {"group_size", gs},
                                              {"rates", json::value_from(rates)},
                                              {"step_s", opt_.step_s},
                                              {"drain_s", opt_.drain_s},
                                              {"p99_limit_ms", opt_.p99_limit_ms},
                                              {"size", opt_.size},
                                              {"workers", k},
                                              {"refine", opt_.refine}}},
                      {"summary", summary},
                      {"steps", steps},
                      {"first_fail", first_fail.empty() ? json::value(nullptr) : json::value(first_fail)},
                      {"connect", conn},
                      {"driver", ds}};
}

// ---------- W4: history reads ----------

namespace {
struct ReadState {
  HttpClient* http = nullptr;
  const std::string* token = nullptr;
  std::string target;
  int requests = 0;
  Histogram hist;
  int errors = 0;
};

net::awaitable<void> read_pages(ReadState* st) {
  for (int i = 0; i < st->requests; ++i) {
    HttpResult r = co_await st->http->request(http::verb::get, st->target, nullptr, st->token);
    if (r.status != 200) {
      ++st->errors;
      continue;
    }
    st->hist.add(r.latency_ns);
  }
}
}  // namespace

json::object Coordinator::w4() {
  const int m = opt_.messages;
  const auto conv = setup("w4", [&] {
    users_ = register_users(2);
    return create_direct({{0, 1}});
  });
  if (opt_.setup_only) return {};
  // Two connections per user, all sending into the one conversation.
  std::vector<ConnSpec> specs;
  for (int i = 0; i < 4; ++i)
    specs.push_back(ConnSpec{i % 2, users_[static_cast<std::size_t>(i % 2)].token, conv[0], 0});
  start_workers(1, specs);
  const auto conn = connect_all(8);
  const int step = ++next_step_;
  const auto a = snap();
  const auto pr = call_all([&](int) {
    return json::object{{"cmd", "pipeline"},          {"step", step},
                        {"window", opt_.window},      {"count", m},
                        {"duration_ms", 3600 * 1000}, {"size", opt_.size}};
  });
  const auto b = snap();
  const auto col = call_all([step](int) { return json::object{{"cmd", "collect"}, {"step", step}}; });
  const auto acked = col[0].at("acked").to_number<std::uint64_t>();
  const double insert_s = num(pr[0].at("elapsed_ns")) / 1e9;
  log("W4: inserted " + std::to_string(acked) + " messages in " + fmt(insert_s, 2) + " s");
  if (acked != static_cast<std::uint64_t>(m))
    fail("W4: only " + std::to_string(acked) + " of " + std::to_string(m) + " inserts acked");
  // Reads: latest page, and an older page (before = the middle of the log).
  net::io_context ioc;
  HttpClient http(ioc.get_executor(), opt_.server, net::ip::make_address("127.0.0.1"));
  ReadState latest{&http,
                   &users_[0].token,
                   "/api/v1/conversations/" + conv[0] + "/messages?limit=" + std::to_string(opt_.page),
                   opt_.requests,
                   {},
                   0};
  ReadState older{&http,
                  &users_[0].token,
                  "/api/v1/conversations/" + conv[0] + "/messages?limit=" + std::to_string(opt_.page) +
                      "&before=" + std::to_string(m / 2),
                  opt_.requests,
                  {},
                  0};
  const auto r0 = snap();
  net::co_spawn(ioc, read_pages(&latest), net::detached);
  ioc.run();
  ioc.restart();
  net::co_spawn(ioc, read_pages(&older), net::detached);
  ioc.run();
  const auto r1 = snap();
  if (latest.errors || older.errors)
    fail("W4: " + std::to_string(latest.errors + older.errors) + " history requests failed");
  const auto l = latest.hist.summary_ms();
  const auto o = older.hist.summary_ms();
  print_table("W4 history (" + opt_.label + "), " + std::to_string(m) + " messages, " +
                  std::to_string(opt_.requests) + " requests each, latency ms",
              {{"page", "p50", "p90", "p99", "max", "errors"},
               {"latest " + std::to_string(opt_.page), ms(l, "p50_ms"), ms(l, "p90_ms"), ms(l, "p99_ms"),
                ms(l, "max_ms"), std::to_string(latest.errors)},
               {"before=" + std::to_string(m / 2), ms(o, "p50_ms"), ms(o, "p90_ms"), ms(o, "p99_ms"),
                ms(o, "max_ms"), std::to_string(older.errors)}});
  std::cout << "insert: " << acked << " messages in " << fmt(insert_s, 2)
            << " s = " << fmt(static_cast<double>(acked) / std::max(insert_s, 1e-9), 0) << " msg/s\n";
  return json::object{
      {"params",
       json::object{
           {"messages", m}, {"requests", opt_.requests}, {"page", opt_.page}, {"window", opt_.window}}},
      {"summary", json::object{{"messages", m},
                               {"inserted", acked},
                               {"insert_s", insert_s},
                               {"insert_rate_per_s", static_cast<double>(acked) / std::max(insert_s, 1e-9)},
                               {"latest_p50_ms", l.at("p50_ms")},
                               {"latest_p99_ms", l.at("p99_ms")},
                               {"older_p50_ms", o.at("p50_ms")},
                               {"older_p99_ms", o.at("p99_ms")}}},
      {"latest", l},
      {"older", o},
      {"insert", json::object{{"window", window(a, b)},
                              {"ack_latency", Histogram::decode(col[0].at("ack").as_string()).summary_ms()}}},
      {"reads_window", window(r0, r1)},
      {"connect", conn}};
}

// ---------- W5: durable ingest ----------

json::object Coordinator::w5() {
  const int s = std::max(2, opt_.senders / 2 * 2);
  const int k = opt_.workers > 0 ? opt_.workers : 2;
  const auto conv = setup("w5:" + std::to_string(s), [&] {
    users_ = register_users(s);
    std::vector<std::pair<int, int>> pairs;
    for (int p = 0; p < s / 2; ++p) pairs.emplace_back(2 * p, 2 * p + 1);
    return create_direct(pairs);
  });
  if (opt_.setup_only) return {};
  std::vector<ConnSpec> specs;
  for (int i = 0; i < s; ++i)
    specs.push_back(
        ConnSpec{i, users_[static_cast<std::size_t>(i)].token, conv[static_cast<std::size_t>(i / 2)], i / 2});
  start_workers(k, specs);
  const auto conn = connect_all(64);
  sleep_s(0.5);
  const int step = ++next_step_;
  const auto a = snap();
  const auto pr = call_all([&](int) {
    return json::object{{"cmd", "pipeline"},
                        {"step", step},
                        {"window", opt_.window},
                        {"count", -1},
                        {"duration_ms", static_cast<std::int64_t>(opt_.duration_s * 1000)},
                        {"size", opt_.size}};
  });
  const auto b = snap();
  sleep_s(opt_.drain_s);
  const auto col = call_all([step](int) { return json::object{{"cmd", "collect"}, {"step", step}}; });
  std::uint64_t sent = 0;
  std::uint64_t acked = 0;
  std::uint64_t delivered = 0;
  std::uint64_t errors = 0;
  std::uint64_t dups = 0;
  double elapsed = 0;
  Histogram ack;
  Histogram deliver;
  for (const auto& r : pr) {
    sent += r.at("sent").to_number<std::uint64_t>();
    elapsed = std::max(elapsed, num(r.at("elapsed_ns")) / 1e9);
  }
  for (const auto& r : col) {
    acked += r.at("acked").to_number<std::uint64_t>();
    delivered += r.at("delivered").to_number<std::uint64_t>();
    errors += r.at("send_errors").to_number<std::uint64_t>();
    dups += r.at("duplicates").to_number<std::uint64_t>();
    ack.merge(Histogram::decode(r.at("ack").as_string()));
    deliver.merge(Histogram::decode(r.at("deliver").as_string()));
  }
  const auto win = window(a, b);
  const double cpu = num(win.at("server_cpu_s"));
  const double rate = static_cast<double>(acked) / std::max(elapsed, 1e-9);
  if (acked + errors != sent) fail("W5: " + std::to_string(sent - acked - errors) + " sends never acked");
  if (errors) fail("W5: " + std::to_string(errors) + " send errors");
  if (dups) fail("W5: " + std::to_string(dups) + " duplicate deliveries");
  if (opt_.strict && delivered != acked)
    fail("W5: delivered " + std::to_string(delivered) + " != acked " + std::to_string(acked));
  const auto al = ack.summary_ms();
  print_table("W5 durable ingest (" + opt_.label + "): " + std::to_string(s) + " senders x window " +
                  std::to_string(opt_.window) + ", " + fmt(opt_.duration_s, 0) + " s",
              {{"acked", "acked msg/s", "ack p50", "ack p99", "ack max", "errors", "delivered", "chatd CPU-s",
                "msg/CPU-s"},
               {std::to_string(acked), fmt(rate, 0), ms(al, "p50_ms"), ms(al, "p99_ms"), ms(al, "max_ms"),
                std::to_string(errors), std::to_string(delivered), fmt(cpu, 2),
                fmt(cpu > 0 ? static_cast<double>(acked) / cpu : 0, 0)}});
  return json::object{{"params", json::object{{"senders", s},
                                              {"window", opt_.window},
                                              {"duration_s", opt_.duration_s},
                                              {"size", opt_.size},
                                              {"workers", k}}},
                      {"summary", json::object{{"sent", sent},
                                               {"acked", acked},
                                               {"send_errors", errors},
                                               {"delivered", delivered},
                                               {"duplicates", dups},
                                               {"elapsed_s", elapsed},
                                               {"acked_per_s", rate},
                                               {"ack_p50_ms", al.at("p50_ms")},
                                               {"ack_p99_ms", al.at("p99_ms")},
                                               {"server_cpu_s", cpu},
                                               {"messages_per_server_cpu_s",
                                                cpu > 0 ? static_cast<double>(acked) / cpu : 0.0}}},
                      {"ack_latency", al},
                      {"deliver_latency", deliver.summary_ms()},
                      {"window", win},
                      {"connect", conn}};
}

}  // namespace bench
