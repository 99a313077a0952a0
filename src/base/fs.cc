#include "base/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace tandem {
namespace fs = std::filesystem;

namespace {
// Makes a rename in `path`'s directory durable (a key file written just before a crash must not
// vanish while data sealed with it survives).
void SyncParentDir(const std::string& path) {
  std::string dir = path.substr(0, path.find_last_of('/'));
  if (dir.empty()) dir = "/";
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

Status Errno(const std::string& what, const std::string& path) {
  int e = errno;
  std::string msg = what + " " + path + ": " + strerror(e);
  if (e == EACCES || e == EPERM || e == EROFS) return PermissionDenied(msg);
  if (e == ENOSPC) return Internal(msg + " (the disk is full)");
  return Internal(msg);
}
}  // namespace

Status MakeDirs(const std::string& path, mode_t mode) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) {
    std::string msg = "cannot create directory " + path + ": " + ec.message();
    if (ec == std::errc::permission_denied || ec == std::errc::read_only_file_system) {
      return PermissionDenied(msg);
    }
    return Internal(msg);
  }
  chmod(path.c_str(), mode);
  return Status::Ok();
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!PathExists(path)) return NotFound("no such file: " + path);
    return Errno("cannot read", path);
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status WriteFileAtomic(const std::string& path, const std::string& data, mode_t mode) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Errno("cannot write", tmp);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status s = Errno("cannot write", tmp);
      close(fd);
      unlink(tmp.c_str());
      return s;
    }
    off += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    Status s = Errno("cannot sync", tmp);
    close(fd);
    unlink(tmp.c_str());
    return s;
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) return Errno("cannot rename to", path);
  SyncParentDir(path);
  return Status::Ok();
}

Status WriteFileAtomicAs(const std::string& path, const std::string& data, mode_t mode, uid_t uid,
                         gid_t gid) {
  std::string tmp = path + ".tmp";
  unlink(tmp.c_str());  // whatever is there (a link planted by the directory's owner) goes
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return Errno("cannot write", tmp);
  Status s;
  if (fchown(fd, uid, gid) != 0) s = Errno("cannot chown", tmp);
  size_t off = 0;
  while (s.ok() && off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      s = Errno("cannot write", tmp);
    else
      off += static_cast<size_t>(n);
  }
  if (s.ok() && fsync(fd) != 0) s = Errno("cannot sync", tmp);
  close(fd);
  if (s.ok() && rename(tmp.c_str(), path.c_str()) != 0) s = Errno("cannot rename to", path);
  if (!s.ok()) unlink(tmp.c_str());
  if (s.ok()) SyncParentDir(path);
  return s;
}

Status EnsureWritableDir(const std::string& path) {
  Status s = MakeDirs(path, 0755);
  if (!s.ok()) return s;
  std::string probe = path + "/.write-probe";
  int fd = open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return PermissionDenied("state directory " + path + " is not writable: " + strerror(errno));
  }
  close(fd);
  unlink(probe.c_str());
  return Status::Ok();
}

Status RemoveAll(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) return Internal("cannot remove " + path + ": " + ec.message());
  return Status::Ok();
}

Status ChownRecursive(const std::string& path, uid_t uid, gid_t gid) {
  if (lchown(path.c_str(), uid, gid) != 0) return Errno("cannot chown", path);
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return Status::Ok();
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (lchown(it->path().c_str(), uid, gid) != 0) return Errno("cannot chown", it->path());
  }
  if (ec) return Internal("cannot walk " + path + ": " + ec.message());
  return Status::Ok();
}

std::string FirstUnsearchableAncestor(const std::string& path, uid_t uid, gid_t gid) {
  fs::path p = fs::absolute(path).lexically_normal();
  fs::path cur = "/";
  for (const auto& part : p) {
    if (part == "/") continue;
    struct stat st;
    if (stat(cur.c_str(), &st) != 0) break;
    bool ok = (st.st_uid == uid && (st.st_mode & S_IXUSR)) ||
              (st.st_gid == gid && (st.st_mode & S_IXGRP)) || (st.st_mode & S_IXOTH);
    if (!ok) return cur.string();
    cur /= part;
  }
  return "";
}

std::string AbsolutePath(const std::string& path) {
  std::error_code ec;
  auto p = fs::absolute(path, ec);
  return ec ? path : p.lexically_normal().string();
}

bool PathExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

Result<TempDir> TempDir::Create(const std::string& prefix) {
  const char* base = getenv("TMPDIR");
  return CreateIn(base && *base ? base : "/tmp", prefix);
}

Result<TempDir> TempDir::CreateIn(const std::string& parent, const std::string& prefix) {
  std::string tmpl = parent + "/" + prefix + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) return Errno("cannot create temporary directory", tmpl);
  return TempDir(std::string(buf.data()));
}

TempDir::~TempDir() {
  if (!path_.empty()) (void)RemoveAll(path_);
}

Status CheckPrivateFile(const std::string& path, const std::string& what) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return NotFound(what + " " + path + " does not exist: " + std::strerror(errno));
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return InvalidArgument(what + " " + path + " can be read by users other than its owner (mode " +
                           mode + "): make it private with `chmod 600 " + path + "`");
  }
  return Status::Ok();
}

}  // namespace tandem
