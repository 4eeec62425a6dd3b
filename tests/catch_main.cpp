#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <string>
#include <vector>

// catch_discover_tests hands test names to CMake as a list, and CMake splits lists at ';':
// a case whose name has one becomes fragments that match nothing, and ctest then "passes"
// a test that never ran. Compiled into every suite, this case refuses such names.
TEST_CASE("No test name contains a semicolon, so ctest runs every case", "[meta]") {
  std::vector<std::string> offenders;
  for (const auto& test : Catch::getRegistryHub().getTestCaseRegistry().getAllTests()) {
    if (test.name.find(';') != std::string::npos) {
      offenders.push_back(test.name);
    }
  }
  CAPTURE(offenders);
  CHECK(offenders.empty());
}
