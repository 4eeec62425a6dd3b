#include "notifs/storage/pg_pool.hpp"
