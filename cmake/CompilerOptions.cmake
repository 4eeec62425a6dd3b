# Warnings and sanitizers for every target of the project, kept in one interface target
# so third-party code found through find_package is not affected.
add_library(notifs_compile_options INTERFACE)
add_library(notifs::compile_options ALIAS notifs_compile_options)

target_compile_options(notifs_compile_options INTERFACE -Wall -Wextra -Wpedantic -Wshadow
  -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wnull-dereference)
if(NOTIFS_WERROR)
  target_compile_options(notifs_compile_options INTERFACE -Werror)
endif()

if(NOTIFS_SANITIZE)
  target_compile_options(notifs_compile_options INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(notifs_compile_options INTERFACE -fsanitize=address,undefined)
endif()
