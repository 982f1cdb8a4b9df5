// Asio's implementation, compiled once for chat-bench (BOOST_ASIO_SEPARATE_COMPILATION).
#include <boost/asio/impl/src.hpp>
