#include "core/error.hpp"

#include <atomic>
#include <csignal>
#include <cstring>

namespace ib {

namespace {
std::atomic<int> g_signal{0};

extern "C" void on_signal(int sig) { g_signal.store(sig); }
} // namespace

std::string errno_message(const std::string& what, int err) { return what + ": " + std::strerror(err); }

void check_interrupted() {
    if (int sig = g_signal.load()) {
        throw Error(std::string("interrupted by ") + (sig == SIGINT ? "SIGINT" : "SIGTERM"),
                    k_exit_interrupted);
    }
}

void install_interrupt_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: a blocked read/write returns EINTR and the pipeline unwinds
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

} // namespace ib
