// DirLogStore maps a key "a/b/c.log" to root/a/b/c.log. The root is opened once, when the store
// is; an object is opened beneath it with one openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
// call, so a symbolic link planted anywhere under the root is refused (ELOOP) rather than
// followed out of it. Where openat2 is missing (kernels before 5.6, or a seccomp filter that
// refuses it) and when directories must be created, the key is walked one directory at a time
// with openat(O_NOFOLLOW | O_DIRECTORY) instead, with the same result. The root itself is
// trusted and may be reached through links.
#include "logs/log_store.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/fs.h"

namespace tandem::logs {

// Owns a file descriptor (the directory store keeps some open; see log_store.h).
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  int fd_;
};

namespace {

constexpr size_t kMaxIdLength = 250;
// A read returns at most this much however much is asked for; the caller continues from
// next_offset.
constexpr uint64_t kMaxReadBytes = uint64_t{16} << 20;

// The dag::Validate*Id rules, kept here so logs depends on base alone.
Status CheckId(std::string_view what, std::string_view id, bool run_id) {
  if (id.empty()) return InvalidArgument(std::string(what) + " is empty");
  if (id.size() > kMaxIdLength) {
    return InvalidArgument(std::string(what) + " is " + std::to_string(id.size()) +
                           " characters long (at most " + std::to_string(kMaxIdLength) + ")");
  }
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || (run_id && (c == ':' || c == '+' || c == '~'));
    if (!ok) {
      return InvalidArgument(std::string(what) + " \"" + std::string(id) +
                             "\" may only contain letters, digits, '_', '-', '.'" +
                             (run_id ? ", ':', '+', '~'" : ""));
    }
  }
  if (id.find("..") != std::string_view::npos) {
    return InvalidArgument(std::string(what) + " \"" + std::string(id) + "\" contains \"..\"");
  }
  return Status::Ok();
}

// The error for a failed system call on `key`.
Status KeyErrno(int err, std::string_view what, std::string_view key) {
  std::string msg = std::string(what) + " log " + std::string(key) + ": " + strerror(err);
  switch (err) {
    case ENOENT:
      return NotFound(msg);
    case ELOOP:
      return PermissionDenied(msg + " (a symbolic link under the log root is refused)");
    case EACCES:
    case EPERM:
    case EROFS:
      return PermissionDenied(msg);
    case ENAMETOOLONG:
      return InvalidArgument(msg + " (a key component longer than the file system allows)");
    case ENOTDIR:
    case EISDIR:
      return FailedPrecondition(msg + " (a file and a directory of the same name)");
    case ENOSPC:
      return Internal(msg + " (the disk is full)");
    default:
      return Internal(msg);
  }
}

std::vector<std::string_view> Split(std::string_view key) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t slash = key.find('/', start);
    parts.push_back(key.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) return parts;
    start = slash + 1;
  }
}

