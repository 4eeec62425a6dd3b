#pragma once

#include <functional>
#include <string>

#include "notifs/messaging/http/service_client.hpp"

namespace notifs::worker {

// Removes device tokens the push provider called unregistered, through user_service
// (DELETE /api/v1/users/{id}/push_tokens/{token}, service token), so later notifications
// stop going to dead devices. Best effort: a failure is logged and counted, never fails
// the notification (the provider already said the token is dead; the next send to it
// will say so again and retry the removal).
// Thread-safe; remove() never blocks; `done` (optional) gets whether user_service
// confirmed (2xx, or 404: already gone).
class PushTokenRegistry {
 public:
  using Done = std::function<void(bool removed)>;

  explicit PushTokenRegistry(messaging::http::ServiceClient& users);

  void remove(const std::string& user_id, const std::string& token, Done done = {});

 private:
  messaging::http::ServiceClient& users_;
};

}  // namespace notifs::worker
