#include "http_session.hpp"

#include <curl/curl.h>

#include <stdexcept>
#include <utility>

namespace notifs::faults {

namespace {

size_t append_body(char* data, size_t size, size_t count, void* target) {
  static_cast<std::string*>(target)->append(data, size * count);
  return size * count;
}

CURL* handle(void* curl) { return static_cast<CURL*>(curl); }

}  // namespace

void init_http() {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    throw std::runtime_error("curl_global_init failed");
  }
}

HttpSession::HttpSession(std::string api_key, std::chrono::milliseconds timeout)
    : curl_(curl_easy_init()), headers_(nullptr), timeout_(timeout) {
  if (curl_ == nullptr) {
    throw std::runtime_error("curl_easy_init failed");
  }
  curl_slist* list = nullptr;
  for (const std::string& line : {"Authorization: Bearer " + api_key,
                                 std::string("Content-Type: application/json"),
                                 std::string("Accept: application/json")}) {
    curl_slist* grown = curl_slist_append(list, line.c_str());
    if (grown == nullptr) {
      curl_slist_free_all(list);
      curl_easy_cleanup(handle(curl_));
      throw std::runtime_error("curl_slist_append failed");
    }
    list = grown;
  }
  headers_ = list;
}

HttpSession::~HttpSession() {
  curl_easy_cleanup(handle(curl_));
  curl_slist_free_all(static_cast<curl_slist*>(headers_));
}

HttpReply HttpSession::get(const std::string& url) { return perform(url, nullptr); }

HttpReply HttpSession::post_json(const std::string& url, const std::string& body) {
  return perform(url, &body);
}

HttpReply HttpSession::perform(const std::string& url, const std::string* body) {
  HttpReply reply;
  CURL* curl = handle(curl_);
  char error[CURL_ERROR_SIZE] = {};
  // The handle keeps its connection between calls; the options are set again each time
  // because a GET after a POST must not inherit the POST's body.
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(headers_));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  if (body != nullptr) {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
  } else {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  }
  const CURLcode code = curl_easy_perform(curl);
  // The buffer lives on this stack frame only.
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  if (code != CURLE_OK) {
    reply.status = 0;
    reply.error = error[0] != '\0' ? error : curl_easy_strerror(code);
    return reply;
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  return reply;
}

}  // namespace notifs::faults
