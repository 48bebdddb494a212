#pragma once
/// \file
/// POSIX shell quoting and word splitting. The multi-node launcher hands remote hosts one command line that
/// a remote shell parses; host names, paths and user arguments are data, so every word goes through
/// shell_quote() and nothing the user typed is ever interpreted by that shell.

#include <string>
#include <string_view>
#include <vector>

namespace deepspeed::launcher {

/// `word` as one POSIX shell word: unchanged when it holds only characters no shell treats specially
/// (letters, digits and `_@%+=:,./-`), otherwise wrapped in single quotes with each `'` written as `'\''`.
/// The empty string becomes `''`. For every input, `sh -c "printf %s <result>"` prints exactly `word`.
std::string shell_quote(std::string_view word);

/// The words quoted with shell_quote() and joined by single spaces.
std::string shell_join(const std::vector<std::string>& words);

/// Splits `text` into words the way a POSIX shell would (Python's shlex.split): whitespace separates words,
/// single quotes are literal, double quotes allow `\"`, `\\`, `\$` and `` \` `` escapes, and a backslash
/// outside quotes escapes the next character. No expansion of any kind. Throws UsageError naming `what`
/// (e.g. "--launcher_args") on an unterminated quote or a trailing backslash.
std::vector<std::string> split_shell_words(std::string_view text, std::string_view what);

}  // namespace deepspeed::launcher
