#pragma once

// The battery's table: every case is one request (raw bytes) for one endpoint of one
// process, with the answer the contract demands of it.

#include <string>
#include <vector>

#include "raw_http.hpp"

namespace notifs::tests::battery {

// One process under test and how it authenticates callers.
struct Target {
  std::string name;      // "gateway", "user_service", ...
  Endpoint endpoint;
  std::string auth;      // value of Authorization ("Bearer ..."), empty for none
};

struct Expect {
  std::vector<int> statuses;  // empty: any 4xx
  std::string code;           // the envelope's error.code, when the contract names one
  bool closed_ok = false;     // the server may close without answering (half a request)
  bool success = false;       // a 2xx success envelope is the right answer (a control case)
  std::string request_id;     // the X-Request-ID the answer must carry (echoed)
};

struct Case {
  std::string endpoint;  // summary row: "gateway POST /api/v1/notifications"
  std::string name;      // what is wrong with the request
  const Target* target = nullptr;
  std::string request;   // raw bytes
  Expect expect;
  bool half_close = false;  // shut down our sending side after the request (EOF mid-request)
};

// What the cases refer to: the processes and the objects the battery made beforehand.
struct Fixture {
  Target gateway, users, templates, email_worker, push_worker;
  std::string api_key;
  std::string user_id;         // a real user (email on) made by the battery
  std::string template_code;   // a real email template whose subject uses {{name}}
  std::string bomb_code;       // a real email template whose output explodes with lists
  std::string unknown_uuid;    // a UUID no user or notification has
  std::string run_tag;         // unique per run, for names that must not collide
};

// Every case of the table, in endpoint order.
std::vector<Case> make_cases(const Fixture& fixture);

}  // namespace notifs::tests::battery
