#include "worker/masker.h"

#include <algorithm>

namespace tandem::worker {

Masker::Masker(std::vector<std::string> secrets) {
  for (std::string& s : secrets) {
    if (s.size() >= kMinLength) secrets_.push_back(std::move(s));
  }
  std::sort(secrets_.begin(), secrets_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  secrets_.erase(std::unique(secrets_.begin(), secrets_.end()), secrets_.end());
  for (const std::string& s : secrets_) first_.set(static_cast<unsigned char>(s[0]));
}

std::string Masker::Feed(std::string_view data) {
  if (secrets_.empty()) return std::string(data);
  pending_.append(data);
  return Drain(false);
}

std::string Masker::Finish() { return Drain(true); }

std::string Masker::Mask(std::string_view text) const {
  Masker m(*this);
  m.pending_.assign(text);
  return m.Drain(true);
}

std::string Masker::Drain(bool final) {
  const std::string_view p = pending_;
  std::string out;
  out.reserve(p.size());
  size_t i = 0;
  while (i < p.size()) {
    if (!first_.test(static_cast<unsigned char>(p[i]))) {
      out.push_back(p[i++]);
      continue;
    }
    const std::string_view rest = p.substr(i);
    bool masked = false, maybe = false;
    for (const std::string& s : secrets_) {
      if (rest.starts_with(s)) {
        out.append(kMask);
        i += s.size();
        masked = true;
        break;
      }
      // A secret the output so far ends partway into: wait for more.
      if (!final && rest.size() < s.size() && std::string_view(s).starts_with(rest)) maybe = true;
    }
    if (masked) continue;
    if (maybe) break;
    out.push_back(p[i++]);
  }
  pending_.erase(0, i);
  return out;
}

}  // namespace tandem::worker
