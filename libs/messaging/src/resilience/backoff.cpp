#include "notifs/messaging/resilience/backoff.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "notifs/messaging/common/random.hpp"

namespace notifs::messaging::resilience {
namespace {

// High 64 bits of a 64x64-bit product, in portable C++ (no __int128 under -Wpedantic).
std::uint64_t multiply_high(std::uint64_t a, std::uint64_t b) {
  const std::uint64_t a_lo = a & 0xFFFFFFFFu;
  const std::uint64_t a_hi = a >> 32;
  const std::uint64_t b_lo = b & 0xFFFFFFFFu;
  const std::uint64_t b_hi = b >> 32;
  const std::uint64_t lo_lo = a_lo * b_lo;
  const std::uint64_t hi_lo = a_hi * b_lo;
  const std::uint64_t lo_hi = a_lo * b_hi;
  const std::uint64_t hi_hi = a_hi * b_hi;
  const std::uint64_t middle = (lo_lo >> 32) + (hi_lo & 0xFFFFFFFFu) + (lo_hi & 0xFFFFFFFFu);
  return hi_hi + (hi_lo >> 32) + (lo_hi >> 32) + (middle >> 32);
}

BackoffSettings validated(BackoffSettings settings) {
  if (settings.base.count() < 0) {
    throw std::invalid_argument("backoff base must not be negative, got " +
                                std::to_string(settings.base.count()) + "ms");
  }
  if (settings.max < settings.base) {
    throw std::invalid_argument("backoff max (" + std::to_string(settings.max.count()) +
                                "ms) must not be below base (" +
                                std::to_string(settings.base.count()) + "ms)");
  }
  if (!(settings.factor >= 1.0) || !std::isfinite(settings.factor)) {
    throw std::invalid_argument("backoff factor must be a finite number >= 1, got " +
                                std::to_string(settings.factor));
  }
  return settings;
}

}  // namespace

JitteredExponentialBackoff::JitteredExponentialBackoff(BackoffSettings settings,
                                                       common::Random& random)
    : settings_(validated(settings)), random_(random) {}

std::chrono::milliseconds JitteredExponentialBackoff::ceiling(std::uint32_t retry) const {
  const std::uint32_t exponent = retry == 0 ? 0 : retry - 1;
  // In double the product saturates to infinity instead of wrapping, and the comparison
  // below clamps it (and any value that would not fit the integer type) to max.
  const double scaled = static_cast<double>(settings_.base.count()) *
                        std::pow(settings_.factor, static_cast<double>(exponent));
  const auto max = settings_.max.count();
  if (!(scaled < static_cast<double>(max))) {
    return settings_.max;
  }
  return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(scaled));
}

std::chrono::milliseconds JitteredExponentialBackoff::next_delay(std::uint32_t retry) const {
  const auto top = static_cast<std::uint64_t>(ceiling(retry).count());
  // Uniform in [0, top] by scaling a 64-bit draw (Lemire's multiply-shift) rather than
  // taking a remainder: the largest draw maps exactly to the ceiling, the smallest to 0.
  return std::chrono::milliseconds(
      static_cast<std::chrono::milliseconds::rep>(multiply_high(random_.next_u64(), top + 1)));
}

}  // namespace notifs::messaging::resilience
