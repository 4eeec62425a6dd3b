#include "notifs/runtime/config_reader.hpp"
