// Randomness from the kernel (getrandom), for identifiers and nonces.
#pragma once

#include <string>

namespace tandem {

std::string RandomBytes(size_t n);
// A random (version 4) UUID in canonical text form.
std::string NewUuid();
std::string HexEncode(const std::string& bytes);

}  // namespace tandem
