#pragma once

// The one place that names the Boost namespaces we use. Asio and Beast are compiled once, in
// net/asio_impl.cpp and net/beast_impl.cpp (BOOST_*_SEPARATE_COMPILATION).
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace chat {
namespace net = boost::asio;
}  // namespace chat
