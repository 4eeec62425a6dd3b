#pragma once

#include <cstddef>
#include <string_view>

namespace notifs::messaging::common {

// Depth of the deepest array or object in JSON text, brackets inside strings ignored,
// without parsing it. Stops as soon as `limit` is crossed (returning a value above it),
// so a hostile body costs one pass at most. Malformed text is left for the parser to
// report. Used to refuse deep documents before nlohmann builds them: its parser is
// iterative, but dump() and the code that walks a document recurse.
std::size_t json_nesting_depth(std::string_view text, std::size_t limit);

}  // namespace notifs::messaging::common
