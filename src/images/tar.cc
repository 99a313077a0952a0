#include "images/tar.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <set>

namespace tandem::images {
namespace {

constexpr size_t kBlock = 512;

// Offsets of the ustar header fields (POSIX.1-1988).
constexpr size_t kNameOff = 0, kNameLen = 100;
constexpr size_t kModeOff = 100, kUidOff = 108, kGidOff = 116;
constexpr size_t kSizeOff = 124, kSizeLen = 12;
constexpr size_t kMtimeOff = 136;
constexpr size_t kChksumOff = 148, kChksumLen = 8;
constexpr size_t kTypeOff = 156;
constexpr size_t kMagicOff = 257;
constexpr size_t kVersionOff = 263;
constexpr size_t kPrefixOff = 345, kPrefixLen = 155;

void PutOctal(char* field, size_t len, uint64_t value) {
  // len-1 digits, zero-padded, then NUL.
  std::string digits(len - 1, '0');
  for (size_t i = len - 1; i-- > 0 && value != 0; value >>= 3) {
    digits[i] = static_cast<char>('0' + (value & 7));
  }
  memcpy(field, digits.data(), len - 1);
  field[len - 1] = '\0';
}

unsigned HeaderChecksum(const char* h) {
  unsigned sum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    bool in_chksum = i >= kChksumOff && i < kChksumOff + kChksumLen;
    sum += in_chksum ? ' ' : static_cast<unsigned char>(h[i]);
  }
  return sum;
}

Result<uint64_t> ParseOctal(std::string_view field, const char* what) {
  size_t i = 0;
  while (i < field.size() && field[i] == ' ') ++i;
  uint64_t v = 0;
  size_t digits = 0;
  for (; i < field.size() && field[i] >= '0' && field[i] <= '7'; ++i, ++digits) {
    if (v >> 60) return InvalidArgument(std::string("tar header: ") + what + " out of range");
    v = (v << 3) | static_cast<uint64_t>(field[i] - '0');
  }
  for (; i < field.size(); ++i) {
    if (field[i] != ' ' && field[i] != '\0') {
      return InvalidArgument(std::string("tar header: ") + what + " is not an octal number");
    }
  }
  if (digits == 0) return InvalidArgument(std::string("tar header: ") + what + " is empty");
  return v;
}

std::string_view CString(const char* p, size_t max) { return {p, strnlen(p, max)}; }

bool AllZero(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == '\0'; });
}

