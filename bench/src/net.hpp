#pragma once

// The one place that names the Boost namespaces chat-bench uses.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace boost::beast {}
namespace boost::json {}

namespace bench {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace json = boost::json;
using tcp = net::ip::tcp;
}  // namespace bench
