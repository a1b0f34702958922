#include "ext/sha256.hpp"

#include <openssl/evp.h>

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>
#include <vector>

namespace ib {

struct Sha256::State {
    EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : m_state(std::make_unique<State>()) {
    m_state->ctx = EVP_MD_CTX_new();
    if (!m_state->ctx || EVP_DigestInit_ex(m_state->ctx, EVP_sha256(), nullptr) != 1)
        throw Error("sha256: cannot initialise libcrypto");
}

Sha256::~Sha256() { EVP_MD_CTX_free(m_state->ctx); }

void Sha256::update(const void* data, size_t len) { EVP_DigestUpdate(m_state->ctx, data, len); }

std::string Sha256::hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(m_state->ctx, digest, &n);
    static const char* k_digits = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < n; ++i) {
        out += k_digits[digest[i] >> 4];
        out += k_digits[digest[i] & 15];
    }
    return out;
}

std::string sha256_hex(std::string_view data) {
    Sha256 h;
    h.update(data.data(), data.size());
    return h.hex();
}

Result<std::string> sha256_file(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(errno_message("open '" + path + "'", errno));
    Sha256 h;
    std::vector<char> buf(1 << 20);
    while (true) {
        ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            return fail(errno_message("read '" + path + "'", err));
        }
        if (n == 0) break;
        h.update(buf.data(), static_cast<size_t>(n));
    }
    ::close(fd);
    return h.hex();
}

} // namespace ib
