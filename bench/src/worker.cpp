#include "worker.hpp"

#include "proc_stats.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <unistd.h>

namespace bench {

namespace {

constexpr std::string_view message_prefix = R"({"type":"message")";
constexpr std::string_view ack_prefix = R"({"type":"ack")";
constexpr std::string_view pong_prefix = R"({"type":"pong")";
constexpr std::string_view body_key = R"("body":"M|)";
constexpr std::string_view seq_key = R"("seq":)";
constexpr std::string_view conv_key = R"("conversation_id":")";
constexpr std::string_view cmid_key = R"("client_msg_id":")";
constexpr std::int64_t pipeline_grace_ns = 60'000'000'000;  // waiting for acks after the deadline

std::int64_t get_int(const json::object& o, std::string_view key, std::int64_t fallback) {
  const auto* v = o.if_contains(key);
  if (v == nullptr) return fallback;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
  if (v->is_double()) return static_cast<std::int64_t>(v->get_double());
  return fallback;
}

double get_double(const json::object& o, std::string_view key, double fallback) {
  const auto* v = o.if_contains(key);
  if (v == nullptr) return fallback;
  if (v->is_double()) return v->get_double();
  if (v->is_int64()) return static_cast<double>(v->get_int64());
  if (v->is_uint64()) return static_cast<double>(v->get_uint64());
  return fallback;
}

// Reads a decimal number at the front of `s` up to `stop`, and drops it and the stop character.
bool take_int(std::string_view& s, char stop, std::int64_t& out) {
  const auto end = s.find(stop);
  if (end == std::string_view::npos) return false;
  auto r = std::from_chars(s.data(), s.data() + end, out);
  if (r.ec != std::errc() || r.ptr != s.data() + end) return false;
  s.remove_prefix(end + 1);
  return true;
}

bool parse_mark(std::string_view s, char sep, Mark& m) {
  const auto r = s.find(sep);
  if (r == std::string_view::npos) return false;
  m.run = s.substr(0, r);
  s.remove_prefix(r + 1);
  return take_int(s, sep, m.step) && take_int(s, sep, m.sender) && take_int(s, sep, m.seq) &&
         (take_int(s, sep, m.t_ns) || take_int(s, '"', m.t_ns));
}

json::object counts_to_json(const std::map<std::string, std::uint64_t>& m) {
  json::object o;
  for (const auto& [k, v] : m) o[k] = v;
  return o;
}

}  // namespace

Worker::Worker(WorkerSetup setup, int control_fd)
    : setup_(std::move(setup)),
      control_(ioc_, net::local::stream_protocol(), control_fd),
      timer_(ioc_),
      rng_(static_cast<std::uint64_t>(mono_ns()) ^ static_cast<std::uint64_t>(setup_.index)) {
  conns_.resize(setup_.conns.size());
}

int Worker::run() {
  net::co_spawn(ioc_, control_loop(), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      std::cerr << "chat-bench worker: control loop ended: " << ex.what() << "\n";
    }
  });
  net::co_spawn(ioc_, pinger(), net::detached);
  ioc_.run();
  return 0;
}

net::awaitable<void> Worker::sleep_for_ms(std::int64_t ms) {
  net::steady_timer t(ioc_);
  t.expires_after(std::chrono::milliseconds(ms));
  co_await t.async_wait(net::use_awaitable);
}

net::awaitable<void> Worker::control_loop() {
  net::streambuf in;
  for (;;) {
    auto [ec, n] = co_await net::async_read_until(control_, in, '\n', net::as_tuple(net::use_awaitable));
    if (ec) break;  // the coordinator is gone
    std::string line(static_cast<const char*>(in.data().data()), n);
    in.consume(n);
    json::object reply;
    try {
      auto v = json::parse(line);
      const json::object cmd = v.as_object();
      reply = co_await dispatch(cmd);
    } catch (const std::exception& e) {
      reply = json::object{{"error", e.what()}};
    }
    std::string out = json::serialize(reply);
    out += '\n';
    co_await net::async_write(control_, net::buffer(out), net::use_awaitable);
    if (stop_) break;
  }
  cmd_close();
  ioc_.stop();
}

