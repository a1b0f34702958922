#include "core/log.hpp"

#include <iostream>

namespace ib::log {

namespace {
Level g_level = Level::Normal;
}

void set_level(Level level) { g_level = level; }
Level level() { return g_level; }

void info(const std::string& message) {
    if (g_level >= Level::Normal) std::cerr << message << '\n';
}

void detail(const std::string& message) {
    if (g_level >= Level::Verbose) std::cerr << message << '\n';
}

void warn(const std::string& message) { std::cerr << "warning: " << message << '\n'; }

} // namespace ib::log
