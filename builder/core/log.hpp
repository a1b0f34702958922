// Messages to the user on stderr. -q shows only warnings and errors, -v adds detail.
#pragma once

#include <string>

namespace ib::log {

enum class Level { Quiet = 0, Normal = 1, Verbose = 2 };

void set_level(Level level);
Level level();

void info(const std::string& message);    // normal progress: "wrote out/worker.tar (12.3 MiB)"
void detail(const std::string& message);  // -v only
void warn(const std::string& message);    // always, prefixed "warning: "

} // namespace ib::log
