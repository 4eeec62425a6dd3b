#pragma once

#include <chrono>
#include <string>

// One keep-alive HTTP/1.1 connection (a libcurl easy handle) to the gateway, with the API
// key on every request. Blocking; one thread uses a session at a time.
namespace notifs::faults {

struct HttpReply {
  long status = 0;     // 0 when no answer came (refused, reset, timed out)
  std::string body;
  std::string error;   // libcurl's text when status is 0
};

class HttpSession {
 public:
  HttpSession(std::string api_key, std::chrono::milliseconds timeout);
  ~HttpSession();
  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;

  HttpReply get(const std::string& url);
  HttpReply post_json(const std::string& url, const std::string& body);

 private:
  HttpReply perform(const std::string& url, const std::string* body);

  void* curl_;     // CURL*: kept out of the header
  void* headers_;  // curl_slist*
  std::chrono::milliseconds timeout_;
};

// curl_global_init, once, before any thread starts a session.
void init_http();

}  // namespace notifs::faults
