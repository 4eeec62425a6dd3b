#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

// What template_service stores: a template `code` belongs to one channel; each locale of a
// code has immutable versions numbered 1, 2, 3... Plain values, thread-compatible.
namespace notifs::template_service {

enum class Channel { email, push };

std::string_view to_string(Channel channel);
std::optional<Channel> channel_from_string(std::string_view text);

inline constexpr std::string_view kDefaultLocale = "en";

// The Mustache texts of one version. Email uses subject, body and html_body (optional);
// push uses title and body. A field a channel does not use is empty / nullopt.
struct TemplateContent {
  std::string subject;
  std::string body;
  std::optional<std::string> html_body;
  std::string title;
};

// One stored version, as read back from the database.
struct TemplateVersion {
  std::string code;
  Channel channel = Channel::email;
  std::string locale;
  std::int32_t version = 0;
  TemplateContent content;
  std::string created_at;  // RFC 3339 UTC with milliseconds, as the database formatted it
};

// A request that contradicts what is stored. The HTTP layer maps each kind to its
// contract status and code (409 template_exists, 409 channel_mismatch, 404
// template_not_found, 404 version_not_found); what() is the message for the client.
class TemplateError : public std::runtime_error {
 public:
  enum class Kind { template_exists, channel_mismatch, template_not_found, version_not_found };
  TemplateError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

}  // namespace notifs::template_service
