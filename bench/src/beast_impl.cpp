// Beast's implementation, compiled once for chat-bench (BOOST_BEAST_SEPARATE_COMPILATION).
#include <boost/beast/src.hpp>
