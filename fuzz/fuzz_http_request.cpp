// The HTTP server's request path, in-process: raw bytes go through Beast's request parser
// with the server's limits, arriving in pieces as from a socket, then through what
// Session::dispatch_request does with a parsed request (target split, percent-decoding,
// query parsing, X-Request-ID and traceparent checks, routing over the services' route
// shapes) and what a handler does with the body (parse_json_object). Nothing may crash;
// parse_json_object throws only HttpError 400; the router's answers are consistent.
//
// Input: one byte choosing the piece size (1..256), then the bytes a client sends.
#include "detail/asio.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "http/server_uri.hpp"
#include "notifs/messaging/common/request_id.hpp"
#include "notifs/messaging/common/trace_context.hpp"
#include "notifs/messaging/http/envelope.hpp"
#include "notifs/messaging/http/router.hpp"

namespace http = notifs::messaging::http;
namespace common = notifs::messaging::common;
namespace beast = notifs::messaging::detail::beast;
namespace bhttp = notifs::messaging::detail::bhttp;
using notifs::fuzz::check;

namespace {

constexpr std::size_t kHeaderLimit = 8 * 1024;  // ServerSettings' defaults
constexpr std::size_t kBodyLimit = 64 * 1024;
constexpr std::size_t kPendingLimit = std::max<std::size_t>(kHeaderLimit, 4096);  // read_more

std::string_view to_sv(beast::string_view text) { return {text.data(), text.size()}; }

// The route shapes of the four services plus the server's built-ins.
const http::Router& router() {
  static const http::Router instance = [] {
    http::Router built;
    const auto none = [](const http::Request&) { return http::Response{}; };
    using M = http::Method;
    for (const auto& [method, pattern] : std::initializer_list<std::pair<M, const char*>>{
             {M::get, "/health"},
             {M::get, "/ready"},
             {M::get, "/metrics"},
             {M::post, "/api/v1/notifications"},
             {M::get, "/api/v1/notifications/{id}"},
             {M::post, "/api/v1/users"},
             {M::get, "/api/v1/users/{id}"},
             {M::get, "/api/v1/users/me"},
             {M::patch, "/api/v1/users/{id}"},
             {M::put, "/api/v1/users/{id}/preferences"},
             {M::post, "/api/v1/users/{id}/push_tokens"},
             {M::delete_, "/api/v1/users/{id}/push_tokens/{token}"},
             {M::get, "/api/v1/templates"},
             {M::post, "/api/v1/templates"},
             {M::get, "/api/v1/templates/{code}"},
             {M::put, "/api/v1/templates/{code}"},
             {M::post, "/api/v1/templates/{code}/render"}}) {
      built.add(method, pattern, none);
    }
    return built;
  }();
  return instance;
}

std::size_t parameter_count(std::string_view pattern) {
  return static_cast<std::size_t>(std::count(pattern.begin(), pattern.end(), '{'));
}

void dispatch(bhttp::request<bhttp::string_body>& message) {
  http::Request request;
  request.method = http::method_from_string(to_sv(message.method_string()));
  request.target = std::string(to_sv(message.target()));
  for (const auto& field : message) {
    request.headers.add(std::string(to_sv(field.name_string())), std::string(to_sv(field.value())));
  }
  request.body = std::move(message.body());

  if (const auto id = request.headers.get("X-Request-ID")) {
    (void)common::is_valid_request_id(*id);
  }
  if (const auto parent = request.headers.get("traceparent")) {
    if (const auto context = common::TraceContext::parse(*parent)) {
      check(common::TraceContext::parse(context->header()).has_value(),
            "a parsed traceparent prints as a parsable one", *parent);
    }
  }

  const auto parts = http::detail::split_target(request.target);
  if (!parts) {
    return;
  }
  const auto path = http::detail::percent_decode(parts->path, false);
  const auto query = http::detail::parse_query(parts->query);
  if (!path || !query) {
    return;
  }
  request.path = *path;
  request.query = *query;

  auto match = router().match(request.method, parts->path);
  switch (match.kind) {
    case http::Router::MatchKind::found:
      check(match.route != nullptr, "a found match has a route");
      check(match.params.size() == parameter_count(match.route->pattern),
            "one parameter per {name} of the pattern", match.route->pattern);
      check(match.route->method == request.method ||
                (request.method == http::Method::head && match.route->method == http::Method::get),
            "the route's method is the request's (or GET for HEAD)");
      break;
    case http::Router::MatchKind::method_not_allowed:
      check(!match.allowed.empty(), "a 405 names the allowed methods");
      break;
    case http::Router::MatchKind::not_found:
      break;
  }
  request.path_params = std::move(match.params);

  try {
    const auto body = http::parse_json_object(request);
    check(body.is_object(), "parse_json_object returns an object");
  } catch (const http::HttpError& error) {
    check(error.status() == 400, "parse_json_object throws only 400s");
  } catch (...) {
    notifs::fuzz::fail_unexpected("parse_json_object");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::size_t piece = std::size_t{data[0]} + 1;
  std::string_view input = notifs::fuzz::as_text(data + 1, size - 1);

  // Several requests may arrive on one connection: parse them one after another, with
  // what is unparsed kept in front of the next piece, as the session's buffer does.
  std::string pending;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser;
  while (true) {
    if (!parser) {
      parser.emplace();
      parser->header_limit(static_cast<std::uint32_t>(kHeaderLimit));
      parser->body_limit(kBodyLimit);
      parser->eager(true);
    }
    if (pending.empty()) {
      if (input.empty()) {
        return 0;
      }
      const auto take = std::min(piece, input.size());
      pending.append(input.substr(0, take));
      input.remove_prefix(take);
    }
    beast::error_code ec;
    const auto used = parser->put(boost::asio::buffer(pending.data(), pending.size()), ec);
    check(used <= pending.size(), "the parser consumes at most what it is given");
    pending.erase(0, used);
    if (ec && ec != bhttp::error::need_more) {
      return 0;  // the server answers 400 (or 413, 431) and closes
    }
    if (parser->is_done()) {
      dispatch(parser->get());
      parser.reset();
      continue;
    }
    if (ec == bhttp::error::need_more || used == 0) {
      if (pending.size() >= kPendingLimit) {
        return 0;  // the server's 431 for an endless chunk header or trailer section
      }
      if (input.empty()) {
        return 0;  // the client stopped mid-request
      }
      const auto take = std::min(piece, input.size());
      pending.append(input.substr(0, take));
      input.remove_prefix(take);
    }
  }
}
