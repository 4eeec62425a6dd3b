#include "template_renderer.hpp"

#include <cstddef>
#include <set>
#include <string_view>
#include <type_traits>

// kainjow's context::push (vector::insert at the front) draws a false -Wnull-dereference
// from libstdc++ once inlined at -O2; the library's code is not ours to change.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <kainjow/mustache.hpp>
#pragma GCC diagnostic pop

namespace notifs::template_service {

namespace {

namespace km = kainjow::mustache;
using Tag = km::mstch_tag<std::string>;
using Component = km::component<std::string>;

// ---------------------------------------------------------------------------------------
// Compile time: the template's tags, as kainjow's own parser sees them.

struct Analysis {
  std::optional<std::string> problem;
  std::set<std::string> names;
};

// Recursion is bounded: a section deeper than kMaxSectionDepth ends the walk.
void collect(const Component& node, std::size_t depth, Analysis& out) {
  for (const auto& child : node.children) {
    if (out.problem) {
      return;
    }
    const auto& tag = child.tag;
    switch (tag.type) {
      case km::tag_type::variable:
      case km::tag_type::unescaped_variable:
      case km::tag_type::section_begin:
      case km::tag_type::section_begin_inverted:
        if (tag.name.empty()) {
          out.problem = "has an empty tag (a tag must name a variable)";
          return;
        }
        if (tag.name != ".") {
          out.names.insert(tag.name);
        }
        break;
      case km::tag_type::partial:
        out.problem = "uses the partial {{> " + tag.name + "}}; partials are not supported";
        return;
      default:
        break;
    }
    if (tag.is_section_begin()) {
      if (depth + 1 > kMaxSectionDepth) {
        out.problem = "nests sections deeper than " + std::to_string(kMaxSectionDepth) + " levels";
        return;
      }
      collect(child, depth + 1, out);
    }
  }
}

Analysis analyse(const std::string& text) {
  // The parser keeps its delimiter state in a context; nothing is looked up in it.
  km::context<std::string> unused;
  km::context_internal<std::string> parse_state{unused};
  Component root;
  std::string error;
  const km::parser<std::string> parser{text, parse_state, root, error};
  Analysis analysis;
  if (!error.empty()) {
    analysis.problem = "is not a valid Mustache template: " + error;
    return analysis;
  }
  collect(root, 0, analysis);
  return analysis;
}

// ---------------------------------------------------------------------------------------
// Render time.

// kainjow looks names up only in basic_mustache::render_component, and always as
// `ctx.get(tag.name)` with the tag being rendered (kainjow 4.1, the Debian package this
// builds against). A basic_context sees just the name, yet it must tell an interpolation
// (a miss there is a missing variable) from a section (a miss there is false, as Mustache
// defines it). mstch_tag is standard-layout with `name` as its first member, so the tag
// and its name are pointer-interconvertible and the tag is reachable from the reference.
// The asserts below and the unit tests on sections and interpolations of one name pin
// this down; a kainjow that changes it fails them.
static_assert(std::is_standard_layout_v<Tag>, "kainjow's mstch_tag layout changed");
static_assert(offsetof(Tag, name) == 0, "kainjow's mstch_tag layout changed");

const Tag& tag_of(const std::string& name) { return *reinterpret_cast<const Tag*>(&name); }

const km::data& printed_true() {
  static const km::data value{std::string("true")};
  return value;
}
const km::data& printed_false() {
  static const km::data value{std::string("false")};
  return value;
}

class Budget {
 public:
  void spend(std::size_t bytes) {
    used_ += bytes;
    if (used_ > kMaxRenderedBytes) {
      throw RenderTooLarge("the rendered template would exceed " +
                           std::to_string(kMaxRenderedBytes / 1024) + " KiB");
    }
  }

