#include <limits>
#include <stdexcept>

#include <catch2/catch.hpp>

#include "notifs/messaging/resilience/retry_budget.hpp"

using notifs::messaging::resilience::RetryBudget;
using notifs::messaging::resilience::RetryBudgetSettings;

TEST_CASE("retry budget starts full and allows retries", "[resilience][retry_budget]") {
  RetryBudget budget({10.0, 0.1});
  CHECK(budget.tokens() == Approx(10.0));
  CHECK(budget.can_retry());
}

TEST_CASE("retry budget drains with failures and stops at half", "[resilience][retry_budget]") {
  RetryBudget budget({10.0, 0.1});
  for (int i = 0; i < 4; ++i) {
    budget.on_failure();
  }
  CHECK(budget.tokens() == Approx(6.0));
  CHECK(budget.can_retry());
  budget.on_failure();
  CHECK(budget.tokens() == Approx(5.0));
  CHECK_FALSE(budget.can_retry());  // at half is already throttled

  for (int i = 0; i < 20; ++i) {
    budget.on_failure();
  }
  CHECK(budget.tokens() == Approx(0.0));  // never below zero
  CHECK_FALSE(budget.can_retry());
}

TEST_CASE("retry budget refills with successes, capped at max", "[resilience][retry_budget]") {
  RetryBudget budget({10.0, 0.5});
  for (int i = 0; i < 6; ++i) {
    budget.on_failure();
  }
  REQUIRE(budget.tokens() == Approx(4.0));
  REQUIRE_FALSE(budget.can_retry());

  budget.on_success();
  budget.on_success();
  CHECK(budget.tokens() == Approx(5.0));
  CHECK_FALSE(budget.can_retry());
  budget.on_success();
  CHECK(budget.tokens() == Approx(5.5));
  CHECK(budget.can_retry());

  for (int i = 0; i < 100; ++i) {
    budget.on_success();
  }
  CHECK(budget.tokens() == Approx(10.0));
  // Draining from the cap takes the same five failures as from the start.
  for (int i = 0; i < 4; ++i) {
    budget.on_failure();
  }
  CHECK(budget.can_retry());
  budget.on_failure();
  CHECK_FALSE(budget.can_retry());
}

TEST_CASE("retry budget rejects settings that cannot work", "[resilience][retry_budget]") {
  CHECK_THROWS_AS(RetryBudget({0.0, 0.1}), std::invalid_argument);
  CHECK_THROWS_AS(RetryBudget({-1.0, 0.1}), std::invalid_argument);
  CHECK_THROWS_AS(RetryBudget({10.0, 0.0}), std::invalid_argument);
  CHECK_THROWS_AS(RetryBudget({10.0, -0.1}), std::invalid_argument);
  CHECK_THROWS_AS(RetryBudget({std::numeric_limits<double>::quiet_NaN(), 0.1}), std::invalid_argument);
  CHECK_THROWS_AS(RetryBudget({10.0, std::numeric_limits<double>::infinity()}), std::invalid_argument);
}
