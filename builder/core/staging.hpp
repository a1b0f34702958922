// All the outputs of one build, written under temporary names beside their targets and renamed into
// place together once every one succeeded. Whatever was not committed is removed when the
// Staging goes away: on an error, an exception or Ctrl-C (the pipeline unwinds on SIGINT/SIGTERM).
//
// Nothing is created outside the output folder, and no host symlink is followed on the way into it.
#pragma once

#include <cstdio>
#include <functional>
#include <map>
#include <memory>
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
    // temp_for(rel) on the first call, the same path on every later call with `rel`: for a folder that
    // several writes of this build fill together, such as a store shared by per-node outputs. One
    // that none of them created (a store nothing was put in) is left out at commit().
    std::string shared_temp_for(const std::string& rel);
    // One object of type T per `key` for this build, made by T() on first use and dropped with the
    // Staging: state that per-node outputs share (a store's index). A key always names one type.
    template <typename T>
    T& shared(const std::string& key) {
        std::shared_ptr<void>& p = m_shared[key];
        if (!p) p = std::make_shared<T>();
        return *static_cast<T*>(p.get());
    }
    // A temporary path beside `rel` for intermediate data: removed when the Staging goes away, whether
    // the build succeeded or not, and never renamed into place.
    std::string scratch_for(const std::string& rel);
    // Adds `name` (e.g. "SHA256SUMS") listing the sha256 of every file output staged so far, in the
    // format `sha256sum -c` reads, with paths relative to the output folder.
    void add_checksums(const std::string& name);
    // The sha256 (hex) of the file at `temp`, taken by its writer: add_checksums uses it instead of
    // reading the file again.
    void set_checksum(const std::string& temp, std::string sha256);
    // Adds the file `name` (relative to the output folder) holding `text`, committed with the rest.
    void add_file(const std::string& name, const std::string& text);
    // Where the output at `rel` is now: its temporary when it is staged, else the path in the output
    // folder (an existing folder updated in place).
    std::string current(const std::string& rel) const;
    // Renames every temporary path to its target, replacing what was there, all or nothing: whatever
    // is in the way is moved aside first, and on any failure everything already moved is put back as
    // it was before the Error is thrown. What was replaced is removed only once everything is in
    // place. Ctrl-C stops the build up to the start of commit(), not within it.
    void commit();
    const std::string& out_dir() const { return m_out; }
    // An output changed folders in place before commit() (netboot): a failed commit cannot undo that,
    // and its message says so, naming `what`.
    void changed_in_place(const std::string& what) { m_in_place.push_back(what); }
    // For tests: the rename commit() uses, to make one fail.
    void set_rename(std::function<int(const char* from, const char* to)> rename) { m_rename = std::move(rename); }

private:
    void make_dir(const std::string& dir);
    struct Item {
        std::string temp;
        std::string target;
        bool optional = false; // shared_temp_for(): may never have been created
    };
    std::string m_out;
    std::vector<Item> m_items;
    std::vector<std::string> m_created_dirs;
    std::vector<std::string> m_scratch;
    std::map<std::string, std::string> m_shared_temps; // rel -> temp path
    std::map<std::string, std::shared_ptr<void>> m_shared;
    std::map<std::string, std::string> m_checksums; // temp path -> sha256 from its writer
    bool m_committed = false;
    std::vector<std::string> m_in_place;
    std::function<int(const char*, const char*)> m_rename = [](const char* from, const char* to) { return ::rename(from, to); };
};

// The sha256 of a file that is still being written, taken by a thread of its own as the writer
// declares parts of it final: a multi-GiB image's line in SHA256SUMS then costs little time of its
// own. Holes are hashed as the zeros they read as, without reading them.
class BackgroundChecksum {
public:
    explicit BackgroundChecksum(const std::string& path); // throws Error when the file cannot be opened
    ~BackgroundChecksum();                                // abandons the work if result() was not called
    BackgroundChecksum(const BackgroundChecksum&) = delete;
    BackgroundChecksum& operator=(const BackgroundChecksum&) = delete;
    // Bytes [0, n) will not change any more.
    void ready(uint64_t n);
    // The file is final and `size` bytes long: waits for the hash and returns it (hex). Throws the
    // Error the thread met (a read error, Ctrl-C).
    std::string result(uint64_t size);

private:
    struct State;
    std::unique_ptr<State> m_state;
};

// The sha256 (hex) of a file, holes hashed as the zeros they read as without reading them. Throws Error.
std::string sha256_sparse(const std::string& p);

// rm -rf without following links, making folders writable first where a mode denies it.
void remove_tree(const std::string& p);

} // namespace ib
