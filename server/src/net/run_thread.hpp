#pragma once

#include "net/asio.hpp"
#include "obs/log.hpp"

#include <exception>
#include <string>

namespace chat::transport {

// The body of every thread that runs an io_context (I/O shards, presence, Redis bus): names the
// thread, then runs `io` until it is stopped or out of work. An exception escaping a handler is
// logged and the loop goes on: one failed handler must not take the thread's other work with it.
inline void run_io_thread(net::io_context& io, const char* name) {
  obs::name_this_thread(name);
  for (;;) {
    try {
      io.run();
      return;
    } catch (const std::exception& e) {
      obs::log_error(std::string("uncaught on thread ") + name + ": " + e.what());
    }
  }
}

}  // namespace chat::transport
