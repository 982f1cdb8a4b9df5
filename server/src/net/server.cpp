#include "net/server.hpp"

#include "api/router.hpp"
#include "domain/limits.hpp"
#include "net/static_files.hpp"
#include "net/ws_codec.hpp"
#include "net/ws_session.hpp"
#include "net/ws_shard.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <array>

namespace chat::transport {

namespace {

constexpr std::size_t kHeaderBytesMax = 16 * 1024;

// Applied to every HTTP response: nothing we serve is a page to frame or a type to guess.
void security_headers(http::response<http::string_body>& res) {
  res.set(http::field::server, "chatd");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
  res.set("Referrer-Policy", "no-referrer");
  res.set(http::field::cache_control, "no-store");
}

http::response<http::string_body> to_beast(api::Response r, unsigned version, bool keep_alive) {
  http::response<http::string_body> res{static_cast<http::status>(r.status), version};
  security_headers(res);
  if (!r.content_type.empty()) res.set(http::field::content_type, r.content_type);
  for (auto& [k, v] : r.headers) res.set(k, v);
  res.body() = std::move(r.body);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

http::response<http::string_body> error_page(unsigned status,
                                             std::string_view code,
                                             std::string_view message,
                                             unsigned version) {
  api::Response r;
  r.status = status;
  r.body = std::string(R"({"error":{"code":")") + std::string(code) + R"(","message":")" +
           std::string(message) + "\"}}";
  return to_beast(std::move(r), version, false);
}

// Same-origin unless configured otherwise: the Origin's host[:port] must equal the Host header.
bool origin_allowed(const http::request<http::string_body>& req, const ServerContext& ctx) {
  const auto it = req.find(http::field::origin);
  if (it == req.end()) return true;  // not a browser: nothing to protect against
  const std::string_view origin = it->value();
  if (std::find(ctx.options.allowed_origins.begin(), ctx.options.allowed_origins.end(), origin) !=
      ctx.options.allowed_origins.end())
    return true;
  auto parsed = boost::urls::parse_absolute_uri(origin);
  if (!parsed) return false;
  const auto host = req.find(http::field::host);
  return host != req.end() && parsed->encoded_authority() == host->value();
}

std::string path_of(std::string_view target) {
  return std::string(target.substr(0, target.find('?')));
}

// The web client. Its HTML may load only our own scripts, styles and sockets; content-hashed assets
// are cached for a year, everything else is revalidated.
http::response<http::string_body> static_response(const StaticFiles& web,
                                                  const std::string& path,
                                                  unsigned version,
                                                  bool keep_alive) {
  const auto* file = path.find("..") == std::string::npos ? web.find(path) : nullptr;
  if (file == nullptr) return error_page(404, "not_found", "no such file", version);
  http::response<http::string_body> res{http::status::ok, version};
  res.set(http::field::server, "chatd");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");
  res.set("Content-Security-Policy",
          "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; style-src 'self'; "
          "script-src 'self'; worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; "
          "frame-ancestors 'none'");
  res.set(http::field::content_type, file->content_type);
  res.set(http::field::cache_control, file->immutable ? "public, max-age=31536000, immutable" : "no-cache");
  res.body() = file->body;
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

// After refusing a request whose body is still arriving: stop sending, then read and discard for a
// bounded time and size, so the client finishes its write and reads our answer instead of
// failing with EPIPE/ECONNRESET.
net::awaitable<void> linger_close(beast::tcp_stream& stream) {
  constexpr std::size_t kDrainBytesMax = 16 << 20;
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream.expires_after(std::chrono::seconds(5));
  std::array<char, 16 * 1024> scratch{};
  std::size_t drained = 0;
  while (drained < kDrainBytesMax) {
    auto [ec, n] = co_await stream.async_read_some(net::buffer(scratch), net::as_tuple(net::use_awaitable));
    if (ec) break;
    drained += n;
  }
  stream.socket().close(ignored);
}

}  // namespace

Server::Server(std::vector<net::io_context*> threads, ServerContext& ctx)
    : threads_(std::move(threads)), ctx_(ctx), acceptor_(*threads_.front()) {
  const WsShard::Timing timing{ctx_.options.ws_idle_timeout, ctx_.options.auth_timeout,
                               ctx_.options.ws_coalesce, ctx_.options.ws_coalesce_min_sends,
                               ctx_.options.ws_coalesce_min_busy};
  for (auto* io : threads_) {
    ws_shards_.push_back(std::make_unique<WsShard>(*io, timing));
  }
}

Server::~Server() = default;

tcp::endpoint Server::listen(const tcp::endpoint& endpoint) {
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(net::socket_base::max_listen_connections);
  return acceptor_.local_endpoint();
}

void Server::start_accepting() {
  net::co_spawn(
      acceptor_.get_executor(), [this] { return accept_loop(); }, net::detached);
}

void Server::stop_accepting() {
  net::post(acceptor_.get_executor(), [this] {
    beast::error_code ignored;
    acceptor_.close(ignored);
  });
}

net::awaitable<void> Server::accept_loop() {
  while (acceptor_.is_open()) {
    const std::size_t shard = next_++ % threads_.size();
    auto [ec, socket] =
        co_await acceptor_.async_accept(threads_[shard]->get_executor(), net::as_tuple(net::use_awaitable));
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) break;
    if (ec) {
      // EMFILE and friends: log, pause briefly so a full table does not spin the loop.
      obs::log_warn("accept failed: " + ec.message());
      net::steady_timer pause(acceptor_.get_executor(), std::chrono::milliseconds(50));
      co_await pause.async_wait(net::as_tuple(net::use_awaitable));
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    auto* ctx = &ctx_;
    auto* ws_shard = ws_shards_[shard].get();
    auto ex = socket.get_executor();
    net::co_spawn(
        ex,
        [s = std::move(socket), ctx, ws_shard, shard]() mutable {
          return serve_http(std::move(s), *ctx, *ws_shard, shard);
        },
        [](std::exception_ptr e) {
          if (!e) return;
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& err) {
            obs::log_warn(std::string("http session ended with: ") + err.what());
          }
        });
  }
}

net::awaitable<void> serve_http(tcp::socket socket,
                                ServerContext& ctx,
                                WsShard& ws_shard,
                                std::size_t shard) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  // Looked up on the first REST request only (rate limits by IP): a WebSocket upgrade does not
  // need it, and getpeername + formatting is a syscall and an allocation per connection.
  std::string remote_ip;
  bool remote_known = false;
  for (;;) {
    if (ctx.stopping.load()) break;
    stream.expires_after(ctx.options.http_idle_timeout);
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderBytesMax);
    parser.body_limit(domain::limits::http_body_bytes_max);
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, net::as_tuple(net::use_awaitable));
    if (ec == http::error::body_limit) {
      auto res = error_page(413, "payload_too_large", "request body is larger than 1 MiB", 11);
      ctx.metrics.count_error(domain::ErrorCode::payload_too_large);
      co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
      co_await linger_close(stream);
      co_return;
    }
    if (ec == http::error::header_limit || ec == http::error::bad_target || ec == http::error::bad_method ||
        ec == http::error::bad_version || ec == http::error::bad_field) {
      auto res = error_page(400, "bad_request", "malformed HTTP request", 11);
      co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
      break;
    }
    if (ec) break;  // closed, timed out, or garbage we do not answer
    auto req = parser.release();

