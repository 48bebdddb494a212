#pragma once
/// \file
/// Schema-checked reading of one JSON object of ds_config.json.
///
/// Each section parser reads its keys through a Section, which records every key it knows. finish() then
/// rejects keys nobody read, naming the full dotted path and the closest known key, so a typo such as
/// "zero_optimization.stgae" is an error rather than DeepSpeed's silent default. Keys DeepSpeed has but we do
/// not implement are declared with unsupported(): present, they produce a warning that names them.
/// A value of "auto" is always an error: in DeepSpeed those are filled in by wrappers (HF Trainer/Accelerate).
///
/// The struct field holds the default (in the header that declares it); the read() call holds the range; so
/// each key has exactly one field, one default, one range and one doc comment.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "deepspeed/util/error.h"

namespace deepspeed::config {

using Json = nlohmann::json;

/// Where the config came from ("ds_config.json") and what parsing found that is worth a warning.
struct Diagnostics {
  std::string source = "ds_config";
  std::vector<std::string> warnings;
};

/// Inclusive numeric bounds; either side may be open. `above` makes the lower bound exclusive.
struct Range {
  std::optional<double> min;
  std::optional<double> max;
  bool above = false;  ///< lower bound is exclusive (x > min)
};

/// A view of one JSON object (or of an absent one) at a dotted path.
class Section {
 public:
  Section(const Json* object, std::string path, Diagnostics* diagnostics);

  /// True when the object exists in the config (even if empty).
  bool present() const { return object_ != nullptr; }
  /// True when `key` exists in this object; also marks it known.
  bool has(std::string_view key);
  /// The raw value of a key (nullptr if absent); marks it known.
  const Json* raw(std::string_view key);

  /// Reads `key` into `field` if present, checking type and range; leaves the default otherwise.
  /// Returns true when the key was present.
  bool read(std::string_view key, bool& field);
  bool read(std::string_view key, int& field, Range range = {});
  bool read(std::string_view key, std::int64_t& field, Range range = {});
  bool read(std::string_view key, double& field, Range range = {});
  bool read(std::string_view key, std::string& field);
  /// A string that must be one of `choices` (compared case-sensitively unless `ignore_case`).
  bool read_choice(std::string_view key, std::string& field, const std::vector<std::string>& choices,
                   bool ignore_case = false);
  /// A JSON array of numbers with exactly `size` elements (size 0: any length).
  bool read(std::string_view key, std::vector<double>& field, std::size_t size = 0);
  /// JSON null leaves/sets nullopt.
  bool read(std::string_view key, std::optional<std::int64_t>& field, Range range = {});
  bool read(std::string_view key, std::optional<bool>& field);
  bool read(std::string_view key, std::optional<std::string>& field, const std::vector<std::string>& choices);
  /// A string or null (nullopt), any value.
  bool read(std::string_view key, std::optional<std::string>& field);
  /// A JSON array of strings.
  bool read(std::string_view key, std::vector<std::string>& field);

  /// A nested object. Absent → a Section whose present() is false. Present but not an object → error.
  Section child(std::string_view key);

  /// A DeepSpeed key this implementation does not act on: a warning if it is present (and, for an object,
  /// not {"enabled": false}).
  void unsupported(std::string_view key, std::string_view note = "");
  /// Like unsupported(), but quiet when the value equals DeepSpeed's default (setting the default to the
  /// default changes nothing, so there is nothing to warn about).
  void unsupported_unless(std::string_view key, const Json& deepspeed_default);
  /// A key DeepSpeed still accepts under an old name: warn and return the value for the caller to map.
  const Json* deprecated(std::string_view key, std::string_view replacement);

  /// Errors on the first key not read, declared unsupported or deprecated.
  void finish();

  /// Throws ConfigError("<source>: <path.key>: <message>").
  [[noreturn]] void fail(std::string_view key, std::string_view message) const;
  std::string path_of(std::string_view key) const;
  const std::string& path() const { return path_; }
  Diagnostics& diagnostics() const { return *diagnostics_; }

 private:
  const Json* lookup(std::string_view key);
  const Json* lookup_value(std::string_view key);  // lookup + rejects "auto"
  double read_number(std::string_view key, const Json& value, Range range, bool integral);
  /// The optional readers' shared part: absent → false; null → nullopt; else read_value(json).
  template <typename T, typename ReadValue>
  bool read_nullable(std::string_view key, std::optional<T>& field, ReadValue read_value);

  const Json* object_;
  std::string path_;
  Diagnostics* diagnostics_;
  std::vector<std::string> known_;
};

/// Parses JSON text allowing // and /* */ comments and rejecting duplicate keys (DeepSpeed's check).
/// Errors name `source`.
Json parse_json_text(const std::string& text, const std::string& source);

/// Reads and parses a config file. Missing/unreadable file → UsageError naming the path.
Json load_json_file(const std::string& path);

}  // namespace deepspeed::config
