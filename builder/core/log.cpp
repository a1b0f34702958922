#include "core/log.hpp"

#include <iostream>
#include <mutex>

namespace ib::log {

namespace {
Level g_level = Level::Normal;
std::mutex g_mutex; // lines from several threads (netboot writes nodes in the background) stay whole

void line(const std::string& text) {
    std::lock_guard lock(g_mutex);
    std::cerr << text + '\n' << std::flush;
}
} // namespace

void set_level(Level level) { g_level = level; }
Level level() { return g_level; }

void info(const std::string& message) {
    if (g_level >= Level::Normal) line(message);
}

void detail(const std::string& message) {
    if (g_level >= Level::Verbose) line(message);
}

void warn(const std::string& message) { line("warning: " + message); }

} // namespace ib::log