// The directory that holds the last component of `key`, reached without following links;
// with `create`, missing directories are made (0750). Sets `*name` to the last component.
// REQUIRES: CheckKey(key) is OK.
Result<Fd> OpenParent(int root_fd, std::string_view key, bool create, std::string* name) {
  Fd dir(fcntl(root_fd, F_DUPFD_CLOEXEC, 0));
  if (!dir.valid()) {
    int err = errno;
    return KeyErrno(err, "cannot use the log root for", key);
  }
  std::vector<std::string_view> parts = Split(key);
  *name = std::string(parts.back());
  parts.pop_back();
  for (std::string_view part : parts) {
    std::string p(part);
    while (true) {
      int fd = openat(dir.get(), p.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0) {
        dir = Fd(fd);
        break;
      }
      int err = errno;
      struct stat st;
      // O_DIRECTORY wins over O_NOFOLLOW: a link to a directory fails with ENOTDIR.
      if (err == ENOTDIR && fstatat(dir.get(), p.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(st.st_mode)) {
        err = ELOOP;
      }
      if (err == ENOENT && create) {
        if (mkdirat(dir.get(), p.c_str(), 0750) == 0 || errno == EEXIST) continue;
        err = errno;
        return KeyErrno(err, "cannot create a directory for", key);
      }
      return KeyErrno(err, "cannot open", key);
    }
  }
  return dir;
}

// Opens the object itself; refuses anything but a regular file (a FIFO would block a reader).
// Cleared for good when the kernel lacks openat2.
std::atomic<bool> g_openat2{true};

// openat2 beneath `root_fd` without following any link; -1 with errno set when it fails, and
// errno ENOSYS when the walk should answer instead (no openat2, or EPERM, which a seccomp filter
// gives as well as the file).
int OpenBeneath(int root_fd, std::string_view key, int flags) {
  if (!g_openat2.load(std::memory_order_relaxed)) {
    errno = ENOSYS;
    return -1;
  }
  open_how how{};
  how.flags = static_cast<uint64_t>(flags);
  how.mode = (flags & O_CREAT) != 0 ? 0640 : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  const std::string path(key);
  while (true) {
    long fd = syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    if (errno == EINTR || errno == EAGAIN) continue;
    if (errno == ENOSYS || errno == E2BIG) {
      g_openat2.store(false, std::memory_order_relaxed);
      errno = ENOSYS;
    } else if (errno == EPERM) {
      errno = ENOSYS;  // a seccomp filter, or the file itself: the walk tells which
    }
    return -1;
  }
}

Result<Fd> OpenObject(int root_fd, std::string_view key, int flags, bool create) {
  flags |= O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
  Fd fd(OpenBeneath(root_fd, key, flags));
  if (!fd.valid()) {
    int err = errno;
    // A missing directory on the way is made by the walk; any other refusal stands.
    if (err != ENOSYS && !(err == ENOENT && create)) return KeyErrno(err, "cannot open", key);
    std::string name;
    ASSIGN_OR_RETURN(Fd dir, OpenParent(root_fd, key, create, &name));
    fd = Fd(openat(dir.get(), name.c_str(), flags, 0640));
    if (!fd.valid()) {
      err = errno;
      return KeyErrno(err, "cannot open", key);
    }
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) {
    int err = errno;
    return KeyErrno(err, "cannot stat", key);
  }
  if (!S_ISREG(st.st_mode)) {
    return FailedPrecondition("log " + std::string(key) + " is not a regular file");
  }
  return fd;
}

}  // namespace

void SetOpenat2ForTesting(bool use) { g_openat2.store(use, std::memory_order_relaxed); }

Status CheckKey(std::string_view key) {
  if (key.empty()) return InvalidArgument("a log key is empty");
  auto bad = [&](const std::string& why) {
    return InvalidArgument("log key \"" + std::string(key) + "\" " + why);
  };
  if (key.find('\0') != std::string_view::npos) return bad("contains a NUL character");
  if (key.find('\\') != std::string_view::npos) return bad("contains a backslash");
  if (key.front() == '/') return bad("is absolute");
  for (std::string_view part : Split(key)) {
    if (part.empty()) return bad("has an empty component");
    if (part == "." || part == "..") return bad("has a \".\" or \"..\" component");
  }
  return Status::Ok();
}

Result<std::string> TaskLogKey(std::string_view deployment_id, std::string_view dag_id,
                               std::string_view run_id, std::string_view task_id, int try_number) {
  RETURN_IF_ERROR(CheckId("deployment id", deployment_id, false));
  RETURN_IF_ERROR(CheckId("dag_id", dag_id, false));
  RETURN_IF_ERROR(CheckId("run_id", run_id, true));
  RETURN_IF_ERROR(CheckId("task_id", task_id, false));
  if (try_number < 0) {
    return InvalidArgument("try number " + std::to_string(try_number) + " is negative");
  }
  std::string key = std::string(deployment_id) + "/dag_id=" + std::string(dag_id) +
                    "/run_id=" + std::string(run_id) + "/task_id=" + std::string(task_id) +
                    "/attempt=" + std::to_string(try_number) + ".log";
  RETURN_IF_ERROR(CheckKey(key));  // a deployment id of "." passes CheckId
  return key;
}

// The logs kept open, least recently used last. Thread-safe; a caller holds its file through
// the shared_ptr, so a file evicted meanwhile is closed only when its last user is done.
struct DirLogStore::OpenFiles {
  explicit OpenFiles(size_t cap) : capacity(cap) {}

  std::shared_ptr<Fd> Find(std::string_view key) {
    std::lock_guard lock(mu);
    auto it = by_key.find(std::string(key));
    if (it == by_key.end()) return nullptr;
    lru.splice(lru.begin(), lru, it->second.at);
    return it->second.fd;
  }
  void Put(std::string_view key, std::shared_ptr<Fd> fd) {
    if (capacity == 0) return;
    std::lock_guard lock(mu);
    std::string k(key);
    if (auto it = by_key.find(k); it != by_key.end()) {
      it->second.fd = std::move(fd);
      lru.splice(lru.begin(), lru, it->second.at);
      return;
    }
    lru.push_front(k);
    by_key.emplace(std::move(k), Entry{std::move(fd), lru.begin()});
    while (by_key.size() > capacity) {
      by_key.erase(lru.back());
      lru.pop_back();
    }
  }
  void Drop(std::string_view key) {
    std::lock_guard lock(mu);
    auto it = by_key.find(std::string(key));
    if (it == by_key.end()) return;
    lru.erase(it->second.at);
    by_key.erase(it);
  }

