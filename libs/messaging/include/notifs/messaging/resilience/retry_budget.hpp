#pragma once

#include <mutex>

namespace notifs::messaging::resilience {

struct RetryBudgetSettings {
  double max_tokens = 10.0;  // bucket size; retries are allowed while tokens > max_tokens / 2
  double token_ratio = 0.1;  // tokens a success puts back (a failure takes 1)
};

// Retry throttling as in gRPC's service config (A6 client retries): every failed attempt
// takes a token, every success returns `token_ratio`, and retries stop while the bucket is
// at or below half. In a full outage only a handful of retries go out, instead of every
// call multiplying the load by its attempt count. Thread-safe.
class RetryBudget {
 public:
  explicit RetryBudget(RetryBudgetSettings settings = {});

  void on_success();
  void on_failure();
  // True when a retry may be sent now. Does not consume anything by itself.
  bool can_retry() const;
  double tokens() const;

 private:
  RetryBudgetSettings settings_;
  mutable std::mutex mutex_;
  double tokens_;
};

}  // namespace notifs::messaging::resilience
