#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <mutex>
#include <vector>

#include "notifs/messaging/common/random.hpp"

namespace notifs::fakes {

// A Random that returns a scripted sequence, repeating it from the start when it runs
// out; a single value makes a constant source. Thread-safe.
class FakeRandom final : public messaging::common::Random {
 public:
  static constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

  explicit FakeRandom(std::uint64_t value = 0);
  FakeRandom(std::initializer_list<std::uint64_t> values);

  std::uint64_t next_u64() override;

  // Replaces the script and starts it from the beginning.
  void set(std::initializer_list<std::uint64_t> values);

  // How many values have been drawn so far.
  std::size_t draws() const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::uint64_t> values_;
  std::size_t next_ = 0;
  std::size_t draws_ = 0;
};

}  // namespace notifs::fakes