  struct Entry {
    std::shared_ptr<Fd> fd;
    std::list<std::string>::iterator at;
  };
  const size_t capacity;
  std::mutex mu;
  std::list<std::string> lru;                     // guarded by mu; most recent first
  std::unordered_map<std::string, Entry> by_key;  // guarded by mu
};

DirLogStore::DirLogStore(int root_fd, size_t open_files)
    : root_fd_(root_fd), files_(std::make_unique<OpenFiles>(open_files)) {}

Result<std::shared_ptr<Fd>> DirLogStore::OpenKept(std::string_view key, bool create) {
  if (std::shared_ptr<Fd> fd = files_->Find(key)) {
    struct stat st;
    if (fstat(fd->get(), &st) == 0 && st.st_nlink > 0) return fd;
    files_->Drop(key);  // removed behind the store's back: open what the path names now
  }
  ASSIGN_OR_RETURN(Fd fd,
                   OpenObject(root_fd_, key, O_RDWR | O_APPEND | (create ? O_CREAT : 0), create));
  auto shared = std::make_shared<Fd>(std::move(fd));
  files_->Put(key, shared);
  return shared;
}

Result<std::unique_ptr<DirLogStore>> DirLogStore::Open(std::string root, size_t open_files) {
  if (root.empty()) return InvalidArgument("the log root is empty");
  root = AbsolutePath(root);
  RETURN_IF_ERROR(MakeDirs(root, 0750));
  int fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return Internal("cannot open the log root " + root + ": " + strerror(err));
  }
  // Leave most of the process's descriptors to everything else.
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
    open_files = std::min<size_t>(open_files, lim.rlim_cur / 4);
  }
  return std::unique_ptr<DirLogStore>(new DirLogStore(fd, open_files));
}

DirLogStore::~DirLogStore() { close(root_fd_); }

Status DirLogStore::Append(std::string_view key, std::string_view data) {
  RETURN_IF_ERROR(CheckKey(key));
  ASSIGN_OR_RETURN(std::shared_ptr<Fd> fd, OpenKept(key, true));
  // One write() for the whole chunk, so concurrent appends to one key do not interleave; the
  // loop only continues after a partial write (a full disk, a signal).
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd->get(), data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      return KeyErrno(err, "cannot append to", key);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Result<LogChunk> DirLogStore::Read(std::string_view key, uint64_t offset, uint64_t max_bytes) {
  RETURN_IF_ERROR(CheckKey(key));
  ASSIGN_OR_RETURN(std::shared_ptr<Fd> fd, OpenKept(key, false));
  struct stat st;
  if (fstat(fd->get(), &st) != 0) {
    int err = errno;
    return KeyErrno(err, "cannot stat", key);
  }
  LogChunk chunk;
  chunk.size = static_cast<uint64_t>(st.st_size);
  uint64_t want =
      offset < chunk.size ? std::min({max_bytes, chunk.size - offset, kMaxReadBytes}) : 0;
  chunk.data.resize(want);
  uint64_t got = 0;
  while (got < want) {
    ssize_t n =
        pread(fd->get(), chunk.data.data() + got, want - got, static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      return KeyErrno(err, "cannot read", key);
    }
    if (n == 0) break;  // truncated since fstat
    got += static_cast<uint64_t>(n);
  }
  chunk.data.resize(got);
  chunk.next_offset = offset + got;
  return chunk;
}

Status DirLogStore::Remove(std::string_view key) {
  RETURN_IF_ERROR(CheckKey(key));
  files_->Drop(key);
  std::string name;
  auto dir = OpenParent(root_fd_, key, false, &name);
  if (!dir.ok()) {
    return dir.status().code() == Code::kNotFound ? Status::Ok() : dir.status();
  }
  if (unlinkat(dir->get(), name.c_str(), 0) != 0 && errno != ENOENT) {
    int err = errno;
    return KeyErrno(err, "cannot remove", key);
  }
  return Status::Ok();
}

}  // namespace tandem::logs
