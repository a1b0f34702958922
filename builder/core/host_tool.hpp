// Running a program of the host to check something (`cloud-init schema`), never to change anything.
//
// Only validators go through here: imgbuild builds images in-process and runs no host program to
// write them. A tool that is missing is not an error (find_program says so and the caller decides);
// one that runs gives its exit status and everything it printed.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace ib::host_tool {

// The absolute path `name` runs as: `name` itself when it holds a '/', else the first executable
// file of that name in $PATH.
std::optional<std::string> find_program(const std::string& name);

struct Result {
    int status = -1;    // the exit status; 128+N when killed by signal N; -1 when it could not start
    std::string output; // stdout and stderr, interleaved as written
};

// Runs `argv` (argv[0] a path) with `input` on its standard input; its stdout and stderr are
// collected. The environment is the caller's, with LC_ALL=C.UTF-8 so messages are not translated.
Result run(const std::vector<std::string>& argv, const std::string& input = {});

} // namespace ib::host_tool