    if (websocket::is_upgrade(req)) {
      if (path_of(req.target()) != "/ws") {
        auto res = error_page(404, "not_found", "no such route", req.version());
        co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
        break;
      }
      if (!origin_allowed(req, ctx)) {
        ctx.metrics.count_error(domain::ErrorCode::origin_not_allowed);
        auto res =
            error_page(403, "origin_not_allowed", "this Origin may not open a WebSocket here", req.version());
        co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
        break;
      }
      // The checks Beast's accept made (RFC 6455 4.2.1); from here on the framing is ours.
      const auto key = req[http::field::sec_websocket_key];
      const auto version = req[http::field::sec_websocket_version];
      std::string_view refused;
      if (req.find(http::field::host) == req.end())
        refused = "missing Host";
      else if (key.empty() || key.size() > 24)
        refused = "missing or malformed Sec-WebSocket-Key";
      else if (version.empty())
        refused = "missing Sec-WebSocket-Version";
      if (!refused.empty()) {
        auto res = error_page(400, "bad_request", refused, req.version());
        co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
        break;
      }
      if (version != "13") {
        auto res = error_page(426, "bad_request", "unsupported WebSocket version (13 is)", req.version());
        res.set(http::field::sec_websocket_version, "13");
        co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
        break;
      }
      std::string bearer;
      if (auto it = req.find(http::field::authorization); it != req.end()) {
        const std::string_view value = it->value();
        if (value.substr(0, 7) == "Bearer ") bearer = std::string(value.substr(7));
      }
      const std::string accept = ws::accept_key(key);
      const std::string early = beast::buffers_to_string(buffer.data());
      stream.expires_never();
      auto session = std::make_shared<WsSession>(stream.release_socket(), ctx, ws_shard, shard);
      session->start(accept, std::move(bearer), early);
      co_return;
    }

    if (ctx.web != nullptr && (req.method() == http::verb::get || req.method() == http::verb::head)) {
      const auto path = path_of(req.target());
      if (path.rfind("/api/", 0) != 0 && path != "/healthz" && path != "/metrics" && path != "/ws") {
        auto res = static_response(*ctx.web, path, req.version(), req.keep_alive() && !ctx.stopping.load());
        if (req.method() == http::verb::head) res.body().clear();
        auto [wec, wn] = co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
        if (wec || !res.keep_alive()) break;
        continue;
      }
    }

    ctx.in_flight.fetch_add(1);
    struct Done {
      ServerContext& c;
      ~Done() { c.in_flight.fetch_sub(1); }
    } done{ctx};
    api::Request request;
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    if (auto it = req.find(http::field::authorization); it != req.end())
      request.authorization = std::string(it->value());
    if (auto it = req.find(http::field::content_type); it != req.end())
      request.content_type = std::string(it->value());
    request.body = std::move(req.body());
    if (!remote_known) {
      remote_known = true;
      beast::error_code rec;
      auto ep = stream.socket().remote_endpoint(rec);
      if (!rec) remote_ip = ep.address().to_string();
    }
    request.remote_ip = remote_ip;
    if (auto it = req.find("X-Forwarded-For"); it != req.end())
      request.forwarded_for = std::string(it->value());
    auto response = co_await ctx.router.handle(std::move(request));
    const bool keep_alive = req.keep_alive() && !ctx.stopping.load();
    auto res = to_beast(std::move(response), req.version(), keep_alive);
    auto [wec, wn] = co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
    if (wec || !keep_alive) break;
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace chat::transport