 private:
  std::size_t used_ = 0;
};

// kainjow's split(): "a..b" has an empty middle part, a trailing '.' adds none.
std::vector<std::string> split_dotted(const std::string& name) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start < name.size()) {
    const auto dot = name.find('.', start);
    if (dot == std::string::npos) {
      parts.push_back(name.substr(start));
      break;
    }
    parts.push_back(name.substr(start, dot - start));
    start = dot + 1;
  }
  return parts;
}

// The context stack of one field's render: kainjow's own lookup rules (innermost first;
// a dotted name must resolve entirely within one stack entry), plus the bookkeeping that
// makes missing variables and the output bound possible.
class RenderContext final : public km::basic_context<std::string> {
 public:
  RenderContext(const km::data* root, std::set<std::string>& missing, Budget& budget)
      : missing_(&missing), budget_(&budget) {
    items_.push_back(root);
  }

  void push(const km::data* data) override { items_.push_back(data); }
  void pop() override { items_.pop_back(); }

  const km::data* get(const std::string& name) const override {
    const Tag& tag = tag_of(name);
    const km::data* found = find(name);
    switch (tag.type) {
      case km::tag_type::variable:
      case km::tag_type::unescaped_variable:
        if (found == nullptr) {
          missing_->insert(name);
          return nullptr;
        }
        if (found->is_bool()) {
          return found->is_true() ? &printed_true() : &printed_false();
        }
        if (found->is_string()) {
          budget_->spend(found->string_value().size());
        }
        return found;
      case km::tag_type::section_begin:
        // A missing name is false, not missing: `{{#vip}}...{{/vip}}` simply does not
        // render its content, as Mustache defines.
        if (found != nullptr && !found->is_false() && !found->is_empty_list()) {
          const std::size_t passes = found->is_list() ? found->list_value().size() : 1;
          budget_->spend(passes * section_size(tag));
        }
        return found;
      case km::tag_type::section_begin_inverted:
        if (found == nullptr || found->is_false() || found->is_empty_list()) {
          budget_->spend(section_size(tag));
        }
        return found;
      default:
        return found;
    }
  }

  // Partials are refused when a template is created, so no render ever asks.
  const km::data* get_partial(const std::string& /*name*/) const override { return nullptr; }

 private:
  static std::size_t section_size(const Tag& tag) {
    return tag.section_text ? tag.section_text->size() : 0;
  }

  const km::data* find(const std::string& name) const {
    if (name == ".") {
      return items_.back();
    }
    if (name.find('.') == std::string::npos) {
      for (auto it = items_.rbegin(); it != items_.rend(); ++it) {
        if (const auto* value = (*it)->get(name)) {
          return value;
        }
      }
      return nullptr;
    }
    const auto parts = split_dotted(name);
    for (auto it = items_.rbegin(); it != items_.rend(); ++it) {
      const km::data* value = *it;
      for (const auto& part : parts) {
        value = value->get(part);
        if (value == nullptr) {
          break;
        }
      }
      if (value != nullptr) {
        return value;
      }
    }
    return nullptr;
  }

  std::vector<const km::data*> items_;
  std::set<std::string>* missing_;
  Budget* budget_;
};

// kainjow renders into anything with operator<<(const std::string&).
struct StringSink {
  std::string* out;
  StringSink& operator<<(const std::string& text) {
    out->append(text);
    return *this;
  }
};

km::data to_data(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null:
      // An empty list: prints nothing, false for `{{#x}}`, true for `{{^x}}`, and found
      // by lookups, so null counts as given.
      return km::data(km::data::type::list);
    case nlohmann::json::value_t::boolean:
      return km::data(value.get<bool>());
    case nlohmann::json::value_t::number_integer:
      return km::data(std::to_string(value.get<std::int64_t>()));
    case nlohmann::json::value_t::number_unsigned:
      return km::data(std::to_string(value.get<std::uint64_t>()));
    case nlohmann::json::value_t::number_float:
      return km::data(value.dump());
    case nlohmann::json::value_t::string:
      return km::data(value.get_ref<const std::string&>());
    case nlohmann::json::value_t::array: {
      // basic_data's move constructor is not noexcept, so a growing vector would copy
      // every element deeply: reserve first.
      km::list items;
      items.reserve(value.size());
      for (const auto& item : value) {
        items.push_back(to_data(item));
      }
      return km::data(items);
    }
    case nlohmann::json::value_t::object: {
      km::data object(km::data::type::object);
      for (const auto& [key, item] : value.items()) {
        object[key] = to_data(item);
      }
      return object;
    }
    default:
      return km::data(std::string());
  }
}

