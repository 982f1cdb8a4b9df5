#include "bus/redis/redis_bus.hpp"

#include "net/run_thread.hpp"
#include "obs/log.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <functional>
#include <future>

namespace chat::bus::redis {

namespace {

constexpr auto kMinBackoff = std::chrono::milliseconds(100);
constexpr auto kMaxBackoff = std::chrono::milliseconds(5000);
// Past this many PUBLISH commands without a reply (Redis stalled), new events are not forwarded.
constexpr int kMaxInFlight = 100'000;
// Invalidations kept while the publisher is down (beyond that the oldest go; the cache TTL bounds
// what a lost one costs).
constexpr std::size_t kMaxPendingInvalidations = 10'000;

// hiredis event hooks on Asio, as hiredis' adapters/ae.h does it for ae: readiness of the
// connection's socket is awaited with stream_descriptor::async_wait, and hiredis does the I/O.
// The descriptor is released (never closed) on cleanup: the socket belongs to hiredis.
struct Watch : std::enable_shared_from_this<Watch> {
  Watch(net::io_context& io, redisAsyncContext* c) : ac(c), sd(io, c->c.fd) {}

  redisAsyncContext* ac;
  net::posix::stream_descriptor sd;
  bool want_read = false;
  bool want_write = false;
  bool read_armed = false;
  bool write_armed = false;

  // One direction of readiness: what hiredis wants, whether a wait is pending, and its handler.
  struct Direction {
    bool Watch::*wanted;
    bool Watch::*armed;
    net::posix::stream_descriptor::wait_type wait;
    void (*handle)(redisAsyncContext*);
  };
  static constexpr Direction kRead{&Watch::want_read, &Watch::read_armed,
                                   net::posix::stream_descriptor::wait_read, redisAsyncHandleRead};
  static constexpr Direction kWrite{&Watch::want_write, &Watch::write_armed,
                                    net::posix::stream_descriptor::wait_write, redisAsyncHandleWrite};

  // Waits for the socket to be ready in `d`'s direction, lets hiredis do the I/O, and waits again
  // while hiredis still wants it.
  void arm(const Direction& d) {
    if (this->*d.armed || ac == nullptr) return;
    this->*d.armed = true;
    auto self = shared_from_this();
    sd.async_wait(d.wait, [self, &d](const boost::system::error_code& ec) {
      (*self).*d.armed = false;
      if (ec || self->ac == nullptr || !((*self).*d.wanted)) return;
      d.handle(self->ac);
      if (self->ac != nullptr && (*self).*d.wanted) self->arm(d);
    });
  }

  static void add_read(void* p) {
    auto* w = static_cast<Watch*>(p);
    w->want_read = true;
    w->arm(kRead);
  }
  static void del_read(void* p) { static_cast<Watch*>(p)->want_read = false; }
  static void add_write(void* p) {
    auto* w = static_cast<Watch*>(p);
    w->want_write = true;
    w->arm(kWrite);
  }
  static void del_write(void* p) { static_cast<Watch*>(p)->want_write = false; }
  static void cleanup(void* p) {
    auto* w = static_cast<Watch*>(p);
    w->ac = nullptr;
    w->want_read = w->want_write = false;
    boost::system::error_code ignored;
    w->sd.cancel(ignored);
    (void)w->sd.release();
    // The pending handlers hold their own reference; this drops the context's.
    delete static_cast<std::shared_ptr<Watch>*>(w->holder);
  }
  void* holder = nullptr;  // heap std::shared_ptr<Watch> owned by the context's ev.data
};

bool parse_int(std::string_view text, std::int64_t& out) {
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

// Splits the first line of a bus message into space-separated fields.
std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  while (!line.empty()) {
    const auto sp = line.find(' ');
    if (sp != 0) out.push_back(line.substr(0, sp));
    if (sp == std::string_view::npos) break;
    line.remove_prefix(sp + 1);
  }
  return out;
}

}  // namespace

// One connection to Redis, re-established with backoff. Bus thread only.
class RedisBus::Link {
 public:
  using Hook = std::function<void(redisAsyncContext*)>;
  using UpHook = std::function<void(bool)>;

  Link(net::io_context& io, std::string name, std::string host, int port, Hook on_connected, UpHook on_state)
      : io_(io),
        name_(std::move(name)),
        host_(std::move(host)),
        port_(port),
        on_connected_(std::move(on_connected)),
        on_state_(std::move(on_state)),
        retry_(io) {}

  void connect() {
    if (stopping_) return;
    redisAsyncContext* c = redisAsyncConnect(host_.c_str(), port_);
    if (c == nullptr) {
      retry_later();
      return;
    }
    if (c->err != 0) {
      log_failure(c->errstr);
      redisAsyncFree(c);
      retry_later();
      return;
    }
    c->data = this;
    auto* holder = new std::shared_ptr<Watch>(std::make_shared<Watch>(io_, c));
    (*holder)->holder = holder;
    c->ev.data = holder->get();
    c->ev.addRead = &Watch::add_read;
    c->ev.delRead = &Watch::del_read;
    c->ev.addWrite = &Watch::add_write;
    c->ev.delWrite = &Watch::del_write;
    c->ev.cleanup = &Watch::cleanup;
    ac_ = c;
    redisAsyncSetConnectCallback(c, &Link::on_connect);
    redisAsyncSetDisconnectCallback(c, &Link::on_disconnect);
    // The non-blocking connect completes when the socket becomes writable.
    Watch::add_write(c->ev.data);
  }

