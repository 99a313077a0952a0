#include "logs/s3_http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <mutex>

namespace tandem::logs {
namespace {

// One easy handle per thread, reset before each request, so connections to an endpoint are
// reused without a lock. Freed when the thread exits.
class ThreadHandle {
 public:
  ThreadHandle() : curl_(curl_easy_init()) {}
  ~ThreadHandle() {
    if (curl_ != nullptr) curl_easy_cleanup(curl_);
  }
  ThreadHandle(const ThreadHandle&) = delete;
  ThreadHandle& operator=(const ThreadHandle&) = delete;
  CURL* get() const { return curl_; }

 private:
  CURL* curl_;
};

CURL* HandleForThisThread() {
  static std::once_flag once;
  // curl_global_init is not thread-safe; every other libcurl call here comes after it.
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  thread_local ThreadHandle handle;
  return handle.get();
}

struct Slist {
  curl_slist* list = nullptr;
  Slist() = default;
  Slist(const Slist&) = delete;
  Slist& operator=(const Slist&) = delete;
  ~Slist() { curl_slist_free_all(list); }
  bool Append(const std::string& s) {
    curl_slist* next = curl_slist_append(list, s.c_str());
    if (next == nullptr) return false;
    list = next;
    return true;
  }
};

struct Upload {
  std::string_view data;
  size_t done = 0;
};

size_t ReadBody(char* buf, size_t size, size_t n, void* arg) {
  auto* up = static_cast<Upload*>(arg);
  size_t len = std::min(size * n, up->data.size() - up->done);
  memcpy(buf, up->data.data() + up->done, len);
  up->done += len;
  return len;
}

size_t WriteBody(char* buf, size_t size, size_t n, void* arg) {
  static_cast<std::string*>(arg)->append(buf, size * n);
  return size * n;
}

int SeekBody(void* arg, curl_off_t offset, int origin) {
  auto* up = static_cast<Upload*>(arg);
  if (origin != SEEK_SET || offset < 0 || static_cast<uint64_t>(offset) > up->data.size()) {
    return CURL_SEEKFUNC_FAIL;
  }
  up->done = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

bool Unreachable(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
      return true;
    default:
      return false;
  }
}

}  // namespace

std::string UriEncode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    bool unreserved = (u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') ||
                      u == '-' || u == '_' || u == '.' || u == '~';
    if (unreserved || (keep_slash && u == '/')) {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  return out;
}

std::string AmzDate(WallTime t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  size_t n = strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return std::string(buf, n);
}

Result<HttpResponse> SendSigned(const SigV4Credentials& creds, const HttpRequest& req) {
  CURL* curl = HandleForThisThread();
  if (curl == nullptr) return Internal("libcurl could not make a handle");
  curl_easy_reset(curl);

  Slist headers;
  for (const std::string& h : req.headers) {
    if (!headers.Append(h)) return Internal("out of memory building HTTP headers");
  }
  Slist connect_to;
  if (!req.connect_to.empty() && !connect_to.Append(req.connect_to)) {
    return Internal("out of memory building HTTP options");
  }
  const std::string sigv4 = "aws:amz:" + creds.region + ":" + creds.service;
  HttpResponse resp;
  Upload upload{req.body, 0};
  char error[CURL_ERROR_SIZE] = {0};

  curl_easy_setopt(curl, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(req.connect_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(req.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sigv4.c_str());
  curl_easy_setopt(curl, CURLOPT_USERNAME, creds.access_key_id.c_str());
  curl_easy_setopt(curl, CURLOPT_PASSWORD, creds.secret_access_key.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.list);
  if (connect_to.list != nullptr) curl_easy_setopt(curl, CURLOPT_CONNECT_TO, connect_to.list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp.body);
  if (req.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT") {
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, ReadBody);
    curl_easy_setopt(curl, CURLOPT_READDATA, &upload);
    curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, SeekBody);
    curl_easy_setopt(curl, CURLOPT_SEEKDATA, &upload);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  } else if (req.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }

  CURLcode rc = curl_easy_perform(curl);
  // The handle keeps pointers to this call's lists and buffers; drop them before they go.
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(curl, CURLOPT_CONNECT_TO, nullptr);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  if (rc != CURLE_OK) {
    std::string msg = req.method + " " + req.url + ": " +
                      (error[0] != '\0' ? std::string(error) : curl_easy_strerror(rc));
    return Unreachable(rc) ? Unavailable(msg) : Internal(msg);
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp.status);
  curl_off_t length = -1;
  curl_easy_getinfo(curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
  resp.content_length = length > 0 ? static_cast<uint64_t>(length) : 0;
  return resp;
}

}  // namespace tandem::logs
