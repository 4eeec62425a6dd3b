#include "fakes/fake_random.hpp"

namespace notifs::fakes {

FakeRandom::FakeRandom(std::uint64_t value) : values_{value} {}

FakeRandom::FakeRandom(std::initializer_list<std::uint64_t> values) : values_(values) {
  // An empty script would leave next_u64() nothing to return; a constant 0 is the least
  // surprising stand-in.
  if (values_.empty()) {
    values_.push_back(0);
  }
}

std::uint64_t FakeRandom::next_u64() {
  std::lock_guard lock(mutex_);
  std::uint64_t value = values_[next_ % values_.size()];
  ++next_;
  ++draws_;
  return value;
}

void FakeRandom::set(std::initializer_list<std::uint64_t> values) {
  std::lock_guard lock(mutex_);
  values_.assign(values);
  if (values_.empty()) {
    values_.push_back(0);
  }
  next_ = 0;
}

std::size_t FakeRandom::draws() const {
  std::lock_guard lock(mutex_);
  return draws_;
}

}  // namespace notifs::fakes
