// The recipe loader end to end: YAML (ext/yaml.cpp), Doc, extends, vars, templating, nodes, every
// step's and output's option parser (core/build.cpp make_plan), as `imgbuild validate` runs them.
#include "core/build.hpp"
#include "core/error.hpp"
#include "fuzz_input.hpp"

#include <cstdlib>

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    ::setenv("IMGBUILD_CLOUD_INIT", "", 1); // never start the host's cloud-init per input
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        ib::Plan plan = ib::make_plan(ib::fuzz::as_file(data, size), {});
        (void)ib::describe(plan, "out");
    } catch (const ib::Error&) {
    }
    return 0;
}
