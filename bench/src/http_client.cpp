#include "http_client.hpp"

#include "proc_stats.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <chrono>
#include <netinet/in.h>
#include <sys/socket.h>

namespace bench {

namespace http = beast::http;

void open_and_bind(tcp::socket& socket, const net::ip::address& local) {
  socket.open(tcp::v4());
  const int one = 1;
  // Best effort: without it, bind() reserves a port per socket and the range runs out sooner.
  ::setsockopt(socket.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  socket.set_option(tcp::no_delay(true));
  if (!local.is_unspecified()) socket.bind(tcp::endpoint(local, 0));
}

HttpClient::HttpClient(net::any_io_executor ex, tcp::endpoint server, net::ip::address local)
    : stream_(ex),
      server_(server),
      local_(local),
      host_(server.address().to_string() + ":" + std::to_string(server.port())) {}

net::awaitable<bool> HttpClient::ensure_open(std::string& error) {
  if (open_) co_return true;
  beast::error_code ignored;
  stream_.socket().close(ignored);  // a half-broken previous connection
  buffer_.clear();
  try {
    open_and_bind(stream_.socket(), local_);
  } catch (const std::exception& e) {
    error = std::string("bind: ") + e.what();
    co_return false;
  }
  stream_.expires_after(std::chrono::seconds(30));
  auto [ec] = co_await stream_.async_connect(server_, net::as_tuple(net::use_awaitable));
  if (ec) {
    error = "connect: " + ec.message();
    co_return false;
  }
  open_ = true;
  co_return true;
}

net::awaitable<HttpResult> HttpClient::request(http::verb verb,
                                               std::string_view target,
                                               const std::string* body,
                                               const std::string* bearer) {
  HttpResult out;
  // One retry: a keep-alive connection the server closed meanwhile fails on first use.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!co_await ensure_open(out.error)) co_return out;
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, host_);
    req.set(http::field::user_agent, "chat-bench");
    if (bearer != nullptr) req.set(http::field::authorization, "Bearer " + *bearer);
    if (body != nullptr) {
      req.set(http::field::content_type, "application/json");
      req.body() = *body;
    }
    req.prepare_payload();
    const auto t0 = mono_ns();
    stream_.expires_after(std::chrono::seconds(60));
    auto [wec, wn] = co_await http::async_write(stream_, req, net::as_tuple(net::use_awaitable));
    if (wec) {
      open_ = false;
      out.error = "write: " + wec.message();
      continue;
    }
    http::response<http::string_body> res;
    auto [rec, rn] = co_await http::async_read(stream_, buffer_, res, net::as_tuple(net::use_awaitable));
    if (rec) {
      open_ = false;
      out.error = "read: " + rec.message();
      continue;
    }
    out.latency_ns = mono_ns() - t0;
    out.status = static_cast<int>(res.result_int());
    out.body = std::move(res.body());
    out.error.clear();
    if (!res.keep_alive()) open_ = false;
    co_return out;
  }
  co_return out;
}

}  // namespace bench
