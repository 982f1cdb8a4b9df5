#pragma once

#include "net.hpp"

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/verb.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace bench {

struct HttpResult {
  int status = 0;  // 0: transport error (see error)
  std::string body;
  std::string error;
  std::int64_t latency_ns = 0;  // request written -> response read
};

// One keep-alive HTTP/1.1 connection to chatd, reopened after any transport error. Used for setup
// (register, conversations) and for the W4 history reads. Owned and used by one coroutine at a time.
// GCC 12: request() takes only trivially destructible arguments (pointers, views) so that nothing
// with a destructor is copied into its coroutine frame.
class HttpClient {
 public:
  HttpClient(net::any_io_executor ex, tcp::endpoint server, net::ip::address local);

  // body and bearer may be null. Never throws for transport errors: status 0 and error set.
  net::awaitable<HttpResult> request(beast::http::verb verb,
                                     std::string_view target,
                                     const std::string* body,
                                     const std::string* bearer);

 private:
  net::awaitable<bool> ensure_open(std::string& error);

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  tcp::endpoint server_;
  net::ip::address local_;
  std::string host_;
  bool open_ = false;
};

// Binds `socket` (not yet open) to `local` with IP_BIND_ADDRESS_NO_PORT, so the kernel picks the
// ephemeral port at connect() from the full 4-tuple: each source address gets its own port range.
void open_and_bind(tcp::socket& socket, const net::ip::address& local);

}  // namespace bench
