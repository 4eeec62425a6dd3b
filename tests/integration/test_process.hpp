#pragma once

// What several integration-test supports need from the process around them: the
// environment scripts/test exports, and running a shell command to completion.

#include <string>

namespace notifs::test_support {

// The value of an environment variable; FAILs the test (saying to use scripts/test) when
// it is unset or empty.
std::string require_env(const char* name);

// `text` as one single-quoted shell word.
std::string shell_quote(const std::string& text);

struct CommandResult {
  int exit_code = -1;  // -1 when the command did not exit normally
  std::string output;  // its stdout (append " 2>&1" to the command for stderr too)
};

// Runs `command` with /bin/sh and waits for it. Blocking.
CommandResult run_command(const std::string& command);

}  // namespace notifs::test_support
