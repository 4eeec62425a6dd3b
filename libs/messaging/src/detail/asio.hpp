#pragma once

// The one header every Asio/Beast user in libs/messaging includes first.
// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>, which
// GCC 12 in C++20 mode no longer pulls in transitively.
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace notifs::messaging::detail {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;
}  // namespace notifs::messaging::detail
