#pragma once

#include <span>

#include "notifs/storage/migrations.hpp"

namespace notifs::worker {

// migrations/NNNN_*.sql (the sent_notifications table of SendLedger), compiled into the
// binary (notifs_embed_migrations). Apply with storage::apply_migrations(pool, migrations(),
// "notification_worker") before the first SendLedger use.
std::span<const storage::Migration> migrations();

}  // namespace notifs::worker
