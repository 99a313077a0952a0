// Small text helpers shared across modules.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tandem {

// RFC 3986 percent-encoding of everything but unreserved characters (letters, digits, - _ . ~):
// safe for one URL path segment, a query value, or the user part of a URI.
std::string PercentEncode(std::string_view s);

// `s` without leading and trailing whitespace.
std::string_view TrimSpace(std::string_view s);

// ASCII upper case.
std::string AsciiUpper(std::string s);

// The parts of `s` between `sep`s, empty ones left out ("/a//b/" -> {"a", "b"}).
std::vector<std::string> SplitNonEmpty(std::string_view s, char sep);

}  // namespace tandem
