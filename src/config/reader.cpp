#include "deepspeed/config/reader.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "deepspeed/util/strings.h"

namespace deepspeed::config {

using util::cat;

namespace {

std::string type_name(const Json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number()) return v.dump();
  if (v.is_string()) return "\"" + v.get<std::string>() + "\"";
  if (v.is_array()) return "an array";
  return "an object";
}

std::string describe_range(Range range, bool integral) {
  const auto fmt = [&](double x) { return integral ? std::to_string(static_cast<long long>(x)) : util::py_float(x); };
  if (range.min && range.max) return cat(" in [", fmt(*range.min), ", ", fmt(*range.max), "]");
  if (range.min) return cat(range.above ? " > " : " >= ", fmt(*range.min));
  if (range.max) return cat(" <= ", fmt(*range.max));
  return "";
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

Section::Section(const Json* object, std::string path, Diagnostics* diagnostics)
    : object_(object), path_(std::move(path)), diagnostics_(diagnostics) {}

std::string Section::path_of(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

void Section::fail(std::string_view key, std::string_view message) const {
  const std::string where = key.empty() ? path_ : path_of(key);
  throw ConfigError(cat(diagnostics_->source, ": ", where.empty() ? "" : where + ": ", message));
}

const Json* Section::lookup(std::string_view key) {
  known_.emplace_back(key);
  if (!object_) return nullptr;
  const auto it = object_->find(std::string(key));
  return it == object_->end() ? nullptr : &*it;
}

const Json* Section::lookup_value(std::string_view key) {
  const Json* value = lookup(key);
  if (value && value->is_string() && value->get<std::string>() == "auto") {
    fail(key, "\"auto\" is filled in by tools that wrap DeepSpeed (HF Trainer, Accelerate); "
              "deepspeed.cpp needs a concrete value here");
  }
  return value;
}

bool Section::has(std::string_view key) { return lookup(key) != nullptr; }

const Json* Section::raw(std::string_view key) { return lookup_value(key); }

double Section::read_number(std::string_view key, const Json& value, Range range, bool integral) {
  const std::string expected = cat(integral ? "an integer" : "a number", describe_range(range, integral));
  if (!value.is_number() || value.is_boolean()) fail(key, cat("expected ", expected, ", got ", type_name(value)));
  const double x = value.get<double>();
  // JSON writes 5e8 as a float; accept it for integer keys when it is integral (DeepSpeed does via int()).
  if (integral && (!std::isfinite(x) || x != std::floor(x))) fail(key, cat("expected ", expected, ", got ", value.dump()));
  const bool below = range.min && (range.above ? x <= *range.min : x < *range.min);
  const bool over = range.max && x > *range.max;
  if (below || over) fail(key, cat("expected ", expected, ", got ", value.dump()));
  return x;
}

bool Section::read(std::string_view key, bool& field) {
  const Json* v = lookup_value(key);
  if (!v) return false;
  if (!v->is_boolean()) fail(key, cat("expected true or false, got ", type_name(*v)));
  field = v->get<bool>();
  return true;
}

bool Section::read(std::string_view key, int& field, Range range) {
  const Json* v = lookup_value(key);
  if (!v) return false;
  if (!range.min) range.min = static_cast<double>(INT32_MIN);
  if (!range.max) range.max = static_cast<double>(INT32_MAX);
  field = static_cast<int>(read_number(key, *v, range, true));
  return true;
}

bool Section::read(std::string_view key, std::int64_t& field, Range range) {
  const Json* v = lookup_value(key);
  if (!v) return false;
  read_number(key, *v, range, true);
  field = v->is_number_integer() ? v->get<std::int64_t>() : static_cast<std::int64_t>(v->get<double>());
  return true;
}

bool Section::read(std::string_view key, double& field, Range range) {
  const Json* v = lookup_value(key);
  if (!v) return false;
  field = read_number(key, *v, range, false);
  return true;
}

bool Section::read(std::string_view key, std::string& field) {
  const Json* v = lookup_value(key);
  if (!v) return false;
  if (!v->is_string()) fail(key, cat("expected a string, got ", type_name(*v)));
  field = v->get<std::string>();
  return true;
}

bool Section::read_choice(std::string_view key, std::string& field, const std::vector<std::string>& choices,
                          bool ignore_case) {
  std::string value;
  if (!read(key, value)) return false;
  for (const auto& choice : choices) {
    if (ignore_case ? lower(choice) == lower(value) : choice == value) {
      field = choice;
      return true;
    }
  }
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + ("\"" + c + "\"");
  const std::string hint = util::closest_match(value, choices);
  fail(key, cat("expected one of ", list, ", got \"", value, "\"", hint.empty() ? "" : cat(" (did you mean \"", hint, "\"?)")));
}

bool Section::read(std::string_view key, std::vector<double>& field, std::size_t size) {
  const Json* v = lookup_value(key);
  if (!v) return false;
  const std::string expected = size ? cat("a list of ", size, " numbers") : std::string("a list of numbers");
  if (!v->is_array() || (size && v->size() != size)) fail(key, cat("expected ", expected, ", got ", v->dump()));
  std::vector<double> values;
  for (const auto& item : *v) {
    if (!item.is_number() || item.is_boolean()) fail(key, cat("expected ", expected, ", got ", v->dump()));
    values.push_back(item.get<double>());
  }
  field = std::move(values);
  return true;
}

template <typename T, typename ReadValue>
bool Section::read_nullable(std::string_view key, std::optional<T>& field, ReadValue read_value) {
  const Json* v = lookup_value(key);
  if (!v) return false;
  if (v->is_null()) field.reset();
  else field = read_value(*v);
  return true;
}

bool Section::read(std::string_view key, std::optional<std::int64_t>& field, Range range) {
  return read_nullable(key, field, [&](const Json& v) {
    return static_cast<std::int64_t>(read_number(key, v, range, true));
  });
}

bool Section::read(std::string_view key, std::optional<bool>& field) {
  return read_nullable(key, field, [&](const Json&) {
    bool value = false;
    read(key, value);
    return value;
  });
}

bool Section::read(std::string_view key, std::optional<std::string>& field, const std::vector<std::string>& choices) {
  return read_nullable(key, field, [&](const Json&) {
    std::string value;
    read_choice(key, value, choices, /*ignore_case=*/true);
    return value;
  });
}

bool Section::read(std::string_view key, std::optional<std::string>& field) {
  return read_nullable(key, field, [&](const Json&) {
    std::string value;
    read(key, value);
    return value;
  });
}

bool Section::read(std::string_view key, std::vector<std::string>& field) {
  const Json* v = lookup_value(key);
  if (!v) return false;
  if (!v->is_array()) fail(key, cat("expected a list of strings, got ", type_name(*v)));
  std::vector<std::string> values;
  for (const auto& item : *v) {
    if (!item.is_string()) fail(key, cat("expected a list of strings, got ", v->dump()));
    values.push_back(item.get<std::string>());
  }
  field = std::move(values);
  return true;
}

Section Section::child(std::string_view key) {
  const Json* v = lookup_value(key);
  if (v && !v->is_object()) fail(key, cat("expected an object, got ", type_name(*v)));
  return Section(v, path_of(key), diagnostics_);
}

void Section::unsupported(std::string_view key, std::string_view note) {
  const Json* v = lookup(key);
  if (!v) return;
  if (v->is_object() && v->contains("enabled") && (*v)["enabled"] == false) return;
  if (v->is_boolean() && !v->get<bool>()) return;
  diagnostics_->warnings.push_back(cat(diagnostics_->source, ": ", path_of(key),
                                       " is a DeepSpeed setting that deepspeed.cpp does not implement yet; it is ignored",
                                       note.empty() ? "" : cat(" (", note, ")")));
}

void Section::unsupported_unless(std::string_view key, const Json& deepspeed_default) {
  const Json* v = lookup(key);
  if (v && *v != deepspeed_default) unsupported(key);
}

const Json* Section::deprecated(std::string_view key, std::string_view replacement) {
  const Json* v = lookup_value(key);
  if (v) {
    diagnostics_->warnings.push_back(cat(diagnostics_->source, ": ", path_of(key), " is deprecated; use ",
                                         replacement, " instead"));
  }
  return v;
}

void Section::finish() {
  if (!object_) return;
  for (const auto& [key, value] : object_->items()) {
    if (std::find(known_.begin(), known_.end(), key) != known_.end()) continue;
    const std::string hint = util::closest_match(key, known_);
    fail(key, hint.empty() ? std::string("unknown key")
                           : cat("unknown key (did you mean \"", path_of(hint), "\"?)"));
  }
}

Json parse_json_text(const std::string& text, const std::string& source) {
  // Duplicate keys are an error in DeepSpeed ("Duplicate keys in DeepSpeed config"); nlohmann keeps the last
  // one silently, so track the keys of every open object while parsing.
  struct OpenObject {
    std::set<std::string> keys;
    std::string current;
  };
  std::vector<OpenObject> open;
  std::string duplicate;
  auto callback = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start) {
      open.emplace_back();
    } else if (event == Json::parse_event_t::object_end) {
      if (!open.empty()) open.pop_back();
    } else if (event == Json::parse_event_t::key && !open.empty()) {
      open.back().current = parsed.get<std::string>();
      if (!open.back().keys.insert(open.back().current).second && duplicate.empty()) {
        for (const auto& o : open) duplicate += (duplicate.empty() ? "" : ".") + o.current;
      }
    }
    return true;
  };
  Json result;
  try {
    result = Json::parse(text, callback, /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const Json::parse_error& e) {
    throw ConfigError(cat(source, ": not valid JSON: ", e.what()));
  }
  if (!duplicate.empty()) throw ConfigError(cat(source, ": ", duplicate, ": duplicate key"));
  if (!result.is_object()) throw ConfigError(cat(source, ": expected a JSON object at the top level"));
  return result;
}

Json load_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageError(cat("--deepspeed_config: cannot read config file '", path, "'"));
  std::stringstream text;
  text << in.rdbuf();
  return parse_json_text(text.str(), path);
}

}  // namespace deepspeed::config
