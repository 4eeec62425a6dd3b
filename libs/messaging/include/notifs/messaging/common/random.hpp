#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <random>

namespace notifs::messaging::common {

// A source of randomness for jitter and identifiers; injectable so tests are
// deterministic. Implementations must be safe to call from any thread.
class Random {
 public:
  virtual ~Random() = default;
  virtual std::uint64_t next_u64() = 0;

  // Uniform in [0, bound); bound 0 yields 0.
  std::uint64_t uniform(std::uint64_t bound) { return bound == 0 ? 0 : next_u64() % bound; }
  // Uniform in [0.0, 1.0).
  double uniform01() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
};

// mt19937_64 seeded from std::random_device, guarded by a mutex: cheap enough for
// jitter and ids, which are never on a path that a lock would slow down measurably.
// random_device gives 32 bits a call; one call would be too few for ids that must be
// unique across a fleet, so the seed takes 256 bits.
class DefaultRandom final : public Random {
 public:
  DefaultRandom() : engine_(seeded_engine()) {}
  explicit DefaultRandom(std::uint64_t seed) : engine_(seed) {}

  std::uint64_t next_u64() override {
    std::lock_guard lock(mutex_);
    return engine_();
  }

 private:
  static std::mt19937_64 seeded_engine() {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device(),
                       device(), device(), device(), device()};
    return std::mt19937_64(seed);
  }

  std::mutex mutex_;
  std::mt19937_64 engine_;
};

}  // namespace notifs::messaging::common
