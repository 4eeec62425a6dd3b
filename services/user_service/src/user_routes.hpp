#pragma once

#include "notifs/messaging/http/router.hpp"
#include "user_repository.hpp"

namespace notifs::user_service {

// Registers user_service's API (CONTRACT.md) on `router`:
//   POST   /api/v1/users                            201 user | 400 | 409 email_taken
//   GET    /api/v1/users?page=&limit=               200 users + page meta | 400
//   GET    /api/v1/users/{id}                       200 user | 400 | 404 user_not_found
//   PATCH  /api/v1/users/{id}                       200 user | 400 | 404 | 409 email_taken
//   DELETE /api/v1/users/{id}                       200 {"id","deleted":true} | 400 | 404
//   GET    /api/v1/users/{id}/preferences           200 {"email","push"} | 400 | 404
//   PUT    /api/v1/users/{id}/preferences           200 {"email","push"} | 400 | 404
//   POST   /api/v1/users/{id}/push_tokens           201 added | 200 already there |
//                                                   400 | 404 | 409 too_many_push_tokens
//   DELETE /api/v1/users/{id}/push_tokens/{token}   200 | 400 | 404 user_not_found |
//                                                   404 push_token_not_found
// Every handler queries PostgreSQL, so every one runs on the server's worker pool
// (Execution::blocking). `repository` must outlive the router's server.
void add_user_routes(messaging::http::Router& router, UserRepository& repository);

}  // namespace notifs::user_service