std::string identity(const std::string& text) { return text; }

}  // namespace

std::optional<std::string> template_problem(const std::string& text) {
  return analyse(text).problem;
}

TemplateSyntaxError::TemplateSyntaxError(std::vector<messaging::http::FieldProblem> problems)
    : std::runtime_error("template does not compile"), problems_(std::move(problems)) {}

struct TemplateRenderer::Instance {
  std::vector<km::mustache> fields;
};

TemplateRenderer::TemplateRenderer(std::vector<FieldSource> fields) : fields_(std::move(fields)) {
  std::vector<messaging::http::FieldProblem> problems;
  std::set<std::string> names;
  for (const auto& field : fields_) {
    auto analysis = analyse(field.text);
    if (analysis.problem) {
      problems.push_back({field.name, std::move(*analysis.problem)});
      continue;
    }
    names.merge(analysis.names);
  }
  if (!problems.empty()) {
    throw TemplateSyntaxError(std::move(problems));
  }
  variables_.assign(names.begin(), names.end());
  idle_.push_back(compile_instance());
}

TemplateRenderer::~TemplateRenderer() = default;

std::unique_ptr<TemplateRenderer::Instance> TemplateRenderer::compile_instance() const {
  auto instance = std::make_unique<Instance>();
  instance->fields.reserve(fields_.size());
  for (const auto& field : fields_) {
    auto& compiled = instance->fields.emplace_back(field.text);
    if (!compiled.is_valid()) {
      // analyse() ran the same parser on the same text; this cannot differ.
      throw TemplateSyntaxError(
          {{field.name, "is not a valid Mustache template: " + compiled.error_message()}});
    }
    if (field.escaping == Escaping::none) {
      compiled.set_custom_escape(identity);
    }
  }
  return instance;
}

std::unique_ptr<TemplateRenderer::Instance> TemplateRenderer::borrow() const {
  {
    const std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      auto instance = std::move(idle_.back());
      idle_.pop_back();
      return instance;
    }
  }
  // Outside the lock: parsing takes tens of microseconds.
  return compile_instance();
}

void TemplateRenderer::give_back(std::unique_ptr<Instance> instance) const {
  // More copies than threads that render at once are never needed; a burst's extras go.
  constexpr std::size_t kMaxIdle = 8;
  const std::lock_guard lock(mutex_);
  if (idle_.size() < kMaxIdle) {
    idle_.push_back(std::move(instance));
  }
}

RenderResult TemplateRenderer::render(const nlohmann::json& variables) const {
  if (!variables.is_object()) {
    throw std::invalid_argument("variables must be a JSON object");
  }
  const km::data root = to_data(variables);
  std::set<std::string> missing;
  Budget budget;
  RenderResult result;
  result.fields.reserve(fields_.size());

  struct Loan {
    const TemplateRenderer* owner;
    std::unique_ptr<Instance> instance;
    ~Loan() { owner->give_back(std::move(instance)); }
  } loan{this, borrow()};

  for (std::size_t i = 0; i < fields_.size(); ++i) {
    budget.spend(fields_[i].text.size());
    RenderContext context(&root, missing, budget);
    std::string out;
    StringSink sink{&out};
    loan.instance->fields[i].render(context, sink);
    result.fields.emplace_back(fields_[i].name, std::move(out));
  }
  if (!missing.empty()) {
    result.fields.clear();
    result.missing.assign(missing.begin(), missing.end());
  }
  return result;
}

}  // namespace notifs::template_service
