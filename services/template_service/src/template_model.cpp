#include "template_model.hpp"

namespace notifs::template_service {

std::string_view to_string(Channel channel) {
  switch (channel) {
    case Channel::email:
      return "email";
    case Channel::push:
      return "push";
  }
  return "email";
}

std::optional<Channel> channel_from_string(std::string_view text) {
  if (text == "email") {
    return Channel::email;
  }
  if (text == "push") {
    return Channel::push;
  }
  return std::nullopt;
}

}  // namespace notifs::template_service