net::awaitable<json::object> Worker::dispatch(const json::object& cmd) {
  const auto name = cmd.at("cmd").as_string();
  if (name == "connect") co_return co_await cmd_connect(cmd);
  if (name == "rate") co_return co_await cmd_rate(cmd);
  if (name == "pipeline") co_return co_await cmd_pipeline(cmd);
  if (name == "collect") co_return cmd_collect(cmd);
  if (name == "stats") co_return cmd_stats();
  if (name == "close") {
    cmd_close();
    co_return json::object{{"closed", true}};
  }
  if (name == "exit") {
    stop_ = true;
    co_return json::object{{"exit", true}};
  }
  co_return json::object{{"error", "unknown command"}};
}

net::awaitable<void> Worker::pinger() {
  std::uniform_real_distribution<double> phase(0.2, 0.9);
  while (!stop_) {
    co_await sleep_for_ms(1000);
    const auto now = mono_ns();
    for (auto& c : conns_) {
      if (!c || !c->ready() || c->spec().proto != Proto::chatd) continue;  // peers: no app-level ping
      const auto period_ns = c->heartbeat_ms() * 1'000'000;
      if (c->next_ping_ns == 0) {
        c->next_ping_ns = now + static_cast<std::int64_t>(static_cast<double>(period_ns) * phase(rng_));
      } else if (now >= c->next_ping_ns) {
        c->send(R"({"type":"ping"})");
        c->next_ping_ns = now + period_ns * 8 / 10;
      }
    }
  }
}

// Opens every connection of this worker with at most `concurrency` handshakes in flight.
net::awaitable<json::object> Worker::cmd_connect(const json::object& cmd) {
  struct State {
    std::size_t next = 0;
    std::size_t done = 0;
    int inflight = 0;
    std::uint64_t ok = 0;
    std::uint64_t failed = 0;
    Histogram latency;
    std::map<std::string, std::uint64_t> errors;
    std::map<int, std::uint64_t> failed_by_group;
    std::int64_t t_start = 0;
    std::int64_t t_last_ok = 0;
  };
  auto st = std::make_shared<State>();
  const auto concurrency = static_cast<int>(std::max<std::int64_t>(1, get_int(cmd, "concurrency", 100)));
  const auto timeout_ns = get_int(cmd, "timeout_ms", 120000) * 1'000'000;
  const std::size_t total = setup_.conns.size();
  st->t_start = mono_ns();
  st->t_last_ok = st->t_start;

  // launch() starts connections until the concurrency limit; each completion calls it again.
  auto launch = std::make_shared<std::function<void()>>();
  std::weak_ptr<std::function<void()>> weak_launch = launch;
  *launch = [this, st, concurrency, total, weak_launch] {
    while (st->inflight < concurrency && st->next < total) {
      const std::size_t slot = st->next++;
      ++st->inflight;
      auto conn = std::make_shared<WsConn>(ioc_, *this, setup_.conns[slot], static_cast<int>(slot));
      conns_[slot] = conn;
      const auto t0 = mono_ns();
      conn->connect(setup_.server, setup_.local,
                    [this, st, t0, slot, weak_launch](bool ok, std::string_view err) {
                      --st->inflight;
                      ++st->done;
                      if (ok) {
                        ++st->ok;
                        st->t_last_ok = mono_ns();
                        st->latency.add(st->t_last_ok - t0);
                      } else {
                        ++st->failed;
                        ++st->errors[std::string(err.substr(0, 120))];
                        ++st->failed_by_group[setup_.conns[slot].group];
                        conns_[slot].reset();
                      }
                      if (auto l = weak_launch.lock()) (*l)();
                    });
    }
  };
  (*launch)();
  while (st->done < total && mono_ns() - st->t_start < timeout_ns) co_await sleep_for_ms(2);
  launch.reset();
  json::object failed_groups;
  for (const auto& [g, n] : st->failed_by_group) failed_groups[std::to_string(g)] = n;
  co_return json::object{{"target", total},
                         {"ok", st->ok},
                         {"failed", st->failed},
                         {"pending", total - st->done},
                         {"errors", counts_to_json(st->errors)},
                         {"failed_by_group", failed_groups},
                         {"t_start_ns", st->t_start},
                         {"t_last_ok_ns", st->t_last_ok},
                         {"latency", st->latency.encode()}};
}

