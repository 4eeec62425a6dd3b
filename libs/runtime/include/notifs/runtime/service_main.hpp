#pragma once

#include <functional>
#include <string>

#include "notifs/runtime/config_reader.hpp"

namespace notifs::runtime {

// Reads the configuration and returns what runs the process (returning its exit code).
using Configure = std::function<std::function<int()>(ConfigReader& config)>;

// Everything a main() does around its own wiring, the same way in every process:
//  1. reads LOG_LEVEL / LOG_FORMAT, then calls `configure` to read the rest;
//  2. on any configuration problem prints one line
//     `<service>: invalid configuration: <problems>` to stderr and returns 2;
//  3. configures logging and logs the effective configuration, secrets masked;
//  4. runs what `configure` returned; an exception escaping it is logged and gives 1.
int service_main(int argc, const char* const* argv, std::string service_name,
                 const Configure& configure);

}  // namespace notifs::runtime
