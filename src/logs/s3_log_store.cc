// The S3 protocol as this store uses it (see s3_log_store.h for the layout):
//
//   Append  HEAD <chunk at the remembered offset>   only when an offset is remembered
//           GET  ?list-type=2&prefix=<key>/&delimiter=/   only when none is
//           PUT  <chunk>  If-None-Match: *          (If-Match: <empty ETag> replacing the
//                                                    empty chunk an empty append created)
//   Read    GET  ?list-type=2... (every page), then GET <chunk> with a Range where only part
//           of a chunk is wanted
//   Remove  list, then DELETE each chunk from the last to the first, so a remove cut short
//           leaves a shorter log rather than one with a hole at its start
//
// Every request carries x-amz-content-sha256, the SHA-256 of its body, which S3 requires and
// libcurl signs with the rest (libcurl dates requests itself: see s3_http.h).
#include "logs/s3_log_store.h"

#include <algorithm>
#include <charconv>
#include <utility>

#include "crypto/token.h"

namespace tandem::logs {
namespace {

constexpr int kOffsetDigits = 20;
// A read returns at most this much however much is asked for, like DirLogStore.
constexpr uint64_t kMaxReadBytes = uint64_t{16} << 20;
// Appends that find their offset taken relist and try again this many times in all.
constexpr int kMaxAppendAttempts = 5;
// Append states kept for keys no one is appending to at the moment.
constexpr size_t kMaxCachedKeys = 1024;
// S3's ETag of an empty object: the MD5 of nothing.
constexpr std::string_view kEmptyEtag = "\"d41d8cd98f00b204e9800998ecf8427e\"";

// Minimal XML, enough for S3's answers: the raw text of each <tag>...</tag> (or <tag/>) in
// `xml`, in order. S3 never nests an element inside one of the same name.
std::vector<std::string_view> Elements(std::string_view xml, std::string_view tag) {
  std::vector<std::string_view> out;
  const std::string open = "<" + std::string(tag);
  const std::string close = "</" + std::string(tag) + ">";
  size_t pos = 0;
  while (true) {
    size_t start = xml.find(open, pos);
    if (start == std::string_view::npos) return out;
    size_t after = start + open.size();
    if (after >= xml.size()) return out;
    char c = xml[after];
    if (c != '>' && c != ' ' && c != '/' && c != '\t' && c != '\n' && c != '\r') {
      pos = after;  // a longer tag name that starts the same way
      continue;
    }
    size_t gt = xml.find('>', after);
    if (gt == std::string_view::npos) return out;
    if (xml[gt - 1] == '/') {
      out.emplace_back();
      pos = gt + 1;
      continue;
    }
    size_t end = xml.find(close, gt + 1);
    if (end == std::string_view::npos) return out;
    out.push_back(xml.substr(gt + 1, end - gt - 1));
    pos = end + close.size();
  }
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xc0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xe0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    *out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    *out += static_cast<char>(0xf0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    *out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// XML character data with its entities replaced; nullopt for an entity XML does not define.
std::optional<std::string> XmlText(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  size_t i = 0;
  while (i < raw.size()) {
    if (raw[i] != '&') {
      out += raw[i++];
      continue;
    }
    size_t semi = raw.find(';', i);
    if (semi == std::string_view::npos) return std::nullopt;
    std::string_view ent = raw.substr(i + 1, semi - i - 1);
    if (ent == "amp") {
      out += '&';
    } else if (ent == "lt") {
      out += '<';
    } else if (ent == "gt") {
      out += '>';
    } else if (ent == "quot") {
      out += '"';
    } else if (ent == "apos") {
      out += '\'';
    } else if (ent.size() > 1 && ent[0] == '#') {
      bool hex = ent[1] == 'x' || ent[1] == 'X';
      std::string_view digits = ent.substr(hex ? 2 : 1);
      uint32_t cp = 0;
      auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), cp,
                                     hex ? 16 : 10);
      if (ec != std::errc() || p != digits.data() + digits.size() || digits.empty() ||
          cp > 0x10ffff || cp == 0) {
        return std::nullopt;
      }
      AppendUtf8(cp, &out);
    } else {
      return std::nullopt;
    }
    i = semi + 1;
  }
  return out;
}

// The text of the first <tag> in `xml`, or "".
std::string FirstText(std::string_view xml, std::string_view tag) {
  std::vector<std::string_view> els = Elements(xml, tag);
  if (els.empty()) return "";
  return XmlText(els.front()).value_or(std::string(els.front()));
}

std::string PadOffset(uint64_t offset) {
  std::string digits = std::to_string(offset);
  return std::string(kOffsetDigits - digits.size(), '0') + digits;
}

std::optional<uint64_t> ParseOffset(std::string_view s) {
  if (s.size() != kOffsetDigits) return std::nullopt;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

bool ValidEndpoint(const std::string& e) {
  size_t scheme = e.find("://");
  if (scheme == std::string::npos) return false;
  std::string_view s(e);
  if (s.substr(0, scheme) != "http" && s.substr(0, scheme) != "https") return false;
  std::string_view authority = s.substr(scheme + 3);
  return !authority.empty() && authority.find_first_of("/?#@ ") == std::string_view::npos;
}

}  // namespace

Result<std::unique_ptr<S3LogStore>> S3LogStore::Open(S3LogStoreOptions options) {
  while (!options.endpoint.empty() && options.endpoint.back() == '/') options.endpoint.pop_back();
  if (!ValidEndpoint(options.endpoint)) {
    return InvalidArgument("S3 endpoint \"" + options.endpoint +
                           "\" is not of the form http://host[:port] or https://host[:port]");
  }
  if (options.bucket.empty() ||
      options.bucket.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-_") !=
          std::string::npos) {
    return InvalidArgument("S3 bucket name \"" + options.bucket +
                           "\" must be lowercase letters, digits, '.', '-' and '_'");
  }
  if (options.region.empty() || options.region.find(':') != std::string::npos) {
    return InvalidArgument("S3 region \"" + options.region + "\" is empty or holds a ':'");
  }
  if (options.access_key_id.empty() || options.secret_access_key.empty()) {
    return InvalidArgument("S3 credentials for " + options.endpoint +
                           " need both an access key id and a secret access key");
  }
  while (!options.key_prefix.empty() && options.key_prefix.back() == '/') {
    options.key_prefix.pop_back();
  }
  if (!options.key_prefix.empty()) {
    Status s = CheckKey(options.key_prefix);
    if (!s.ok()) return s.WithContext("S3 key prefix");
    options.key_prefix += '/';
  }
  if (options.list_page_size < 1 || options.list_page_size > 1000) {
    return InvalidArgument("S3 list page size " + std::to_string(options.list_page_size) +
                           " is not within 1..1000");
  }
  if (options.connect_timeout.count() <= 0 || options.request_timeout.count() <= 0) {
    return InvalidArgument("S3 timeouts must be positive");
  }
  return std::unique_ptr<S3LogStore>(new S3LogStore(std::move(options)));
}

S3LogStore::S3LogStore(S3LogStoreOptions options)
    : options_(std::move(options)) {}

S3LogStore::~S3LogStore() = default;

std::shared_ptr<S3LogStore::KeyState> S3LogStore::StateFor(std::string_view key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = keys_.find(std::string(key));
  if (it != keys_.end()) return it->second;
  if (keys_.size() >= kMaxCachedKeys) {
    // Forget the keys no append or remove holds right now.
    for (auto i = keys_.begin(); i != keys_.end();) {
      i = i->second.use_count() == 1 ? keys_.erase(i) : std::next(i);
    }
  }
  auto state = std::make_shared<KeyState>();
  keys_.emplace(std::string(key), state);
  return state;
}

std::string S3LogStore::ChunkName(std::string_view key, uint64_t start) const {
  return options_.key_prefix + std::string(key) + "/" + PadOffset(start);
}

std::string S3LogStore::Url(std::string_view object, std::string_view query) const {
  std::string url = options_.endpoint + "/" + UriEncode(options_.bucket, false);
  if (!object.empty()) url += "/" + UriEncode(object, true);
  if (!query.empty()) url += "?" + std::string(query);
  return url;
}

Result<HttpResponse> S3LogStore::Send(std::string method, std::string_view object,
                                      std::string_view query, std::vector<std::string> headers,
                                      std::string_view body) {
  HttpRequest req;
  req.method = std::move(method);
  req.url = Url(object, query);
  req.body = body;
  req.connect_timeout = options_.connect_timeout;
  req.timeout = options_.request_timeout;
  req.headers = std::move(headers);
  req.headers.push_back("x-amz-content-sha256: " + Sha256Hex(body));
  SigV4Credentials creds{options_.access_key_id, options_.secret_access_key, options_.region,
                         "s3"};
  auto resp = SendSigned(creds, req);
  if (!resp.ok()) {
    return Status(resp.status().code(),
                  "S3 endpoint " + options_.endpoint + " (bucket \"" + options_.bucket +
                      "\", object \"" + std::string(object) +
                      "\") cannot be reached: " + resp.status().message());
  }
  return resp;
}

Status S3LogStore::ErrorFor(std::string_view what, std::string_view object,
                            const HttpResponse& resp) const {
  std::string code = FirstText(resp.body, "Code");
  std::string message = FirstText(resp.body, "Message");
  std::string msg = "S3 " + std::string(what) + " at " + options_.endpoint + ", bucket \"" +
                    options_.bucket + "\"";
  if (!object.empty()) msg += ", object \"" + std::string(object) + "\"";
  msg += ": HTTP " + std::to_string(resp.status);
  if (!code.empty()) msg += " " + code;
  if (!message.empty()) msg += ": " + message;
  if (code.empty() && message.empty() && !resp.body.empty()) {
    msg += ": " + resp.body.substr(0, 200);
  }
  if (code == "NoSuchBucket") return FailedPrecondition(msg);
  if (code == "NoSuchKey") return NotFound(msg);
  if (code == "RequestTimeTooSkewed") {
    return FailedPrecondition(msg + " (is this machine's clock right?)");
  }
  if (resp.status == 401 || resp.status == 403) return PermissionDenied(msg);
  if (resp.status == 404) return NotFound(msg);
  if (resp.status == 429 || resp.status >= 500) return Unavailable(msg);
  return Internal(msg);
}

Status S3LogStore::ListPage(std::string_view prefix, int max_keys, std::string* token,
                            std::vector<std::pair<std::string, uint64_t>>* out) {
  // Sorted by name: libcurl signs the query as it is.
  std::string query;
  if (!token->empty()) query += "continuation-token=" + UriEncode(*token, false) + "&";
  query += "delimiter=%2F&list-type=2&max-keys=" + std::to_string(max_keys) +
           "&prefix=" + UriEncode(prefix, false);
  ASSIGN_OR_RETURN(HttpResponse resp, Send("GET", "", query, {}, ""));
  if (resp.status != 200) return ErrorFor("list of \"" + std::string(prefix) + "\"", "", resp);
  auto bad = [&](const std::string& why) {
    return Internal("S3 list at " + options_.endpoint + ", bucket \"" + options_.bucket +
                    "\", prefix \"" + std::string(prefix) + "\": " + why);
  };
  for (std::string_view contents : Elements(resp.body, "Contents")) {
    std::vector<std::string_view> keys = Elements(contents, "Key");
    std::vector<std::string_view> sizes = Elements(contents, "Size");
    if (keys.size() != 1 || sizes.size() != 1) return bad("an entry without one Key and Size");
    std::optional<std::string> name = XmlText(keys[0]);
    if (!name) return bad("a Key that is not well-formed XML text");
    uint64_t size = 0;
    auto [p, ec] = std::from_chars(sizes[0].data(), sizes[0].data() + sizes[0].size(), size);
    if (ec != std::errc() || p != sizes[0].data() + sizes[0].size()) {
      return bad("a Size that is not a number: " + std::string(sizes[0]));
    }
    out->emplace_back(std::move(*name), size);
  }
  if (FirstText(resp.body, "IsTruncated") == "true") {
    std::string next = FirstText(resp.body, "NextContinuationToken");
    if (next.empty() || next == *token) return bad("a truncated page without a new token");
    *token = std::move(next);
  } else {
    token->clear();
  }
  return Status::Ok();
}

Result<std::vector<S3LogStore::Chunk>> S3LogStore::ListChunks(std::string_view key) {
  const std::string prefix = options_.key_prefix + std::string(key) + "/";
  std::vector<std::pair<std::string, uint64_t>> entries;
  std::string token;
  do {
    RETURN_IF_ERROR(ListPage(prefix, options_.list_page_size, &token, &entries));
  } while (!token.empty());
  std::vector<Chunk> chunks;
  for (const auto& [name, size] : entries) {
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    // Anything else directly under the prefix is not a chunk of this log.
    std::optional<uint64_t> start = ParseOffset(std::string_view(name).substr(prefix.size()));
    if (start) chunks.push_back({*start, size});
  }
  std::sort(chunks.begin(), chunks.end(),
            [](const Chunk& a, const Chunk& b) { return a.start < b.start; });
  return chunks;
}

Status S3LogStore::CheckContiguous(std::string_view key, const std::vector<Chunk>& chunks) const {
  uint64_t end = 0;
  for (const Chunk& c : chunks) {
    if (c.start != end) {
      return Internal("log " + std::string(key) + " in S3 bucket \"" + options_.bucket +
                      "\" at " + options_.endpoint + " is inconsistent: a chunk starts at " +
                      std::to_string(c.start) + " where the previous one ends at " +
                      std::to_string(end));
    }
    end += c.size;
  }
  return Status::Ok();
}

Result<bool> S3LogStore::PutChunk(std::string_view key, uint64_t start, std::string_view data,
                                  bool replace_empty) {
  const std::string name = ChunkName(key, start);
  std::vector<std::string> headers;
  headers.push_back(replace_empty ? "If-Match: " + std::string(kEmptyEtag)
                                  : std::string("If-None-Match: *"));
  ASSIGN_OR_RETURN(HttpResponse resp, Send("PUT", name, "", std::move(headers), data));
  if (resp.status == 200) return true;
  // 412: the condition did not hold; 409: a conditional write raced another.
  if (resp.status == 412 || resp.status == 409) return false;
  return ErrorFor("write", name, resp);
}

Result<bool> S3LogStore::ChunkExists(std::string_view key, uint64_t start) {
  const std::string name = ChunkName(key, start);
  ASSIGN_OR_RETURN(HttpResponse resp, Send("HEAD", name, "", {}, ""));
  if (resp.status == 200) return true;
  if (resp.status == 404) return false;
  return ErrorFor("look-up", name, resp);
}

Result<std::string> S3LogStore::GetRange(std::string_view key, const Chunk& chunk,
                                         uint64_t from, uint64_t to) {
  const std::string name = ChunkName(key, chunk.start);
  std::vector<std::string> headers;
  bool whole = from == 0 && to == chunk.size;
  if (!whole) {
    headers.push_back("Range: bytes=" + std::to_string(from) + "-" + std::to_string(to - 1));
  }
  ASSIGN_OR_RETURN(HttpResponse resp, Send("GET", name, "", std::move(headers), ""));
  if (resp.status != 200 && resp.status != 206) return ErrorFor("read", name, resp);
  if (!whole && resp.body.size() == chunk.size) {
    // The whole chunk for a part of it: a server that ignores Range, or (s3rver) one that
    // reads "bytes=0-0" as "bytes=0-".
    resp.body = resp.body.substr(from, to - from);
  }
  if (resp.body.size() != to - from) {
    return Internal("S3 read at " + options_.endpoint + ", bucket \"" + options_.bucket +
                    "\", object \"" + name + "\": got " + std::to_string(resp.body.size()) +
                    " bytes where " + std::to_string(to - from) + " were listed");
  }
  return std::move(resp.body);
}

Status S3LogStore::Append(std::string_view key, std::string_view data) {
  RETURN_IF_ERROR(CheckKey(key));
  std::shared_ptr<KeyState> state = StateFor(key);
  std::lock_guard<std::mutex> lock(state->mu);
  for (int attempt = 0; attempt < kMaxAppendAttempts; ++attempt) {
    bool replace_empty = false;
    if (state->next_offset) {
      if (data.empty()) return Status::Ok();
      ASSIGN_OR_RETURN(bool taken, ChunkExists(key, *state->next_offset));
      if (taken) {  // another process appended since
        state->next_offset.reset();
        continue;
      }
    } else {
      ASSIGN_OR_RETURN(std::vector<Chunk> chunks, ListChunks(key));
      RETURN_IF_ERROR(CheckContiguous(key, chunks));
      uint64_t end = chunks.empty() ? 0 : chunks.back().start + chunks.back().size;
      if (!chunks.empty() && data.empty()) {
        state->next_offset = end;
        return Status::Ok();
      }
      // An empty append made an empty chunk at 0; the first data replaces it.
      replace_empty = end == 0 && !chunks.empty();
      state->next_offset = end;
    }
    uint64_t start = *state->next_offset;
    auto put = PutChunk(key, start, data, replace_empty);
    if (!put.ok() || !*put) {
      // After an error the write may or may not have happened: find out next time.
      state->next_offset.reset();
      if (!put.ok()) return put.status();
      continue;
    }
    // An empty chunk sits at its own end; the next append must list to replace it.
    if (data.empty()) {
      state->next_offset.reset();
    } else {
      state->next_offset = start + data.size();
    }
    return Status::Ok();
  }
  return Unavailable("S3 append to log " + std::string(key) + " in bucket \"" + options_.bucket +
                     "\" at " + options_.endpoint + " found its offset taken " +
                     std::to_string(kMaxAppendAttempts) +
                     " times in a row (other writers are appending to it)");
}

Result<LogChunk> S3LogStore::Read(std::string_view key, uint64_t offset, uint64_t max_bytes) {
  RETURN_IF_ERROR(CheckKey(key));
  ASSIGN_OR_RETURN(std::vector<Chunk> chunks, ListChunks(key));
  if (chunks.empty()) {
    return NotFound("log " + std::string(key) + " not found in S3 bucket \"" + options_.bucket +
                    "\" at " + options_.endpoint);
  }
  RETURN_IF_ERROR(CheckContiguous(key, chunks));
  LogChunk out;
  out.size = chunks.back().start + chunks.back().size;
  uint64_t want = offset < out.size ? std::min({max_bytes, out.size - offset, kMaxReadBytes}) : 0;
  const uint64_t end = offset + want;
  for (const Chunk& c : chunks) {
    if (want == 0 || c.start >= end) break;
    if (c.size == 0 || c.start + c.size <= offset) continue;
    uint64_t from = std::max(offset, c.start) - c.start;
    uint64_t to = std::min(end, c.start + c.size) - c.start;
    ASSIGN_OR_RETURN(std::string part, GetRange(key, c, from, to));
    out.data += part;
  }
  out.next_offset = offset + out.data.size();
  return out;
}

Status S3LogStore::Remove(std::string_view key) {
  RETURN_IF_ERROR(CheckKey(key));
  std::shared_ptr<KeyState> state = StateFor(key);
  std::lock_guard<std::mutex> lock(state->mu);
  state->next_offset.reset();
  // An inconsistent log is removed all the same.
  ASSIGN_OR_RETURN(std::vector<Chunk> chunks, ListChunks(key));
  for (auto it = chunks.rbegin(); it != chunks.rend(); ++it) {
    const std::string name = ChunkName(key, it->start);
    ASSIGN_OR_RETURN(HttpResponse resp, Send("DELETE", name, "", {}, ""));
    if (resp.status != 204 && resp.status != 200 && resp.status != 404) {
      return ErrorFor("delete", name, resp);
    }
  }
  return Status::Ok();
}

Status S3LogStore::CheckAccess() {
  std::vector<std::pair<std::string, uint64_t>> entries;
  std::string token;
  return ListPage(options_.key_prefix, 1, &token, &entries);
}

}  // namespace tandem::logs