void Worker::send_message(WsConn& conn, int step, std::size_t size) {
  const auto t = mono_ns();
  const auto seq = ++seq_;
  const auto& spec = conn.spec();
  const std::string mark = std::to_string(step) + "|" + std::to_string(spec.user) + "|" +
                           std::to_string(seq) + "|" + std::to_string(t);
  // The body: "M|run|step|sender|seq|t_ns|" padded with 'x' to `size` bytes.
  std::string body;
  body.reserve(size + 8);
  body += "M|";
  body += setup_.run;
  body += '|';
  body += mark;
  body += '|';
  if (body.size() < size) body.append(size - body.size(), 'x');
  std::string frame;
  frame.reserve(size + 160);
  switch (spec.proto) {
    case Proto::nats:
      frame += "PUB ";
      frame += spec.conv_id;
      frame += ' ';
      frame += std::to_string(body.size());
      frame += "\r\n";
      frame += body;
      frame += "\r\n";
      break;
    case Proto::socketio:
      // 42<ack id>["room",{"room":"g3","body":"..."}] or ["dm",{"to":"17","body":"..."}]
      frame += "42";
      frame += std::to_string(seq);
      frame += spec.group_conv ? R"(["room",{"room":")" : R"(["dm",{"to":")";
      frame += spec.conv_id;
      frame += R"(","body":")";
      frame += body;
      frame += "\"}]";
      pending_acks_.emplace(seq, PendingAck{step, t});
      break;
    case Proto::chatd: {
      std::string cmid = setup_.run + "-" + mark;
      for (auto& ch : cmid) {
        if (ch == '|') ch = '-';
      }
      frame += R"({"type":"send","conversation_id":")";
      frame += spec.conv_id;
      frame += R"(","client_msg_id":")";
      frame += cmid;
      frame += R"(","body":")";
      frame += body;
      frame += "\"}";
      break;
    }
  }
  conn.send(std::move(frame));
}

net::awaitable<json::object> Worker::cmd_rate(const json::object& cmd) {
  const int step = static_cast<int>(get_int(cmd, "step", 0));
  const double rate = get_double(cmd, "rate", 100);
  const auto duration_ms = get_int(cmd, "duration_ms", 10000);
  const auto size = static_cast<std::size_t>(get_int(cmd, "size", 100));
  std::vector<WsConn*> senders;
  for (auto& c : conns_) {
    if (c && c->ready() && !c->spec().conv_id.empty()) senders.push_back(c.get());
  }
  std::map<int, std::uint64_t> by_group;
  const auto total = static_cast<std::int64_t>(rate * static_cast<double>(duration_ms) / 1000.0 + 0.5);
  std::int64_t attempts = 0;
  std::uint64_t sent = 0;
  std::uint64_t skipped = 0;
  std::int64_t max_lag_ns = 0;
  const auto t0 = mono_ns();
  const auto give_up_ns = (duration_ms + 5000) * 1'000'000;
  std::uniform_int_distribution<std::size_t> pick(0, senders.empty() ? 0 : senders.size() - 1);
  while (attempts < total && !senders.empty()) {
    const auto now = mono_ns();
    const auto elapsed = now - t0;
    if (elapsed > give_up_ns) break;
    const auto due_total =
        std::min(total, static_cast<std::int64_t>(static_cast<double>(elapsed) * rate / 1e9));
    if (due_total > attempts) {
      // how late the oldest due send is: the sender's own queueing, part of the measured latency
      const auto scheduled_ns = static_cast<std::int64_t>(static_cast<double>(attempts) * 1e9 / rate);
      max_lag_ns = std::max(max_lag_ns, elapsed - scheduled_ns);
    }
    for (; attempts < due_total; ++attempts) {
      WsConn* c = senders[pick(rng_)];
      if (!c->ready()) {
        ++skipped;
        continue;
      }
      send_message(*c, step, size);
      ++sent;
      ++by_group[c->spec().group];
    }
    co_await sleep_for_ms(1);
  }
  json::object groups;
  for (const auto& [g, n] : by_group) groups[std::to_string(g)] = n;
  co_return json::object{{"sent", sent},
                         {"skipped_closed", skipped},
                         {"elapsed_ns", mono_ns() - t0},
                         {"max_lag_ms", static_cast<double>(max_lag_ns) / 1e6},
                         {"sent_by_group", groups}};
}

net::awaitable<json::object> Worker::cmd_pipeline(const json::object& cmd) {
  pipe_ = Pipeline{};
  pipe_.step = static_cast<int>(get_int(cmd, "step", 0));
  pipe_.window = static_cast<int>(std::max<std::int64_t>(1, get_int(cmd, "window", 64)));
  pipe_.size = static_cast<std::size_t>(get_int(cmd, "size", 100));
  pipe_.budget = get_int(cmd, "count", -1);
  const auto duration_ms = get_int(cmd, "duration_ms", 10000);
  const auto t0 = mono_ns();
  pipe_.deadline_ns = t0 + duration_ms * 1'000'000;
  pipe_.last_ack_ns = t0;
  pipe_.active = true;
  std::map<int, std::uint64_t> by_group;
  for (auto& c : conns_) {
    if (!c || !c->ready() || c->spec().conv_id.empty()) continue;
    for (int i = 0; i < pipe_.window && pipe_.budget != 0; ++i) {
      send_message(*c, pipe_.step, pipe_.size);
      ++c->inflight;
      ++pipe_.inflight;
      ++pipe_.sent;
      if (pipe_.budget > 0) --pipe_.budget;
    }
  }
  while (pipe_.inflight > 0 && mono_ns() < pipe_.deadline_ns + pipeline_grace_ns) co_await sleep_for_ms(2);
  pipe_.active = false;
  co_return json::object{{"sent", pipe_.sent},
                         {"inflight_left", pipe_.inflight},
                         {"elapsed_ns", pipe_.last_ack_ns - t0},
                         {"t_start_ns", t0},
                         {"t_last_ack_ns", pipe_.last_ack_ns}};
}

void Worker::on_send_done(WsConn& conn) {
  if (!pipe_.active || conn.inflight <= 0) return;
  --conn.inflight;
  --pipe_.inflight;
  const auto now = mono_ns();
  pipe_.last_ack_ns = now;
  if (pipe_.budget != 0 && now < pipe_.deadline_ns && conn.ready()) {
    send_message(conn, pipe_.step, pipe_.size);
    ++conn.inflight;
    ++pipe_.inflight;
    ++pipe_.sent;
    if (pipe_.budget > 0) --pipe_.budget;
  }
}

StepStats& Worker::step_stats(int step) {
  return steps_[step];
}

StepStats* Worker::accept_delivery(WsConn& conn, std::string_view mark_text, Mark& m) {
  if (!parse_mark(mark_text, '|', m) || m.run != setup_.run) {
    ++counters_["stale_messages"];
    return nullptr;
  }
  if (m.sender == conn.spec().user) {
    ++counters_["self_echo"];
    return nullptr;
  }
  if (collected_.count(static_cast<int>(m.step)) != 0) {
    ++counters_["late_after_collect"];
    return nullptr;
  }
  return &step_stats(static_cast<int>(m.step));
}

void Worker::on_frame(WsConn& conn, std::string_view frame) {
  const auto now = mono_ns();
  if (conn.spec().proto == Proto::nats) return on_nats_data(conn, frame, now);
  if (conn.spec().proto == Proto::socketio) return on_socketio_frame(conn, frame, now);
  if (frame.starts_with(message_prefix)) {
    const auto b = frame.find(body_key);
    if (b == std::string_view::npos) {
      ++counters_["foreign_messages"];  // events (created, member_added, ...) and other bodies
      return;
    }
    Mark m;
    auto* stp = accept_delivery(conn, frame.substr(b + body_key.size()), m);
    if (stp == nullptr) return;
    auto& st = *stp;
    // Dedupe by (conversation, seq): frames of one conversation arrive in increasing seq.
    const auto s = frame.find(seq_key);
    const auto cv = frame.find(conv_key);
    if (s != std::string_view::npos && cv != std::string_view::npos) {
      std::int64_t seq = -1;
      auto rest = frame.substr(s + seq_key.size());
      std::from_chars(rest.data(), rest.data() + rest.size(), seq);
      auto conv = frame.substr(cv + conv_key.size());
      conv = conv.substr(0, conv.find('"'));
      if (conv != conn.last_conv) {
        conn.last_conv.assign(conv);
        conn.last_seq = -1;
        conn.seen_window = 0;
      }
      if (seq > conn.last_seq) {
        const auto shift = conn.last_seq < 0 ? 64 : seq - conn.last_seq;
        conn.seen_window = shift >= 64 ? 1 : (conn.seen_window << shift) | 1;
        conn.last_seq = seq;
      } else {
        const auto back = conn.last_seq - seq;
        const std::uint64_t bit = back < 64 ? std::uint64_t{1} << back : 0;
        if (bit == 0 || (conn.seen_window & bit) != 0) {  // seen, or too old to tell: a duplicate
          ++st.duplicates;
          return;
        }
        conn.seen_window |= bit;
        ++st.reordered;
      }
    }
    ++st.delivered;
    st.deliver.add(now - m.t_ns);
    return;
  }
  if (frame.starts_with(ack_prefix)) {
    const auto c = frame.find(cmid_key);
    Mark m;
    if (c == std::string_view::npos || !parse_mark(frame.substr(c + cmid_key.size()), '-', m) ||
        m.run != setup_.run) {
      ++counters_["foreign_acks"];
      return;
    }
    on_send_done(conn);
    if (collected_.count(static_cast<int>(m.step)) != 0) {
      ++counters_["late_acks"];
      return;
    }
    auto& st = step_stats(static_cast<int>(m.step));
    ++st.acked;
    st.ack.add(now - m.t_ns);
    return;
  }
  if (frame.starts_with(pong_prefix)) return;
  handle_other_frame(conn, frame);
}

void Worker::on_peer_delivery(WsConn& conn, std::string_view mark_text, std::int64_t now) {
  Mark m;
  auto* st = accept_delivery(conn, mark_text, m);
  if (st == nullptr) return;
  auto [it, first] = conn.last_by_sender.try_emplace(m.sender, m.seq);
  if (!first) {
    if (m.seq == it->second) {
      ++st->duplicates;
      return;
    }
    if (m.seq < it->second) {
      ++st->reordered;
    } else {
      it->second = m.seq;
    }
  }
  ++st->delivered;
  st->deliver.add(now - m.t_ns);
}

// NATS: "MSG <subject> <sid> [reply] <n>\r\n<payload>\r\n", "PING", "PONG", "+OK", "-ERR ..." lines;
// one WebSocket frame may carry several of them and the last one may continue in the next frame.
void Worker::on_nats_data(WsConn& conn, std::string_view data, std::int64_t now) {
  std::string_view buf = data;
  if (!conn.rx_partial.empty()) {
    conn.rx_partial.append(data);
    buf = conn.rx_partial;
  }
  std::size_t i = 0;
  for (;;) {
    const auto nl = buf.find("\r\n", i);
    if (nl == std::string_view::npos) break;
    const auto line = buf.substr(i, nl - i);
    if (line.starts_with("MSG ")) {
      std::size_t n = 0;
      const auto sp = line.rfind(' ');
      auto r = std::from_chars(line.data() + sp + 1, line.data() + line.size(), n);
      if (r.ec != std::errc()) {
        ++counters_["nats_bad_msg_line"];
        i = nl + 2;
        continue;
      }
      if (buf.size() < nl + 2 + n + 2) break;  // the payload is not complete yet
      const auto payload = buf.substr(nl + 2, n);
      if (payload.starts_with("M|")) {
        on_peer_delivery(conn, payload.substr(2), now);
      } else {
        ++counters_["foreign_messages"];
      }
      i = nl + 2 + n + 2;
      continue;
    }
    i = nl + 2;
    if (line == "PING") {
      conn.send("PONG\r\n");
    } else if (line.starts_with("-ERR")) {
      ++counters_["nats " + std::string(line.substr(0, 80))];
    }
  }
  if (i >= buf.size()) {
    conn.rx_partial.clear();
  } else {
    std::string rest(buf.substr(i));
    conn.rx_partial = std::move(rest);
  }
}

// Socket.IO: "2" ping (answer "3"), 42["msg",{...,"body":"M|..."}] deliveries, 43<id>[...] acks.
void Worker::on_socketio_frame(WsConn& conn, std::string_view frame, std::int64_t now) {
  if (frame == "2") {
    conn.send("3");
    return;
  }
  if (frame.starts_with("42")) {
    const auto b = frame.find(body_key);
    if (b == std::string_view::npos) {
      ++counters_["foreign_messages"];
      return;
    }
    on_peer_delivery(conn, frame.substr(b + body_key.size()), now);
    return;
  }
  if (frame.starts_with("43")) {
    std::uint64_t id = 0;
    std::from_chars(frame.data() + 2, frame.data() + frame.size(), id);
    const auto it = pending_acks_.find(id);
    if (it == pending_acks_.end()) {
      ++counters_["foreign_acks"];
      return;
    }
    const auto [step, t_ns] = it->second;
    pending_acks_.erase(it);
    if (frame.find(R"("error")") != std::string_view::npos) {
      auto& st = step_stats(step);
      ++st.send_errors;
      ++st.error_codes["socketio_ack_error"];
      return;
    }
    if (collected_.count(step) != 0) {
      ++counters_["late_acks"];
      return;
    }
    auto& st = step_stats(step);
    ++st.acked;
    st.ack.add(now - t_ns);
    return;
  }
  ++counters_["socketio_frame_" + std::string(frame.substr(0, 2))];
}

void Worker::handle_other_frame(WsConn& conn, std::string_view frame) {
  boost::system::error_code ec;
  auto v = json::parse(frame, ec);
  const auto* o = ec ? nullptr : v.if_object();
  const auto* type = o ? o->if_contains("type") : nullptr;
  if (type == nullptr || !type->is_string()) {
    ++counters_["unparsed_frames"];
    return;
  }
  const std::string t(type->get_string());
  if (t != "error") {
    ++counters_["frames_" + t];
    return;
  }
  const auto* code = o->if_contains("code");
  const std::string code_s = code && code->is_string() ? std::string(code->get_string()) : "?";
  const auto* cmid = o->if_contains("client_msg_id");
  Mark m;
  if (cmid && cmid->is_string() && parse_mark(cmid->get_string(), '-', m) && m.run == setup_.run) {
    on_send_done(conn);
    auto& st = step_stats(static_cast<int>(m.step));
    ++st.send_errors;
    ++st.error_codes[code_s];
    return;
  }
  ++counters_["error_" + code_s];
}

void Worker::on_closed(WsConn& conn, std::string_view reason) {
  if (stop_) return;
  ++counters_["closed_unexpected"];
  ++close_reasons_[std::string(reason)];
  if (pipe_.active && conn.inflight > 0) {
    pipe_.inflight -= conn.inflight;  // those acks will never come
    conn.inflight = 0;
  }
}

json::object Worker::cmd_collect(const json::object& cmd) {
  const int step = static_cast<int>(get_int(cmd, "step", 0));
  collected_.insert(step);
  StepStats st;
  if (auto it = steps_.find(step); it != steps_.end()) {
    st = std::move(it->second);
    steps_.erase(it);
  }
  return json::object{{"acked", st.acked},
                      {"delivered", st.delivered},
                      {"duplicates", st.duplicates},
                      {"reordered", st.reordered},
                      {"send_errors", st.send_errors},
                      {"error_codes", counts_to_json(st.error_codes)},
                      {"ack", st.ack.encode()},
                      {"deliver", st.deliver.encode()}};
}

json::object Worker::cmd_stats() {
  std::uint64_t ready = 0;
  for (auto& c : conns_) {
    if (c && c->ready()) ++ready;
  }
  return json::object{{"connected", ready},
                      {"counters", counts_to_json(counters_)},
                      {"close_reasons", counts_to_json(close_reasons_)},
                      {"rss_kb", sample_process(static_cast<int>(getpid())).rss_kb}};
}

void Worker::cmd_close() {
  stop_ = true;
  for (auto& c : conns_) {
    if (c) c->close();
  }
}

void run_worker_process(WorkerSetup setup, int control_fd) {
  int code = 0;
  try {
    Worker w(std::move(setup), control_fd);
    code = w.run();
  } catch (const std::exception& e) {
    std::cerr << "chat-bench worker: " << e.what() << "\n";
    code = 1;
  }
  std::fflush(nullptr);
  _exit(code);
}

}  // namespace bench
