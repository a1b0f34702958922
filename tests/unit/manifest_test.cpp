// The build manifest's JSON: every string a recipe or a base can carry comes out as valid JSON text.
#include "core/build.hpp"
#include "core/manifest.hpp"

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <unistd.h>

using namespace ib;

TEST_CASE("json_string escapes what JSON forbids and keeps UTF-8", "[manifest]") {
    CHECK(json_string("plain") == "\"plain\"");
    CHECK(json_string("a\"b\\c") == "\"a\\\"b\\\\c\"");
    CHECK(json_string("line\nnext\ttab") == "\"line\\nnext\\ttab\"");
    CHECK(json_string(std::string("nul\0x\x1f\x7f", 7)) == "\"nul\\u0000x\\u001f\\u007f\"");
    CHECK(json_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
}

TEST_CASE("json_string turns bytes that are not UTF-8 into U+FFFD", "[manifest]") {
    CHECK(json_string("\xff") == "\"\\ufffd\"");
    CHECK(json_string("a\xc3") == "\"a\\ufffd\"");          // cut short
    CHECK(json_string("\xc0\xaf") == "\"\\ufffd\\ufffd\""); // overlong '/'
    CHECK(json_string("\xed\xa0\x80") == "\"\\ufffd\\ufffd\\ufffd\""); // a surrogate
    CHECK(json_string("\xf4\x90\x80\x80") == "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); // above U+10FFFF
}

TEST_CASE("manifest_json describes the plan: recipe files, base, vars, nodes, steps, outputs", "[manifest]") {
    char dir_template[] = "/tmp/imgbuild-manifest-test.XXXXXX";
    std::string dir = ::mkdtemp(dir_template);
    std::string recipe = dir + "/r.yaml";
    {
        std::ofstream(recipe) << "name: demo\nvars: {who: \"w\\u00e9\"}\nbase: {dir: " << dir << "}\n"
                              << "nodes:\n  - {name: n1, ip: 10.0.0.1/24}\n"
                              << "steps:\n  - files: {content: \"{{who}}\\n\", dest: /etc/x}\n"
                              << "  - hostname: {name: \"{{node.name}}\"}\n"
                              << "outputs:\n  - tar: {path: out.tar}\n";
    }
    Plan plan = make_plan(recipe, {{"extra", "q\"uote"}});
    std::string json = manifest_json(plan, "1.2.3", "");
    CHECK(json.starts_with("{\"format\":\"imgbuild-manifest/1\",\"imgbuild\":{\"version\":\"1.2.3\"}"));
    CHECK(json.find("\"recipe\":{\"name\":\"demo\",\"file\":\"" + recipe + "\",\"files\":[{\"path\":\"" + recipe +
                    "\",\"sha256\":\"") != std::string::npos);
    CHECK(json.find("\"base\":{\"as_written\":{\"dir\":\"" + dir + "\"},\"kind\":\"dir\",\"path\":\"" + dir +
                    "\",\"sha256\":null}") != std::string::npos);
    CHECK(json.find("\"vars\":{\"extra\":\"q\\\"uote\",\"who\":\"w\xc3\xa9\"}") != std::string::npos);
    CHECK(json.find("\"nodes\":[{\"name\":\"n1\",\"fields\":{\"ip\":\"10.0.0.1/24\",\"name\":\"n1\"}}]") != std::string::npos);
    CHECK(json.find("\"steps\":[{\"type\":\"files\",\"per_node\":false,\"options\":{\"content\":\"{{who}}\\n\","
                    "\"dest\":\"/etc/x\"}},{\"type\":\"hostname\",\"per_node\":true,\"options\":{\"name\":\"{{node.name}}\"}}]") !=
          std::string::npos);
    CHECK(json.find("\"outputs\":[{\"type\":\"tar\",\"per_node\":false,\"options\":{\"path\":\"out.tar\"}}]") != std::string::npos);
    CHECK(json.ends_with("\"options\":{\"path\":\"out.tar\"}}]}\n")); // no build, so no output files after them
    std::remove(recipe.c_str());
    ::rmdir(dir.c_str());
}
