#pragma once

#include <span>

#include "notifs/storage/migrations.hpp"

namespace notifs::api_gateway {

// migrations/NNNN_*.sql, compiled into the binary (notifs_embed_migrations).
std::span<const storage::Migration> migrations();

}  // namespace notifs::api_gateway
