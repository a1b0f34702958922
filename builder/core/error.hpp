// Errors, in two tiers.
//
// Adapters over external libraries return a Result<T>: a value or a message. The pipeline turns a failed
// Result into an Error with value_or_throw(), and main() catches Error once and maps it to an exit code.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace ib {

// Exit codes, documented in the README and in `imgbuild --help`.
inline constexpr int k_exit_ok = 0;
inline constexpr int k_exit_build_failed = 1;
inline constexpr int k_exit_usage = 2;  // bad command line or bad recipe: nothing was written
inline constexpr int k_exit_interrupted = 130;

// The one exception type of the pipeline. The message is complete and ready for the user: it names
// the place (recipe file:line:col or image path), the object and the reason.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message, int exit_code = k_exit_build_failed)
        : std::runtime_error(message), m_exit_code(exit_code) {}
    int exit_code() const { return m_exit_code; }

private:
    int m_exit_code;
};

// A failed Result's payload.
struct Failure {
    std::string message;
};

template <typename T> class Result {
public:
    Result(T value) : m_state(std::move(value)) {}
    Result(Failure failure) : m_state(std::move(failure)) {}

    bool ok() const { return std::holds_alternative<T>(m_state); }
    explicit operator bool() const { return ok(); }
    const std::string& error() const { return std::get<Failure>(m_state).message; }
    T& value() & { return std::get<T>(m_state); }
    T&& value() && { return std::get<T>(std::move(m_state)); }

    // Turns a failure into an Error, prefixed with where it happened ("base image: ").
    T value_or_throw(const std::string& context = {}) && {
        if (!ok()) throw Error(context.empty() ? error() : context + ": " + error());
        return std::get<T>(std::move(m_state));
    }

private:
    std::variant<T, Failure> m_state;
};

template <> class Result<void> {
public:
    Result() = default;
    Result(Failure failure) : m_failed(true), m_message(std::move(failure.message)) {}
    bool ok() const { return !m_failed; }
    explicit operator bool() const { return ok(); }
    const std::string& error() const { return m_message; }
    void value_or_throw(const std::string& context = {}) const {
        if (m_failed) throw Error(context.empty() ? m_message : context + ": " + m_message);
    }

private:
    bool m_failed = false;
    std::string m_message;
};

inline Failure fail(std::string message) { return Failure{std::move(message)}; }

// "strerror(errno)" with the call that failed: "open '/x': No such file or directory".
std::string errno_message(const std::string& what, int err);

// Throws if SIGINT/SIGTERM arrived; long loops call this so that cleanup runs by unwinding.
void check_interrupted();
void install_interrupt_handlers();

} // namespace ib
