#pragma once

#include <span>

#include "notifs/storage/migrations.hpp"

namespace notifs::template_service {

// template_service's schema, services/template_service/migrations/NNNN_*.sql in version
// order, compiled into the binary by notifs_embed_migrations (see CMakeLists.txt).
std::span<const storage::Migration> migrations();

}  // namespace notifs::template_service
