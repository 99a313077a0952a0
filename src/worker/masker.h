// Secrets masked in a task's output as it is written, as Airflow's secrets masker does: every
// occurrence of a secret the task was given — a connection's password, a secret variable's or
// secret env var's value — becomes "***" before the output leaves the worker, even one split
// between two reads of the task's pipes.
//
// To see a secret split across reads, the masker keeps back the end of what it was fed when that
// end could be the start of a secret (and only then), until more output or Finish() decides it.
// Values shorter than kMinLength are not masked: masking "1" or "yes" everywhere would wreck the
// log and hide nothing (Airflow's [logging] min_length_masked_secret is the same 5).
//
// Pure; one per task; not thread-safe.
#pragma once

#include <bitset>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::worker {

class Masker {
 public:
  static constexpr size_t kMinLength = 5;
  static constexpr std::string_view kMask = "***";

  explicit Masker(std::vector<std::string> secrets);

  bool empty() const { return secrets_.empty(); }
  // `data` masked, up to what may still be the start of a secret.
  std::string Feed(std::string_view data);
  // What Feed kept back, masked: the output has ended.
  std::string Finish();
  // `text` masked on its own (a value that is complete, like the last line of output).
  std::string Mask(std::string_view text) const;

 private:
  // Masks pending_ from the start; stops where a secret may begin past the end unless `final`.
  std::string Drain(bool final);

  std::vector<std::string> secrets_;  // longest first, so the longest match wins
  std::bitset<256> first_;            // the first bytes of the secrets
  std::string pending_;
};

}  // namespace tandem::worker