  void stop() {
    stopping_ = true;
    retry_.cancel();
    if (ac_ != nullptr) {
      auto* c = ac_;
      ac_ = nullptr;
      redisAsyncFree(c);
    }
    set_up(false);
  }

  redisAsyncContext* context() const noexcept { return up_ ? ac_ : nullptr; }
  int in_flight = 0;

 private:
  static void on_connect(const redisAsyncContext* c, int status) {
    auto* self = static_cast<Link*>(c->data);
    if (self == nullptr || c != self->ac_) return;
    if (status != REDIS_OK) {
      self->log_failure(c->errstr);
      self->lost();  // hiredis frees the context after this callback
      return;
    }
    obs::log_info("bus: redis " + self->name_ + " connection up");
    self->backoff_ = kMinBackoff;
    self->warned_ = false;
    self->set_up(true);
    if (self->on_connected_) self->on_connected_(self->ac_);
  }
  static void on_disconnect(const redisAsyncContext* c, int /*status*/) {
    auto* self = static_cast<Link*>(c->data);
    if (self == nullptr || c != self->ac_) return;
    obs::log_warn("bus: redis " + self->name_ + " connection lost; reconnecting");
    self->lost();
  }

  void lost() {
    ac_ = nullptr;
    in_flight = 0;
    set_up(false);
    retry_later();
  }
  void set_up(bool up) {
    if (up_ == up) return;
    up_ = up;
    if (on_state_) on_state_(up);
  }
  void log_failure(const char* why) {
    if (warned_) return;
    warned_ = true;
    obs::log_warn("bus: redis " + name_ + " connection to " + host_ + ":" + std::to_string(port_) +
                  " failed: " + (why != nullptr ? why : "?") + "; retrying with backoff");
  }
  void retry_later() {
    if (stopping_) return;
    retry_.expires_after(backoff_);
    backoff_ = std::min(backoff_ * 2, std::chrono::duration_cast<std::chrono::milliseconds>(kMaxBackoff));
    retry_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) connect();
    });
  }

  net::io_context& io_;
  std::string name_;
  std::string host_;
  int port_;
  Hook on_connected_;
  UpHook on_state_;
  net::steady_timer retry_;
  std::chrono::milliseconds backoff_{kMinBackoff};
  redisAsyncContext* ac_ = nullptr;
  bool up_ = false;
  bool stopping_ = false;
  bool warned_ = false;
};

bool parse_redis_url(std::string_view url, std::string& host, int& port) {
  constexpr std::string_view scheme = "redis://";
  if (url.substr(0, scheme.size()) != scheme) return false;
  url.remove_prefix(scheme.size());
  if (!url.empty() && url.back() == '/') url.remove_suffix(1);
  if (url.empty()) return false;
  const auto colon = url.rfind(':');
  if (colon == std::string_view::npos) {
    host = std::string(url);
    port = 6379;
    return true;
  }
  std::int64_t p = 0;
  if (colon == 0 || !parse_int(url.substr(colon + 1), p) || p < 1 || p > 65535) return false;
  host = std::string(url.substr(0, colon));
  port = static_cast<int>(p);
  return true;
}

RedisBus::RedisBus(gateway::Hub& hub, Options options) : hub_(hub), options_(std::move(options)) {
  publisher_ = std::make_unique<Link>(
      io_, "publisher", options_.host, options_.port, [this](redisAsyncContext*) { flush_invalidations(); },
      [this](bool up) { publisher_up_ = up; });
  subscriber_ = std::make_unique<Link>(
      io_, "subscriber", options_.host, options_.port,
      [this](redisAsyncContext* c) {
        redisAsyncCommand(
            c,
            [](redisAsyncContext* /*ctx*/, void* r, void* privdata) {
              auto* reply = static_cast<redisReply*>(r);
              if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) return;
              auto* kind = reply->element[0];
              auto* body = reply->element[2];
              if (kind->type != REDIS_REPLY_STRING) return;
              auto* bus = static_cast<RedisBus*>(privdata);
              if (std::string_view(kind->str, kind->len) == "subscribe") {
                if (bus->on_subscription) bus->on_subscription(true);
                return;
              }
              if (std::string_view(kind->str, kind->len) != "message") return;
              if (body->type != REDIS_REPLY_STRING) return;
              static_cast<RedisBus*>(privdata)->on_message(body->str, body->len);
            },
            this, "SUBSCRIBE %b", options_.channel.data(), options_.channel.size());
      },
      [this](bool up) {
        subscriber_up_ = up;
        if (!up && on_subscription) on_subscription(false);
      });
}

RedisBus::~RedisBus() {
  stop();
}

