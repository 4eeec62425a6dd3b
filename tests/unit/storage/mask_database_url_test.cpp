#include <string>

#include <catch2/catch.hpp>

#include "notifs/storage/migrations.hpp"
#include "notifs/storage/pg_pool.hpp"

using notifs::storage::mask_database_url;
using notifs::storage::migration_checksum;

TEST_CASE("storage: mask_database_url hides the password of a URL", "[storage]") {
  CHECK(mask_database_url("postgresql://app:s3cret@db:5432/users") ==
        "postgresql://app:***@db:5432/users");
  CHECK(mask_database_url("postgres://app:s3cret@db/users?sslmode=require") ==
        "postgres://app:***@db/users?sslmode=require");
  // Nothing to hide: unchanged, the port's colon included.
  CHECK(mask_database_url("postgresql://postgres@127.0.0.1:5432/notifs_test") ==
        "postgresql://postgres@127.0.0.1:5432/notifs_test");
  CHECK(mask_database_url("postgresql://127.0.0.1:5432/db") == "postgresql://127.0.0.1:5432/db");
  CHECK(mask_database_url("postgresql://app:@db/users") == "postgresql://app:***@db/users");
}

TEST_CASE("storage: mask_database_url hides passwords that break the URL's syntax", "[storage]") {
  // Unencoded '@', '/' and '?' in a password: masking too much beats leaking any of it.
  for (const std::string url : {"postgresql://app:p@ss@db/users", "postgresql://app:p/ss@db/users",
                                "postgresql://app:p?ss@db/users"}) {
    const std::string masked = mask_database_url(url);
    CHECK(masked.find("ss@") == std::string::npos);
    CHECK(masked.rfind("postgresql://app:***@", 0) == 0);
  }
}

TEST_CASE("storage: mask_database_url hides password parameters", "[storage]") {
  CHECK(mask_database_url("postgresql://app@db/users?password=s3cret&sslmode=require") ==
        "postgresql://app@db/users?password=***&sslmode=require");
  CHECK(mask_database_url("host=db user=app password=s3cret dbname=users") ==
        "host=db user=app password=*** dbname=users");
  // libpq's quoting: backslash escapes a quote or a backslash inside single quotes.
  CHECK(mask_database_url("host=db password = 'it\\'s a \\\\ secret' dbname=users") ==
        "host=db password = *** dbname=users");
  // Only the keyword itself: a parameter merely ending in "password" is left alone.
  CHECK(mask_database_url("host=db notpassword=x") == "host=db notpassword=x");
}

TEST_CASE("storage: migration_checksum is FNV-1a 64 over the exact bytes", "[storage]") {
  CHECK(migration_checksum("") == 0xcbf29ce484222325ULL);
  CHECK(migration_checksum("a") == 0xaf63dc4c8601ec8cULL);
  CHECK(migration_checksum("foobar") == 0x85944171f73967e8ULL);
  CHECK(migration_checksum("SELECT 1;\n") != migration_checksum("SELECT 1;\r\n"));
}
