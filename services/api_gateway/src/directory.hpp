#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "notifs/messaging/common/clock.hpp"
#include "notifs/messaging/http/service_client.hpp"
#include "notifs/runtime/lookup_cache.hpp"
#include "notifs/runtime/single_flight.hpp"

namespace notifs::api_gateway {

using runtime::LookupCacheSettings;
using runtime::LookupCacheStats;
using runtime::SingleFlightSettings;

// What the gateway needs of a user (user_service GET /api/v1/users/{id}, envelope data).
struct UserSnapshot {
  std::string id;
  std::string name;
  std::string email;
  std::string locale;
  std::vector<std::string> push_tokens;
  bool email_enabled = false;  // preferences.email
  bool push_enabled = false;   // preferences.push
};

// What the gateway needs of a template (template_service GET /api/v1/templates/{code}).
// `locale` is the locale the service answered with (it falls back to "en").
struct TemplateSnapshot {
  std::string code;
  std::string channel;
  std::string locale;
  int version = 0;
};

enum class LookupStatus : std::uint8_t {
  found,        // `value` is set
  not_found,    // the upstream said 404 (now or less than negative_ttl ago)
  unavailable,  // the upstream failed and nothing usable was cached: answer 503
};

template <typename Snapshot>
struct Lookup {
  LookupStatus status = LookupStatus::unavailable;
  std::shared_ptr<const Snapshot> value;  // set exactly when found
  bool stale = false;   // found: served from a stale entry because the upstream failed
  std::string reason;   // unavailable (or stale): what went wrong upstream

  static Lookup found(std::shared_ptr<const Snapshot> snapshot, bool from_stale = false,
                      std::string why = {}) {
    return Lookup{LookupStatus::found, std::move(snapshot), from_stale, std::move(why)};
  }
  static Lookup not_found() { return Lookup{LookupStatus::not_found, nullptr, false, {}}; }
  static Lookup unavailable(std::string why) {
    return Lookup{LookupStatus::unavailable, nullptr, false, std::move(why)};
  }
  bool is_found() const { return status == LookupStatus::found; }
  bool is_not_found() const { return status == LookupStatus::not_found; }
  bool is_unavailable() const { return status == LookupStatus::unavailable; }
};

using UserLookup = Lookup<UserSnapshot>;
using TemplateLookup = Lookup<TemplateSnapshot>;

template <typename Result>
using Callback = std::function<void(Result)>;

struct DirectorySettings {
  LookupCacheSettings users{};      // keyed by user id
  LookupCacheSettings templates{};  // keyed by code and requested locale
  SingleFlightSettings flights{};   // per cache: callers one upstream fetch may serve
};

// Counters since construction (each exact, not one consistent snapshot).
struct DirectoryStats {
  LookupCacheStats users;
  LookupCacheStats templates;
  std::uint64_t upstream_fetches = 0;  // calls started (one per coalesced burst)
  std::uint64_t coalesced = 0;         // lookups that joined a fetch already in flight
  std::uint64_t stale_served = 0;      // stale entries answered because the upstream failed
  std::uint64_t unavailable = 0;       // lookups answered `unavailable`
  std::uint64_t overflows = 0;         // lookups refused by a full single flight
};

namespace detail {

// Parse the envelope of a 2xx answer; std::nullopt (with `error` set) when the body is not
// the shape the contract promises. Exposed for unit tests.
std::optional<UserSnapshot> parse_user(std::string_view body, std::string& error);
std::optional<TemplateSnapshot> parse_template(std::string_view body, std::string& error);

}  // namespace detail

// The gateway's reads of users and templates: LookupCache in front of a ServiceClient per
// upstream (breaker, retries, deadline), with SingleFlight coalescing concurrent misses of
// one key into one upstream call.
//
// Per lookup:
//   fresh entry          -> found, answered inline (no upstream call);
//   negative entry       -> not_found, inline;
//   miss or stale entry  -> one fetch per key in flight, shared by every caller meanwhile:
//     2xx with a well-formed body -> put() and found;
//     404 with the service's own not-found code (user_not_found, template_not_found)
//                                 -> put_absent() and not_found (a deleted user is never
//                                    served stale);
//     anything else (no response: transport error, deadline, open breaker, shutdown; or a
//     5xx after the client's retries, another status, a malformed body)
//                                 -> an upstream failure: each waiter answers its own stale
//                                    value if it had one (counted in stale_served), else
//                                    unavailable with the reason.
//   a full single flight (overflow) -> the caller's stale value if any, else unavailable.
//   A 404 that does not carry the service's not-found code (a wrong base URL answering
//   "route not found") is a failure, not a negative entry, so misconfiguration shows as
//   503 rather than as every user being unknown.
//
// Requests carry X-Request-ID = request_id (the requester's: coalesced waiters share the
// leader's id upstream) and, when the client's settings have a service_token,
// Authorization: Bearer (the ServiceClient adds it).
//
// Callbacks: run exactly once, either inline on the caller's thread (fresh or negative
// hit, overflow) or on the ServiceClient's io thread when the fetch completes (the
// leader's and every coalesced caller's, one after another). They must not block or
// throw; an exception is dropped by the client after the other waiters ran.
//
// Thread-safe; never blocks (the cache and flight locks are held for a map probe).
// The clients and the clock must outlive the Directory. Destroying the Directory answers
// every caller still waiting as an upstream failure ("directory shutting down": its stale
// value, else unavailable); fetches still in flight then complete into state they keep
// alive, and call nobody.
class Directory {
 public:
  Directory(messaging::http::ServiceClient& users, messaging::http::ServiceClient& templates,
            const messaging::common::Clock& clock, DirectorySettings settings = {});
  ~Directory();
  Directory(const Directory&) = delete;
  Directory& operator=(const Directory&) = delete;

  void find_user(std::string id, std::string request_id, Callback<UserLookup> callback);
  // An empty locale asks for the service's default ("en").
  void find_template(std::string code, std::string locale, std::string request_id,
                     Callback<TemplateLookup> callback);

  DirectoryStats stats() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace notifs::api_gateway
