#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdlib>

// The unit tests do not depend on what the host has installed: steps that would run a host checker
// (the cloud_init step's `cloud-init schema`) get none, unless IMGBUILD_CLOUD_INIT is already set;
// tests of the checker itself name a fake or the real one explicitly.
int main(int argc, char* argv[]) {
    ::setenv("IMGBUILD_CLOUD_INIT", "", 0);
    return Catch::Session().run(argc, argv);
}
