# Every dependency is a Debian package (scripts/deps installs them) found with CMake's own
# find_package or pkg-config; nothing is downloaded at configure time.
find_package(Threads REQUIRED)
find_package(Boost 1.74 REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(spdlog REQUIRED)
find_package(prometheus-cpp REQUIRED COMPONENTS core)
find_package(rabbitmq-c REQUIRED)
find_package(CURL REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PQXX REQUIRED IMPORTED_TARGET libpqxx)

# Anything that includes Asio or Beast links this: they are compiled once, in
# libs/messaging/src/http/boost_impl.cpp, instead of in every translation unit.
add_library(notifs_asio INTERFACE)
add_library(notifs::asio ALIAS notifs_asio)
target_link_libraries(notifs_asio INTERFACE Boost::headers Threads::Threads)
target_compile_definitions(notifs_asio INTERFACE
  BOOST_ASIO_SEPARATE_COMPILATION
  BOOST_BEAST_SEPARATE_COMPILATION
  BOOST_ASIO_NO_DEPRECATED)

find_path(KAINJOW_MUSTACHE_INCLUDE_DIR kainjow/mustache.hpp REQUIRED)
add_library(kainjow_mustache INTERFACE)
target_include_directories(kainjow_mustache SYSTEM INTERFACE ${KAINJOW_MUSTACHE_INCLUDE_DIR})
add_library(kainjow::mustache ALIAS kainjow_mustache)

if(NOTIFS_BUILD_TESTS)
  find_package(Catch2 2 REQUIRED)
  include(Catch)
endif()