void RedisBus::start() {
  if (started_) return;
  started_ = true;
  net::post(io_, [this] {
    publisher_->connect();
    subscriber_->connect();
  });
  thread_ = std::thread([this] {
    auto guard = net::make_work_guard(io_);
    transport::run_io_thread(io_, "chatd-redis-bus");
  });
}

void RedisBus::stop() {
  if (!started_) return;
  started_ = false;
  std::promise<void> done;
  net::post(io_, [this, &done] {
    publisher_->stop();
    subscriber_->stop();
    done.set_value();
  });
  done.get_future().wait();
  io_.stop();
  thread_.join();
}

bool RedisBus::connected() const noexcept {
  return publisher_up_ && subscriber_up_;
}

void RedisBus::forward(std::string payload) {
  if (!publisher_up_.load(std::memory_order_relaxed)) return;  // remote nodes catch up by sync
  net::post(io_, [this, payload = std::move(payload)] {
    auto* c = publisher_->context();
    if (c == nullptr || publisher_->in_flight >= kMaxInFlight) return;
    ++publisher_->in_flight;
    redisAsyncCommand(
        c,
        [](redisAsyncContext* ctx, void* /*reply*/, void* /*privdata*/) {
          auto* link = static_cast<Link*>(ctx->data);
          if (link != nullptr && link->in_flight > 0) --link->in_flight;
        },
        nullptr, "PUBLISH %b %b", options_.channel.data(), options_.channel.size(), payload.data(),
        payload.size());
  });
}

void RedisBus::invalidate_tokens(domain::SessionId session) {
  std::string payload = "I " + std::to_string(options_.node_id) + " " + std::to_string(session) + "\n";
  net::post(io_, [this, payload = std::move(payload)]() mutable {
    pending_invalidations_.push_back(std::move(payload));
    if (pending_invalidations_.size() > kMaxPendingInvalidations) pending_invalidations_.pop_front();
    flush_invalidations();
  });
}

void RedisBus::flush_invalidations() {
  auto* c = publisher_->context();
  if (c == nullptr) return;
  while (!pending_invalidations_.empty()) {
    const auto& payload = pending_invalidations_.front();
    redisAsyncCommand(c, nullptr, nullptr, "PUBLISH %b %b", options_.channel.data(), options_.channel.size(),
                      payload.data(), payload.size());
    pending_invalidations_.pop_front();
  }
}

void RedisBus::publish(std::vector<domain::UserId> recipients,
                       gateway::SharedFrame frame,
                       std::uint64_t except_connection) {
  std::string payload = "P " + std::to_string(options_.node_id);
  for (auto u : recipients) {
    payload += ' ';
    payload += std::to_string(u);
  }
  payload += '\n';
  payload += *frame;
  hub_.publish(std::move(recipients), std::move(frame), except_connection);
  forward(std::move(payload));
}

void RedisBus::revoke_session(domain::UserId user, domain::SessionId session) {
  hub_.revoke_session(user, session);
  forward("R " + std::to_string(options_.node_id) + " " + std::to_string(user) + " " +
          std::to_string(session) + "\n");
}

void RedisBus::publish_to_watchers(domain::UserId subject, gateway::SharedFrame frame) {
  std::string payload = "W " + std::to_string(options_.node_id) + " " + std::to_string(subject) + "\n";
  payload += *frame;
  hub_.publish_to_watchers(subject, std::move(frame));
  forward(std::move(payload));
}

// Bus thread. Messages from one node arrive in the order that node published them.
void RedisBus::on_message(const char* data, std::size_t size) {
  const std::string_view msg(data, size);
  const auto nl = msg.find('\n');
  if (nl == std::string_view::npos) return;
  const auto head = fields(msg.substr(0, nl));
  const auto body = msg.substr(nl + 1);
  std::int64_t origin = -1;
  if (head.size() < 2 || !parse_int(head[1], origin)) return;
  if (origin == static_cast<std::int64_t>(options_.node_id)) return;  // delivered locally already
  if (head[0] == "P") {
    std::vector<domain::UserId> recipients;
    recipients.reserve(head.size() - 2);
    for (std::size_t i = 2; i < head.size(); ++i) {
      std::int64_t u = 0;
      if (!parse_int(head[i], u)) return;
      recipients.push_back(u);
    }
    hub_.publish(std::move(recipients), std::make_shared<const std::string>(body));
  } else if (head[0] == "R" && head.size() == 4) {
    std::int64_t user = 0;
    std::int64_t session = 0;
    if (parse_int(head[2], user) && parse_int(head[3], session)) hub_.revoke_session(user, session);
  } else if (head[0] == "I" && head.size() == 3) {
    std::int64_t session = 0;
    if (parse_int(head[2], session) && on_invalidate) on_invalidate(session);
  } else if (head[0] == "W" && head.size() == 3) {
    std::int64_t subject = 0;
    if (parse_int(head[2], subject))
      hub_.publish_to_watchers(subject, std::make_shared<const std::string>(body));
  }
}

}  // namespace chat::bus::redis
