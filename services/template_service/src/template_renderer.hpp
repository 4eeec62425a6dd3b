#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "notifs/messaging/http/envelope.hpp"

// Mustache rendering (kainjow::mustache, kept out of this header) for template_service.
namespace notifs::template_service {

enum class Escaping {
  none,  // subject, body, title: `{{x}}` inserts the value as it is
  html,  // html_body: `{{x}}` is HTML-escaped; `{{{x}}}` and `{{& x}}` stay raw
};

// One named Mustache text of a template version, e.g. {"subject", "Hi {{name}}", none}.
struct FieldSource {
  std::string name;
  std::string text;
  Escaping escaping = Escaping::none;
};

// Sections may nest this deep; deeper is refused when the template is created.
inline constexpr std::size_t kMaxSectionDepth = 16;
// Upper bound on the text one render call may produce over all fields, estimated while
// rendering (literal text of each section pass plus each inserted value), so that a
// small template over a large list, nested, cannot make the service build gigabytes.
inline constexpr std::size_t kMaxRenderedBytes = 1024 * 1024;

// Why `text` is not a usable template, as a sentence for the client ("is not a valid
// Mustache template: Unclosed tag at 4"), or nullopt when it compiles. Refused too:
// partials (`{{> x}}`: there is nothing to include them from), empty tags (`{{}}`) and
// sections nested deeper than kMaxSectionDepth. Pure, thread-safe.
std::optional<std::string> template_problem(const std::string& text);

// One or more fields did not compile; problems() names each field and its parser error.
class TemplateSyntaxError : public std::runtime_error {
 public:
  explicit TemplateSyntaxError(std::vector<messaging::http::FieldProblem> problems);
  const std::vector<messaging::http::FieldProblem>& problems() const { return problems_; }

 private:
  std::vector<messaging::http::FieldProblem> problems_;
};

// The render would exceed kMaxRenderedBytes.
class RenderTooLarge : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct RenderResult {
  // Field name -> rendered text, in the order the fields were given. Empty when
  // `missing` is not.
  std::vector<std::pair<std::string, std::string>> fields;
  // Every variable an interpolation tag (`{{x}}`, `{{{x}}}`, `{{& x}}`) of any field
  // looked up and the call did not give, sorted, each once, as written in the tag
  // ("user.name"). A section over a missing name is not listed: Mustache treats it as
  // false.
  std::vector<std::string> missing;
};

// The compiled fields of one template version.
//
// Variables (a JSON object) map to Mustache data thus: strings as they are; integers in
// decimal (no ".0"); other numbers as their JSON text; booleans are true/false for
// sections and print as "true"/"false"; null is present but empty (prints nothing, false
// for sections, so it is never "missing"); arrays are lists; objects are objects. A list
// or object printed with `{{x}}` prints nothing.
//
// Thread-safety: render() may run on many threads at once. kainjow's render() is not
// const (it may write an error message), so one compiled kainjow template is never used
// by two threads together: each call borrows a compiled copy from a small free list and
// returns it, compiling a new copy only when every copy is busy. (Parsing costs about
// four times what rendering does, so compiling per call would double a render's price.)
class TemplateRenderer {
 public:
  // Throws TemplateSyntaxError naming every field that does not compile.
  explicit TemplateRenderer(std::vector<FieldSource> fields);
  ~TemplateRenderer();
  TemplateRenderer(const TemplateRenderer&) = delete;
  TemplateRenderer& operator=(const TemplateRenderer&) = delete;

  // Names the fields use in interpolation and section tags (not "."), sorted, each once.
  const std::vector<std::string>& variables() const { return variables_; }
  const std::vector<FieldSource>& fields() const { return fields_; }

  // Throws std::invalid_argument when `variables` is not an object, RenderTooLarge.
  RenderResult render(const nlohmann::json& variables) const;

 private:
  struct Instance;
  std::unique_ptr<Instance> compile_instance() const;
  std::unique_ptr<Instance> borrow() const;
  void give_back(std::unique_ptr<Instance> instance) const;

  std::vector<FieldSource> fields_;
  std::vector<std::string> variables_;
  mutable std::mutex mutex_;
  mutable std::vector<std::unique_ptr<Instance>> idle_;
};

}  // namespace notifs::template_service
