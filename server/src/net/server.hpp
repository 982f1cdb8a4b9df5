#pragma once

#include "net/beast.hpp"
#include "net/server_context.hpp"

#include <cstddef>
#include <memory>
#include <vector>

namespace chat::transport {

// The listening socket. It accepts on the first I/O thread and hands each connection to the next
// I/O thread in turn, where the connection lives until it closes (one thread per connection, so
// no locks inside a session).
class WsShard;

class Server {
 public:
  Server(std::vector<net::io_context*> threads, ServerContext& ctx);
  ~Server();

  // Binds and listens; returns the bound endpoint (port 0 picks a free port).
  tcp::endpoint listen(const tcp::endpoint& endpoint);
  void start_accepting();
  // Any thread. Stops accepting; sessions already open go on.
  void stop_accepting();

 private:
  net::awaitable<void> accept_loop();

  std::vector<net::io_context*> threads_;
  ServerContext& ctx_;
  tcp::acceptor acceptor_;
  std::size_t next_ = 0;
  std::vector<std::unique_ptr<WsShard>> ws_shards_;
};

// Serves one HTTP connection (keep-alive) until it closes or upgrades to a WebSocket.
// `ws_shard` is the WsShard of the socket's I/O thread, number `shard`.
net::awaitable<void> serve_http(tcp::socket socket, ServerContext& ctx, WsShard& ws_shard, std::size_t shard);

}  // namespace chat::transport
