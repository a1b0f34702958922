// All the outputs of one build, written under temporary names beside their targets and renamed into
// place together once every one succeeded (STYLE.md 8). Whatever was not committed is removed when the
// Staging goes away: on an error, an exception or Ctrl-C (the pipeline unwinds on SIGINT/SIGTERM).
//
// Nothing is created outside the output folder, and no host symlink is followed on the way into it.
#pragma once

#include <string>
#include <vector>

namespace ib {

class Staging {
public:
    explicit Staging(std::string out_dir);
    ~Staging();
    Staging(const Staging&) = delete;
    Staging& operator=(const Staging&) = delete;

    // A temporary path for the output at `rel` (relative to the output folder), beside where it will
    // end up; parent folders are created. The path itself does not exist yet.
    std::string temp_for(const std::string& rel);
    // A temporary path beside `rel` for intermediate data: removed when the Staging goes away, whether
    // the build succeeded or not, and never renamed into place.
    std::string scratch_for(const std::string& rel);
    // Adds `name` (e.g. "SHA256SUMS") listing the sha256 of every file output staged so far, in the
    // format `sha256sum -c` reads, with paths relative to the output folder.
    void add_checksums(const std::string& name);
    // Renames every temporary path to its target, replacing what was there.
    void commit();
    const std::string& out_dir() const { return m_out; }

private:
    void make_dir(const std::string& dir);
    struct Item {
        std::string temp;
        std::string target;
    };
    std::string m_out;
    std::vector<Item> m_items;
    std::vector<std::string> m_created_dirs;
    std::vector<std::string> m_scratch;
    bool m_committed = false;
};

// rm -rf without following links, making folders writable first where a mode denies it.
void remove_tree(const std::string& p);

} // namespace ib
