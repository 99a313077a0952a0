// The layer format: a POSIX ustar archive of regular files, gzip-compressed.
//
// Writing is reproducible: entries in path order, mode 0644, uid/gid 0, no user or group
// names, mtime 0, no directory entries, and a gzip header with mtime 0 and no file name, so the
// same files always give the same bytes (with the same zlib). Reading accepts only what a
// bundle can hold: regular files with safe relative paths, each once, within size bounds.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "base/status.h"

namespace tandem::images {

// A bundle's files: relative path -> contents.
using Files = std::map<std::string, std::string>;

struct ExtractLimits {
  uint64_t max_total_bytes = 256ull << 20;  // uncompressed, all files together
  size_t max_files = 10000;
};

// InvalidArgument unless `path` is relative, at most 255 bytes, and made of non-empty
// components other than "." and "..", without NUL or backslash.
Status ValidateBundlePath(std::string_view path);

// The ustar archive of `files`. InvalidArgument for an unsafe path, a path that is both a file
// and a directory of another file, or a path ustar cannot hold.
Result<std::string> WriteTar(const Files& files);

// The files of a ustar archive. InvalidArgument for anything but regular files (links,
// directories, devices, pax or GNU extension headers), an unsafe or repeated path, a bad header
// checksum, or a truncated archive; TooLarge past `limits`.
Result<Files> ReadTar(std::string_view tar, const ExtractLimits& limits);

// gzip (RFC 1952) of `data`, reproducible (see above).
Result<std::string> GzipCompress(std::string_view data);
// The one gzip member in `gz`. InvalidArgument for a corrupt or truncated stream or trailing
// data; TooLarge when the result would exceed `max_bytes`.
Result<std::string> GzipDecompress(std::string_view gz, uint64_t max_bytes);

}  // namespace tandem::images
