// SHA-256 adapter: the only place that includes OpenSSL's libcrypto.
#pragma once

#include "core/error.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace ib {

class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void update(const void* data, size_t len);
    std::string hex(); // finishes; lower-case, 64 digits

private:
    struct State;
    std::unique_ptr<State> m_state;
};

std::string sha256_hex(std::string_view data);
// Hashes a host file without loading it whole.
Result<std::string> sha256_file(const std::string& path);

} // namespace ib
