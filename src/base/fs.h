// Small file-system helpers that report errors as Status with the path named.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>

#include "base/status.h"

namespace tandem {

Status MakeDirs(const std::string& path, mode_t mode = 0755);
Result<std::string> ReadFile(const std::string& path);
// Writes to a temporary file beside `path`, fsyncs, renames over `path`.
Status WriteFileAtomic(const std::string& path, const std::string& data, mode_t mode = 0644);
// The same, safe in a directory another user can write to: the temporary file is created
// exclusively without following links, owned by uid:gid through its descriptor, and renamed
// over `path` (a link there is replaced, never followed).
Status WriteFileAtomicAs(const std::string& path, const std::string& data, mode_t mode, uid_t uid,
                         gid_t gid);
// Creates `path` if needed and checks that this process can create files in it.
Status EnsureWritableDir(const std::string& path);
Status RemoveAll(const std::string& path);
Status ChownRecursive(const std::string& path, uid_t uid, gid_t gid);
// The first ancestor of `path` (or `path` itself) that user `uid` cannot search, or "".
std::string FirstUnsearchableAncestor(const std::string& path, uid_t uid, gid_t gid);
std::string AbsolutePath(const std::string& path);

// OK when `path` can be read by its owner only (no group or other permission bits): what a file
// holding a key or a credential must be. InvalidArgument naming `what`, the path and the mode
// otherwise, with the command that fixes it; the file's content is never read or shown.
Status CheckPrivateFile(const std::string& path, const std::string& what);
bool PathExists(const std::string& path);

// A directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  static Result<TempDir> Create(const std::string& prefix);
  // The same in `parent`, which must exist.
  static Result<TempDir> CreateIn(const std::string& parent, const std::string& prefix);
  TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir();
  const std::string& path() const { return path_; }
  // Gives up ownership: the directory is no longer removed on destruction.
  std::string Release() { return std::exchange(path_, std::string()); }

 private:
  explicit TempDir(std::string p) : path_(std::move(p)) {}
  std::string path_;
};

}  // namespace tandem
