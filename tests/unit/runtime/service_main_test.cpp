#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "notifs/runtime/service_main.hpp"

namespace runtime = notifs::runtime;

namespace {

// Captures std::cerr for the lifetime of the object.
class CerrCapture {
 public:
  CerrCapture() : previous_(std::cerr.rdbuf(captured_.rdbuf())) {}
  ~CerrCapture() { std::cerr.rdbuf(previous_); }
  CerrCapture(const CerrCapture&) = delete;
  CerrCapture& operator=(const CerrCapture&) = delete;
  std::string text() const { return captured_.str(); }

 private:
  std::ostringstream captured_;
  std::streambuf* previous_;
};

int run_main(const std::vector<const char*>& flags, const runtime::Configure& configure) {
  std::vector<const char*> argv{"svc"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return runtime::service_main(static_cast<int>(argv.size()), argv.data(), "svc", configure);
}

}  // namespace

TEST_CASE("runtime: service_main refuses bad configuration with exit 2 and one stderr line",
          "[runtime][service_main]") {
  bool ran = false;
  CerrCapture cerr;
  // Flags override whatever the test's environment holds, so the outcome is fixed.
  const int code = run_main({"--port=abc", "--prot=1", "--log-level=info"},
                            [&ran](runtime::ConfigReader& config) {
                              config.port("PORT", 4001);
                              config.required_text("NOTIFS_TEST_SURELY_UNSET_VARIABLE");
                              return std::function<int()>([&ran] {
                                ran = true;
                                return 0;
                              });
                            });
  CHECK(code == 2);
  CHECK_FALSE(ran);
  CHECK(cerr.text() ==
        "svc: invalid configuration: PORT: must be an integer in 1..65535 (got \"abc\"); "
        "NOTIFS_TEST_SURELY_UNSET_VARIABLE: is required; unknown flag --prot\n");
}

TEST_CASE("runtime: service_main reports recorded problems before an error they caused",
          "[runtime][service_main]") {
  CerrCapture cerr;
  const int code =
      run_main({"--port=0"}, [](runtime::ConfigReader& config) -> std::function<int()> {
        config.port("PORT", 4001);
        throw std::invalid_argument("port out of range");
      });
  CHECK(code == 2);
  CHECK(cerr.text() == "svc: invalid configuration: PORT: must be an integer in 1..65535 "
                       "(got \"0\")\n");
}

TEST_CASE("runtime: service_main fails with 1 when configure throws on good values",
          "[runtime][service_main]") {
  CerrCapture cerr;
  const int code =
      run_main({"--log-level=error"}, [](runtime::ConfigReader&) -> std::function<int()> {
        throw std::runtime_error("no such certificate file");
      });
  CHECK(code == 1);
  CHECK(cerr.text() == "svc: cannot start: no such certificate file\n");
}

TEST_CASE("runtime: service_main returns what the service returns, and 1 when it throws",
          "[runtime][service_main]") {
  CHECK(run_main({"--log-level=error"}, [](runtime::ConfigReader&) {
          return std::function<int()>([] { return 7; });
        }) == 7);
  CHECK(run_main({"--log-level=error"}, [](runtime::ConfigReader&) {
          return std::function<int()>([]() -> int { throw std::runtime_error("lost the port"); });
        }) == 1);
}
