#include "notifs/messaging/resilience/retry_budget.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace notifs::messaging::resilience {
namespace {

RetryBudgetSettings validated(RetryBudgetSettings settings) {
  if (!(settings.max_tokens > 0.0) || !std::isfinite(settings.max_tokens)) {
    throw std::invalid_argument("retry budget max_tokens must be a finite number > 0, got " +
                                std::to_string(settings.max_tokens));
  }
  if (!(settings.token_ratio > 0.0) || !std::isfinite(settings.token_ratio)) {
    throw std::invalid_argument("retry budget token_ratio must be a finite number > 0, got " +
                                std::to_string(settings.token_ratio));
  }
  return settings;
}

}  // namespace

// The bucket starts full, as in gRPC: a fresh client may retry until failures show.
RetryBudget::RetryBudget(RetryBudgetSettings settings)
    : settings_(validated(settings)), tokens_(settings_.max_tokens) {}

void RetryBudget::on_success() {
  std::lock_guard lock(mutex_);
  tokens_ = std::min(settings_.max_tokens, tokens_ + settings_.token_ratio);
}

void RetryBudget::on_failure() {
  std::lock_guard lock(mutex_);
  tokens_ = std::max(0.0, tokens_ - 1.0);
}

bool RetryBudget::can_retry() const {
  std::lock_guard lock(mutex_);
  return tokens_ > settings_.max_tokens / 2.0;
}

double RetryBudget::tokens() const {
  std::lock_guard lock(mutex_);
  return tokens_;
}

}  // namespace notifs::messaging::resilience