// REQUIRES: every path is valid. InvalidArgument when some path is also a directory of another.
Status CheckNoFileIsADirectory(const std::set<std::string, std::less<>>& paths) {
  for (const std::string& p : paths) {
    for (size_t slash = p.find('/'); slash != std::string::npos; slash = p.find('/', slash + 1)) {
      if (paths.count(std::string_view(p).substr(0, slash)) != 0) {
        return InvalidArgument("\"" + p.substr(0, slash) +
                               "\" is both a file and the directory of \"" + p + "\"");
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Status ValidateBundlePath(std::string_view path) {
  std::string shown(path.substr(0, 120));
  if (path.empty()) return InvalidArgument("empty file path");
  if (path.size() > 255) return InvalidArgument("file path longer than 255 bytes: " + shown);
  if (path.front() == '/') return InvalidArgument("absolute file path: " + shown);
  if (path.find('\0') != std::string_view::npos || path.find('\\') != std::string_view::npos) {
    return InvalidArgument("file path with NUL or backslash: " + shown);
  }
  size_t start = 0;
  while (true) {
    size_t end = path.find('/', start);
    std::string_view part = path.substr(start, end == std::string_view::npos ? end : end - start);
    if (part.empty() || part == "." || part == "..") {
      return InvalidArgument("file path with an empty, \".\" or \"..\" component: " + shown);
    }
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return Status::Ok();
}

Result<std::string> WriteTar(const Files& files) {
  std::set<std::string, std::less<>> paths;
  size_t total = 2 * kBlock;
  for (const auto& [path, data] : files) {
    RETURN_IF_ERROR(ValidateBundlePath(path));
    paths.insert(path);
    total += kBlock + (data.size() + kBlock - 1) / kBlock * kBlock;
  }
  RETURN_IF_ERROR(CheckNoFileIsADirectory(paths));
  std::string out;
  out.reserve(total);
  for (const auto& [path, data] : files) {
    char h[kBlock] = {};
    // A path that does not fit the name field is split at a '/' into prefix and name.
    std::string_view name = path, prefix;
    if (path.size() > kNameLen) {
      // The longest prefix that fits leaves the shortest name.
      size_t cut = path.rfind('/', kPrefixLen);
      if (cut == std::string::npos || path.size() - cut - 1 > kNameLen) {
        return InvalidArgument("file path cannot be stored in a ustar header: " + path);
      }
      prefix = std::string_view(path).substr(0, cut);
      name = std::string_view(path).substr(cut + 1);
    }
    memcpy(h + kNameOff, name.data(), name.size());
    memcpy(h + kPrefixOff, prefix.data(), prefix.size());
    PutOctal(h + kModeOff, 8, 0644);
    PutOctal(h + kUidOff, 8, 0);
    PutOctal(h + kGidOff, 8, 0);
    PutOctal(h + kSizeOff, kSizeLen, data.size());
    PutOctal(h + kMtimeOff, 12, 0);
    h[kTypeOff] = '0';
    memcpy(h + kMagicOff, "ustar", 6);  // with its NUL
    h[kVersionOff] = h[kVersionOff + 1] = '0';
    unsigned sum = HeaderChecksum(h);
    PutOctal(h + kChksumOff, 7, sum);  // six digits, NUL, and the space kept below
    h[kChksumOff + 7] = ' ';
    out.append(h, kBlock);
    out.append(data);
    out.append((kBlock - data.size() % kBlock) % kBlock, '\0');
  }
  out.append(2 * kBlock, '\0');
  return out;
}

Result<Files> ReadTar(std::string_view tar, const ExtractLimits& limits) {
  Files files;
  uint64_t total = 0;
  size_t pos = 0;
  while (true) {
    if (pos + kBlock > tar.size()) {
      return InvalidArgument("truncated tar archive: no end-of-archive marker");
    }
    std::string_view h = tar.substr(pos, kBlock);
    if (AllZero(h)) {
      // The end-of-archive marker; what follows may only be padding.
      if (!AllZero(tar.substr(pos))) {
        return InvalidArgument("tar archive has data after its end-of-archive marker");
      }
      break;
    }
    ASSIGN_OR_RETURN(uint64_t want_sum, ParseOctal(h.substr(kChksumOff, kChksumLen), "checksum"));
    if (want_sum != HeaderChecksum(h.data())) {
      return InvalidArgument("tar header checksum mismatch at offset " + std::to_string(pos));
    }
    if (h.substr(kMagicOff, 5) != "ustar") {
      return InvalidArgument("not a ustar archive (header at offset " + std::to_string(pos) + ")");
    }
    std::string path(CString(h.data() + kPrefixOff, kPrefixLen));
    if (!path.empty()) path += '/';
    path += CString(h.data() + kNameOff, kNameLen);
    char type = h[kTypeOff];
    if (type != '0' && type != '\0') {
      std::string what = type == '1'                  ? "a hard link"
                         : type == '2'                ? "a symbolic link"
                         : type == '5'                ? "a directory"
                         : type == 'x' || type == 'g' ? "a pax extended header"
                         : type == 'L' || type == 'K'
                             ? "a GNU long-name header"
                             : std::string("an entry of type '") + type + "'";
      return InvalidArgument("tar entry \"" + path.substr(0, 120) + "\" is " + what +
                             ": only regular files are accepted");
    }
    RETURN_IF_ERROR(ValidateBundlePath(path).WithContext("tar entry"));
    ASSIGN_OR_RETURN(uint64_t size, ParseOctal(h.substr(kSizeOff, kSizeLen), "size"));
    pos += kBlock;
    if (size > tar.size() - pos) {
      return InvalidArgument("truncated tar archive: \"" + path + "\" needs " +
                             std::to_string(size) + " bytes, " + std::to_string(tar.size() - pos) +
                             " remain");
    }
    total += size;
    if (total > limits.max_total_bytes) {
      return TooLarge("the files add up to more than " + std::to_string(limits.max_total_bytes) +
                      " bytes");
    }
    if (files.size() >= limits.max_files) {
      return TooLarge("more than " + std::to_string(limits.max_files) + " files");
    }
    if (files.count(path) != 0) return InvalidArgument("tar entry \"" + path + "\" appears twice");
    files.emplace(path, std::string(tar.substr(pos, size)));
    pos += (size + kBlock - 1) / kBlock * kBlock;
    if (pos > tar.size()) return InvalidArgument("truncated tar archive: padding missing");
  }
  std::set<std::string, std::less<>> paths;
  for (const auto& [p, d] : files) paths.insert(p);
  RETURN_IF_ERROR(CheckNoFileIsADirectory(paths));
  return files;
}

Result<std::string> GzipCompress(std::string_view data) {
  if (data.size() > UINT32_MAX / 2) return TooLarge("a layer of 2 GiB or more");
  z_stream zs{};
  // 15 window bits + 16: a gzip wrapper instead of zlib's.
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    return Internal("zlib: deflateInit2 failed");
  }
  gz_header header{};
  header.time = 0;
  header.os = 255;  // unknown: the bytes do not depend on the build host
  deflateSetHeader(&zs, &header);
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(data.size())) + 64);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  size_t produced = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END)
    return Internal("zlib: deflate did not finish (" + std::to_string(rc) + ")");
  out.resize(produced);
  return out;
}

Result<std::string> GzipDecompress(std::string_view gz, uint64_t max_bytes) {
  if (gz.size() > UINT32_MAX / 2) return TooLarge("a compressed layer of 2 GiB or more");
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) return Internal("zlib: inflateInit2 failed");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  zs.avail_in = static_cast<uInt>(gz.size());
  std::string out;
  char buf[64 * 1024];
  int rc = Z_OK;
  Status error;
  while (true) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    size_t n = sizeof buf - zs.avail_out;
    if (out.size() + n > max_bytes) {
      error =
          TooLarge("the layer uncompresses to more than " + std::to_string(max_bytes) + " bytes");
      break;
    }
    out.append(buf, n);
    if (rc == Z_STREAM_END) break;
    if (rc == Z_BUF_ERROR || (rc == Z_OK && zs.avail_in == 0 && n == 0)) {
      error = InvalidArgument("truncated gzip stream");
      break;
    }
    if (rc != Z_OK) {
      error = InvalidArgument(std::string("corrupt gzip stream: ") +
                              (zs.msg != nullptr ? zs.msg : std::to_string(rc)));
      break;
    }
  }
  size_t consumed = gz.size() - zs.avail_in;
  inflateEnd(&zs);
  if (!error.ok()) return error;
  if (consumed != gz.size()) {
    return InvalidArgument("gzip stream followed by " + std::to_string(gz.size() - consumed) +
                           " bytes of other data");
  }
  return out;
}

}  // namespace tandem::images
